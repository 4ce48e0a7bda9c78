"""SCL: supervised contrastive fine-tuning (Gunel, Du, Conneau, Stoyanov, ICLR 2021, arXiv 2011.01403).

A fine-tuning objective, not a pretraining method. The fine-tuning loss of a batch of N
labelled examples is::

    L = (1 - lam) * L_CE + lam * L_SCL

    L_SCL = 1/N sum_i  -1/(N_{y_i} - 1) sum_{j != i, y_j = y_i}
                 log  exp(Phi(x_i).Phi(x_j) / tau) / sum_{k != i} exp(Phi(x_i).Phi(x_k) / tau)

with L_CE the batch-mean cross-entropy of the linear head, Phi(x) the L2-normalised sentence
embedding (the encoder's pooled output: the ``features`` that the fine-tuning path passes to
:meth:`finetune_loss`), N_{y_i} the number of examples in the batch labelled y_i, tau the
temperature. The SCL term is :func:`sslbench.components.losses.supcon` per anchor.

Normalisation. The paper's equation sums the per-anchor terms over the batch; here that sum is
divided by N, the batch size (every anchor counted, SupCon's own mean leaves out anchors
without a positive), so the term is on the per-example scale of the batch-mean cross-entropy
and lam keeps its meaning at any batch size (with a fixed batch the sum is N times this, the
same objective with lam rescaled). An anchor whose class has one member in the batch has no
positive: its 1/(N_{y_i} - 1) sum is empty, it contributes 0 and still counts in N. The
gradient of the SCL term flows into the encoder: nothing is detached.

Variants (one plugin, so both arms share the encoder, head, optimiser, schedule, subsets and
seeds and differ only in lam):

- ``scl``: lam 0.9, tau 0.3, one point of the paper's grid (lam in {0.1, 0.3, 0.5, 0.7, 0.9, 1.0},
  tau in {0.1, 0.3, 0.5, 0.7}); the best point is task-specific, sweep it with ``--set``.
- ``scl.ce``: lam 0, cross-entropy alone (exactly ``F.cross_entropy``; the SCL term is not computed).

Run it under a fine-tuning protocol with zero pretraining epochs, as the floors::

    sslbench run scl    --suite digits-fewshot --set pretrain.epochs=0 --set few_shot.head=finetune
    sslbench run scl.ce --suite digits-fewshot --set pretrain.epochs=0 --set few_shot.head=finetune

``needs_labels`` stays False: it only makes the pretraining loaders put labels in the batch, and
SCL has nothing to pretrain; the fine-tuning path takes its labels (a few-shot subset, noisy
labels) from the protocol and hands them to :meth:`finetune_loss`.

Data parallel: the SCL term's features are all-gathered with their gradient and the labels without
(:mod:`sslbench.components.gather`), so an anchor's positives and negatives are the global batch's and N
is the global batch size (``method.gather: false``: this rank's shard). Fine-tuning protocols run on rank
0 alone after pretraining (collectives off), where the gather is the identity; the gathered form serves a
fine-tuning loop run on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sslbench.components.gather import gather_nograd, gather_with_grad
from sslbench.components.losses import supcon
from sslbench.method import Method, NothingToPretrain
from sslbench.plugins import register_method
from sslbench.validation import check, check_section, probability


def scl_term(features: torch.Tensor, labels: torch.Tensor, temperature: float, gather: bool = False) -> torch.Tensor:
    """Gunel et al.'s L_SCL on a batch, divided by the batch size N (see the module docstring).

    features: N x D (normalised here), labels: int N -> scalar. ``gather``: features and labels of every
    rank's shard first (the global batch; the identity on one process).
    """
    if gather:
        features, labels = gather_with_grad(features), gather_nograd(labels)
    return supcon(features, labels, temperature=temperature, reduction="sum") / features.shape[0]


@register_method("scl", variants={"ce": dict(lam=0.0)})
class SCL(NothingToPretrain):
    modality = "any"
    version = 1

    @dataclass
    class Config(Method.Config):
        lam: float = field(default=0.9, metadata=check(probability, "a weight in [0, 1]"))  # 0: cross-entropy alone (scl.ce)
        temperature: float = 0.3  # tau > 0
        gather: bool = True  # data parallel: the SCL term over every rank's shard (False: this rank's only)

    def setup(self) -> None:
        check_section(self.cfg, "method")  # lam in [0, 1], temperature > 0 (also when built outside a suite)

    def finetune_loss(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1 - lam) * cross-entropy + lam * L_SCL on the batch's features (N x D) and labels (N)."""
        lam = float(self.cfg.lam)
        ce = F.cross_entropy(logits, labels)
        if lam == 0.0:
            return ce
        scl = scl_term(features.flatten(1), labels, float(self.cfg.temperature), gather=bool(self.cfg.gather))
        if lam == 1.0:
            return scl
        return (1.0 - lam) * ce + lam * scl
