"""Unsupervised SimCSE (Gao, Yao, Chen 2021, EMNLP, arXiv 2104.08821).

Each sentence x_i of a batch of N is encoded twice with independently sampled dropout masks
(the encoder in train mode; the two views are the same sentence, ``views: {max_length: 32}``),
giving h_i and h_i^+ (B x H pooled outputs, [CLS] in the published recipe). Training passes them
through an MLP (Linear H -> H, tanh: the BERT pooler shape of SimCSE's ``MLPLayer``) and takes
the in-batch InfoNCE of Eq. 1, the other sentences' second views as negatives::

    l_i = -log  exp(sim(z_i, z_i^+) / tau) / sum_{j=1..N} exp(sim(z_i, z_j^+) / tau)

with sim the cosine similarity, tau = 0.05 (:func:`sslbench.components.losses.info_nce`,
``in_batch="positives"``: N - 1 negatives per anchor, one direction, as the official code). The
two views go through the encoder as one batch of 2N (the official code reshapes to 2N as well);
dropout masks are drawn per row, so the views differ.

The MLP is for training only ("w/ MLP (train)", Table 6; the unsupervised default): the frozen
representation is the encoder's pooled output, before the MLP. Published recipe (Appendix A,
unsupervised BERT-base): batch 64, lr 3e-5, max length 32, 1 epoch over 10^6 Wikipedia sentences,
tau 0.05, [CLS] pooling, model selection on STS-B dev every 250 steps. The suites here train on a
data set's own sentences (SST-2, MR) on a CPU; the pooling is the encoder's option
(``encoder.options.pooling``).

Data parallel: both views' MLP outputs are all-gathered with their gradient
(:func:`sslbench.components.gather.gather_with_grad`), so every anchor's negatives are the global
batch's other sentences (``method.gather: false``: this rank's only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from sslbench.components.gather import gather_with_grad
from sslbench.components.losses import info_nce, info_nce_logit_bytes, per_sample_activation_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, positive


@register_method("simcse")
class SimCSE(Method):
    modality = "text"
    version = 1

    @dataclass
    class Config(Method.Config):
        temperature: float = field(default=0.05, metadata=check(positive, "a temperature > 0"))
        mlp: bool = True  # the train-time MLP over the pooled output (False: InfoNCE on the pooled output itself)
        gather: bool = True  # data parallel: negatives from every rank's shard (False: this rank's only)

    def setup(self) -> None:
        h = self.feature_dim
        self.mlp = nn.Sequential(nn.Linear(h, h), nn.Tanh()) if self.cfg.mlp else nn.Identity()
        self._view = None

    def views(self, base):
        self._view = base  # the token limit of the views, for the memory floor's probe batch
        return [base, base]

    def training_step(self, batch: Batch) -> StepOutput:
        v1, v2 = batch.views
        n = len(v1)
        both = type(v1)([*v1, *v2], max_length=getattr(v1, "max_length", None))  # one 2N pass, 2N dropout masks
        z = self.mlp(self.modality_plugin.encode(self.encoder, both))  # 2N x H
        z1, z2 = z[:n], z[n:]
        if self.cfg.gather:  # the global batch from every rank (identity on one process)
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        loss = info_nce(z1, z2, temperature=self.cfg.temperature, in_batch="positives")
        return StepOutput(loss=loss)

    def num_negatives(self, batch_size: int) -> int:
        return batch_size - 1  # the other sentences' second views

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """The negatives are the batch: 2N views whose activations autograd keeps (traced once per view on a
        probe batch at the view's ``max_length``, ``Modality.probe_batch``: an upper estimate when the real
        batches pad to fewer tokens) plus the N x N logits (``info_nce_logit_bytes``)."""
        if getattr(self, "_view_bytes", None) is None:
            net = nn.Sequential(self.encoder, self.mlp)
            self._view_bytes = per_sample_activation_bytes(
                net, lambda b, g: self.modality_plugin.probe_batch(self.data, b, self._view, g))
        return 2 * batch_size * self._view_bytes + info_nce_logit_bytes(batch_size, batch_size - 1)
