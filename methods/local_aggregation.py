"""Local Aggregation (Zhuang, Zhai, Yamins 2019, arXiv 1903.12355, Sec. 3), registered as ``la``.

One view per image -> encoder -> linear head to 128-d -> l2 norm: v (B x D). A memory bank holds one unit
embedding per training sample (N x D, InstDisc's, updated with momentum 0.5: v_i <- normalize(0.5 v_i +
0.5 f_i)). For each sample i:
- background neighbours B_i: the k entries of the bank nearest to v_i (cosine; k = 4096 in the paper,
  ``background_neighbors``); the sample's own entry is usually one of them;
- close neighbours C_i: the samples that share i's cluster in any of H k-means clusterings of the bank
  (``kmeans_runs`` H, ``num_clusters`` m each; recomputed every epoch or every ``recluster_steps``);
- with P(A | v) = sum_{j in A} exp(v_j . v / tau) / Z (Eq. 1, tau 0.07, Z cancels), the loss (Eq. 3-4) is
  L_i = -log( P(C_i and B_i | v_i) / P(B_i | v_i) ), averaged over the batch (weight decay: the engine's).
Only v_i carries a gradient; the bank is detached. As in the official code, the ratio gets 1e-7 before
the log, so a sample none of whose background neighbours is a close one has a finite loss (-log 1e-7).

Warm-up: the paper initialises LA from a network trained with Instance Recognition (IR, InstDisc). Here the
first ``ir_epochs`` epochs (1 or more: the bank must be filled once before it can be clustered) train with
IR's non-parametric softmax, in its exact form over the whole bank: -log( exp(v_i . v_i^bank / tau) /
sum_j exp(v_j^bank . v_i / tau) ) (InstDisc Eq. 2, not NCE), which costs nothing extra since the LA loss
computes every v . v_j anyway. The first clustering is at the end of the warm-up.

Differences at this scale: k, m and H are set by the suite (the defaults k = 4096 and tau, momentum are the
paper's; m = 1000 and H = 3 are placeholders, not quoted values); k-means is the torch one (euclidean on
the unit bank rows, random init, 20 iterations, as the faiss calls of the official code), seeded per
clustering from a seed drawn at construction. The B x N similarities are computed densely (the official code
does the same); samples the engine has not yet shown (the last partial batch) keep random bank rows.

Profile: ``negatives_key`` is ``method.background_neighbors`` (k: the denominator's size); the memory floor
is the bank, the B x N similarities and their gradient, and the B x k neighbour logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.kmeans import kmeans
from sslbench.components.memory import MemoryBank, bank_bytes, is_distributed
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, non_negative


def _at_least(n: int):
    return check(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n, f"an integer >= {n}")


def local_aggregation_loss(v: torch.Tensor, bank: torch.Tensor, index: torch.Tensor, cluster_labels: torch.Tensor,
                           k: int, temperature: float, eps: float = 1e-7) -> torch.Tensor:
    """Eq. 3-4, batch mean. v: B x D unit embeddings (with grad), bank: N x D unit (detached), index: int64 B
    (the samples' bank rows), cluster_labels: int64 H x N (H clusterings), k: background neighbours -> scalar."""
    logits = v @ bank.T / temperature  # B x N: log(Z P(j | v_i))
    back, back_idx = logits.topk(k, dim=1)  # B_i: B x k
    own = cluster_labels[:, index]  # H x B
    close = (cluster_labels[:, back_idx] == own[:, :, None]).any(0)  # C_i and B_i, as a B x k mask
    # P(C and B) / P(B) = exp(logsumexp over C and B - logsumexp over B), in [0, 1]
    ratio = torch.exp(torch.logsumexp(back.masked_fill(~close, float("-inf")), 1) - torch.logsumexp(back, 1))
    return -torch.log(ratio + eps).mean()


@register_method("la")
class LocalAggregation(Method):
    modality = "image"
    version = 1
    negatives_key = "method.background_neighbors"

    @dataclass
    class Config(Method.Config):
        background_neighbors: int = field(default=4096, metadata=_at_least(1))  # k
        num_clusters: int = field(default=1000, metadata=_at_least(2))  # m, per clustering
        kmeans_runs: int = field(default=3, metadata=_at_least(1))  # H
        kmeans_iters: int = field(default=20, metadata=_at_least(1))
        temperature: float = 0.07
        bank_momentum: float = 0.5
        proj_dim: int = 128
        ir_epochs: int = field(default=1, metadata=_at_least(1))  # InstDisc (IR) epochs before the first clustering
        recluster_steps: int = field(default=0, metadata=check(non_negative, "0 (every epoch) or a step count"))

    def setup(self) -> None:
        c, n = self.cfg, self.train_size
        for key in ("background_neighbors", "num_clusters"):
            if getattr(c, key) > n:
                raise ConfigError(f"Bad value for 'method.{key}': {getattr(c, key)}; valid: at most the {n} "
                                  "training samples (the bank's rows)")
        self.head = nn.Linear(self.feature_dim, c.proj_dim)
        self.bank = MemoryBank(n, c.proj_dim)
        self.register_buffer("cluster_labels", torch.full((c.kmeans_runs, n), -1, dtype=torch.long))
        self.register_buffer("kmeans_seed", torch.randint(0, 2**62, ()))  # broadcast from rank 0 by the engine
        self.register_buffer("global_batch", torch.zeros((), dtype=torch.long))  # learnt from the first step
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def views(self, base: Any) -> list[Any]:
        return [base]

    @property
    def clustered(self) -> bool:
        return bool(self.cluster_labels[0, 0] >= 0)

    def training_step(self, batch: Batch) -> StepOutput:
        x, idx = batch.views[0], batch.index
        bank = self.bank.memory.detach()
        v = F.normalize(self.head(self.encoder(x)).to(bank.dtype), dim=1)  # B x D
        self._pending = (idx, v.detach())
        # the similarities / tau reach 1 / 0.07: in the bank's precision, not autocast's half
        with torch.autocast(v.device.type, enabled=False):
            if not self.clustered:  # IR warm-up: InstDisc's exact non-parametric softmax over the bank
                loss = F.cross_entropy(v @ bank.T / self.cfg.temperature, idx.to(v.device))
                return StepOutput(loss=loss, logs={"ir": 1.0})
            loss = local_aggregation_loss(v, bank, idx, self.cluster_labels, self.cfg.background_neighbors,
                                          self.cfg.temperature)
        return StepOutput(loss=loss, logs={"ir": 0.0})

    def after_step(self, step: int, total: int) -> None:
        if self._pending is not None:
            idx, v = self._pending
            self._pending = None
            if int(self.global_batch) == 0:
                world = torch.distributed.get_world_size() if is_distributed() else 1
                self.global_batch.fill_(idx.shape[0] * world)
            self.bank.update(idx, v, momentum=self.cfg.bank_momentum)
        spe = max(1, self.train_size // max(1, int(self.global_batch)))
        period = self.cfg.recluster_steps or spe
        if step >= self.cfg.ir_epochs * spe and step % period == 0:
            self.recluster(step)

    @torch.no_grad()
    def recluster(self, step: int = 0) -> None:
        """H k-means runs of m clusters on the bank -> cluster_labels (H x N)."""
        c = self.cfg
        for h in range(c.kmeans_runs):
            g = torch.Generator().manual_seed((int(self.kmeans_seed) + 1000003 * step + h) % 2**63)
            res = kmeans(self.bank.memory, c.num_clusters, iters=c.kmeans_iters, generator=g)
            self.cluster_labels[h] = res.assign.to(self.cluster_labels.device)

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.background_neighbors

    def negatives_memory_bytes(self, batch_size: int) -> int:
        # the bank and the B x N similarities (forward + gradient); per background neighbour (B x k): its logit
        # (float32) and index (int64), its H cluster labels (int64) and H comparisons (bool), the close mask, the
        # masked copy, two logsumexp temporaries and the gradient (float32). Not counted: topk's workspace.
        n, d, k, h = self.train_size, self.cfg.proj_dim, self.cfg.background_neighbors, self.cfg.kmeans_runs
        per_neighbour = 4 + 8 + 9 * h + 1 + 4 * 4
        return bank_bytes(n, d) + 2 * batch_size * n * 4 + batch_size * k * per_neighbour
