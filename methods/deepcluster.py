"""DeepCluster (Caron, Bojanowski, Joulin, Douze 2018, arXiv 1807.05520, Sec. 3).

Alternate clustering and classification (Sec. 3.1-3.2): the features of every training image are clustered
by k-means into k groups (PCA-whitened and l2-normalised first, Sec. 3.2 / 4.1), the cluster ids become
pseudo-labels y_n, and a classifier g_W on top of the encoder f is trained with the cross-entropy
min_{theta, W} 1/N sum_n l(g_W(f_theta(x_n)), y_n)  (Eq. 1-2); then the features are clustered again.

One augmented view per image -> encoder -> h (B x feature_dim) -> linear classifier -> B x k logits.
The frozen representation is h. Trivial solutions (Sec. 3.2):
- empty clusters: :func:`sslbench.components.kmeans.kmeans` re-fills each one by splitting a random non-empty
  cluster (its centroid plus / minus a small perturbation, its points re-split between the two);
- unbalanced clusters: the paper samples images uniformly over the pseudo-classes; we keep the engine's
  uniform sampler and weight the cross-entropy by w_c = N / (k n_c) instead (the same expected gradient:
  each class contributes equally), ``balance: false`` for the plain loss.
At each clustering the classifier is re-initialised in place (its optimiser state, e.g. AdamW's moments,
carries over; the official code builds a new optimiser for it):
- ``classifier: linear`` (the default, v1): logits W h + b, W ~ N(0, 0.01), b = 0 (the official top layer);
- ``classifier: centroids`` (DeepCluster-v2's): logits cos(h, w_c) / temperature (0.1), w_c set to the mean
  bank feature of cluster c. At CPU scale (9 steps an epoch on digits) a fresh linear layer learns little
  before it is thrown away and the encoder follows its near-random gradients: on digits (12 epochs, k 50)
  the probe fell to 73.5 (AdamW; 80.4 with SGD lr 0.05) against the 81.5 random-init floor and the loss
  stayed at log k, while ``centroids`` reached 90.0 with the loss falling from 3.7 to 2.4. The suites use it.

Where the features come from: DeepCluster-v2's scheme, not v1's. The method does not see the data set, so the
features it clusters are those of the training steps: a memory bank (N x feature_dim, l2-normalised encoder
outputs of the augmented view, overwritten by each step: ``MemoryBank`` with momentum 0) filled from
``Batch.index``, clustered once the first epoch has filled it, then every epoch (or every ``recluster_steps``), as the SwAV authors'
DeepCluster-v2 and solo-learn do. v1 instead runs a separate pass of the current network over the whole
(un-augmented, centre-cropped) set before each epoch, so its features are all from one network; ours are
from the last epoch's evolving one. The first epoch only fills the bank (v2's ``init_memory`` pass): its
loss is 0 and no weight moves; training starts at the first clustering, so run 2 epochs or more. Samples
not yet seen (the engine drops the last partial batch) get no pseudo-label and no loss.

Differences from the paper at this scale: no Sobel filter (the input is the suite's own view), the
classifier sits directly on the encoder output (AlexNet's fc6-fc7 are the encoder's business), k
(``num_clusters``, paper 10000 for ImageNet) is set by the suite, PCA is optional (``pca_dim: 0``, off by
default; the paper's 256 needs as many feature dims), k-means is the torch one (20 Lloyd iterations,
random init, as faiss' defaults) seeded per clustering from a seed drawn at construction (so every rank
clusters the same gathered bank identically).

Profile: no negatives; the softmax is over the k pseudo-classes, so ``negatives_key`` is
``method.num_clusters`` and ``num_negatives`` = k - 1 (SwAV's prototypes are the same axis).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.components.kmeans import INITS, kmeans, pca_whiten
from sslbench.components.losses import info_nce_logit_bytes
from sslbench.components.memory import MemoryBank, bank_bytes, concat_all_gather
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import check, non_negative

CLASSIFIERS = ("linear", "centroids")


def _at_least(n: int):
    return check(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n, f"an integer >= {n}")


@register_method("deepcluster")
class DeepCluster(Method):
    modality = "image"
    version = 1
    negatives_key = "method.num_clusters"

    @dataclass
    class Config(Method.Config):
        num_clusters: int = field(default=10000, metadata=_at_least(2))  # k (paper: 10000 on ImageNet)
        kmeans_iters: int = field(default=20, metadata=_at_least(1))
        kmeans_init: str = "random"  # or "k-means++"
        pca_dim: int = field(default=0, metadata=check(non_negative, "0 (off) or the PCA dims (paper: 256)"))
        recluster_steps: int = field(default=0, metadata=check(non_negative, "0 (every epoch) or a step count"))
        balance: bool = True  # class-balanced cross-entropy (the paper: uniform sampling over pseudo-classes)
        classifier: str = "linear"  # v1's fresh linear layer; "centroids": v2's cosine classifier set to the centroids
        temperature: float = 0.1  # of the "centroids" classifier (DeepCluster-v2's)

    def setup(self) -> None:
        c, n = self.cfg, self.train_size
        if c.num_clusters > n:
            raise ConfigError(f"Bad value for 'method.num_clusters': {c.num_clusters}; valid: at most the "
                              f"{n} training samples")
        if c.pca_dim > self.feature_dim:
            raise ConfigError(f"Bad value for 'method.pca_dim': {c.pca_dim}; valid: 0 (off) or at most the "
                              f"encoder's {self.feature_dim} feature dims")
        if c.classifier not in CLASSIFIERS:
            raise ConfigError(f"Bad value for 'method.classifier': {c.classifier!r}; valid: one of {CLASSIFIERS}")
        if c.kmeans_init not in INITS:
            raise ConfigError(f"Bad value for 'method.kmeans_init': {c.kmeans_init!r}; valid: one of {INITS}")
        self.classifier = nn.Linear(self.feature_dim, c.num_clusters)
        self.bank = MemoryBank(n, self.feature_dim)  # l2-normalised encoder features, refreshed every step
        self.register_buffer("seen", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("labels", torch.full((n,), -1, dtype=torch.long))  # -1: no pseudo-label yet
        self.register_buffer("class_weight", torch.ones(c.num_clusters))
        self.register_buffer("kmeans_seed", torch.randint(0, 2**62, ()))  # broadcast from rank 0 by the engine
        self.register_buffer("global_batch", torch.zeros((), dtype=torch.long))  # learnt from the first step
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_splits = 0

    def views(self, base: Any) -> list[Any]:
        return [base]

    def training_step(self, batch: Batch) -> StepOutput:
        x, idx = batch.views[0], batch.index
        h = self.encoder(x)  # B x feature_dim
        self._pending = (idx, h.detach())
        y = self.labels[idx]
        keep = y >= 0
        if not bool(keep.any()):  # the first epoch fills the bank: nothing to classify yet, no weight moves
            return StepOutput(loss=torch.zeros((), device=h.device, requires_grad=True))
        logits = self.logits(h[keep])  # B' x k
        weight = self.class_weight if self.cfg.balance else None
        loss = F.cross_entropy(logits, y[keep], weight=weight)
        return StepOutput(loss=loss, logs={"labelled": float(keep.float().mean())})

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """B x feature_dim -> B x k: W h + b (v1), or cos(h, w_c) / temperature (v2)."""
        if self.cfg.classifier == "linear":
            return self.classifier(h)
        return F.normalize(h, dim=1) @ F.normalize(self.classifier.weight, dim=1).T / self.cfg.temperature

    def after_step(self, step: int, total: int) -> None:
        if self._pending is not None:
            idx, h = self._pending
            self._pending = None
            self.bank.update(idx, h, momentum=0.0)
            all_idx = concat_all_gather(idx.to(self.seen.device))
            self.seen[all_idx] = True
            if int(self.global_batch) == 0:
                self.global_batch.fill_(len(all_idx))
        if self.recluster_due(step):
            self.recluster(step)

    def recluster_due(self, step: int) -> bool:
        """The first clustering once the bank is filled (the end of the first epoch: N // global batch steps, the
        engine's epoch), then every ``recluster_steps`` steps, or every epoch when that is 0."""
        spe = max(1, self.train_size // max(1, int(self.global_batch)))
        return step >= spe and (step - spe) % (self.cfg.recluster_steps or spe) == 0

    @torch.no_grad()
    def recluster(self, step: int = 0) -> None:
        """k-means on the bank's seen rows -> new pseudo-labels and class weights; re-initialise the classifier."""
        c = self.cfg
        rows = self.seen.nonzero().flatten()
        if len(rows) < c.num_clusters:  # k above the samples an epoch shows (the engine drops the last batch)
            warnings.warn(f"deepcluster: {len(rows)} samples seen, fewer than num_clusters={c.num_clusters}; "
                          "clustering the whole bank (unseen rows are random)", stacklevel=2)
            rows = torch.arange(self.train_size, device=self.seen.device)
        feats = self.bank.memory[rows]
        if c.pca_dim:
            feats = F.normalize(pca_whiten(feats, c.pca_dim), dim=1)
        g = torch.Generator().manual_seed((int(self.kmeans_seed) + step) % 2**63)
        res = kmeans(feats, c.num_clusters, iters=c.kmeans_iters, init=c.kmeans_init, generator=g)
        self.labels.fill_(-1)
        self.labels[rows] = res.assign.to(self.labels.device)
        counts = torch.bincount(res.assign, minlength=c.num_clusters).float()
        self.class_weight.copy_(len(rows) / (c.num_clusters * counts.clamp_min(1)))
        w = self.classifier.weight
        if c.classifier == "linear":  # the official top layer's init
            w.copy_(torch.randn(w.shape, generator=g).mul_(0.01))
        else:  # each cluster's mean bank feature (the k-means centroid in the bank's space, before any PCA)
            sums = torch.zeros_like(w).index_add_(0, res.assign.to(w.device), self.bank.memory[rows].to(w))
            w.copy_(F.normalize(sums, dim=1))
        self.classifier.bias.zero_()
        self.last_splits = res.splits

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.num_clusters - 1

    def negatives_memory_bytes(self, batch_size: int) -> int:
        # the bank, the k x D classifier (weight + gradient + two AdamW moments), B x k logits forward + gradient
        k, d = self.cfg.num_clusters, self.feature_dim
        return bank_bytes(self.train_size, d) + 4 * k * d * 4 + info_nce_logit_bytes(batch_size, k - 1)

