"""SwAV: swapped assignments between multiple views (Caron et al. 2020, arXiv 2006.09882).

Multi-crop (Sec. 3.2): each image gives 2 large crops (the suite's view recipe) and V small ones
(``num_small_crops``; side ``small_size``, by default half the large side: 32 -> 16 px, and area
``small_crop_scale`` (0.05, 0.14) as the paper). Crops of one size go through the encoder together
(the official ``MultiPrototypes`` forward), all of them through an MLP projector and an l2 norm:
z (V_all B x D, V_all = 2 + V). Prototypes C: a bias-free Linear D -> K whose rows are unit vectors
(re-normalised after every optimiser step, :meth:`after_step`); scores z C^T (V_all B x K).

Codes (Sec. 3.1, Eq. 3, App. A.1, Alg. 1): for each large crop s, Q_s = Sinkhorn-Knopp on its scores
(no gradient; :func:`sinkhorn`): Q = exp(z C^T / epsilon)^T (K x B), then ``sinkhorn_iterations`` times
rows scaled to sum 1/K and columns to 1/B; finally times B, so each sample's code (a row of the
B x K result) sums to 1. Swapped prediction (Eq. 1-2): for every other crop t,
-sum_k q_s^k log p_t^k with p_t = softmax(z_t C^T / temperature); the loss is the official code's
mean: over the batch, over the V_all - 1 crops t of each s, then over the two s.

Queue (App. A.1, small batches): from epoch ``epoch_queue_starts`` on, the z of the large crops of the
last ``queue_length`` samples are kept (one queue per large crop, no gradient); once full, their scores
against the current prototypes join the Sinkhorn problem (the batch's codes are the last B columns).
They are never predicted, so the loss is that of the batch alone. Prototypes get no gradient during the
first ``freeze_prototypes_steps`` steps (the official ``freeze_prototypes_niters``: their grad is None, so
the optimiser, weight decay included, leaves them alone).

Data parallel: each rank keeps ``queue_length / W`` rows, and Sinkhorn's sums (the total, the rows' and
the max used for a stable exponent) are all-reduced, so the codes are those of one Sinkhorn problem on
the global batch (and queue), as the official ``distributed_sinkhorn``; one process is unchanged.

What ``profile`` sweeps: SwAV compares samples with K prototypes, not with negatives, so
``num_negatives`` is 0 and ``negatives_key`` is the batch size (what the step's memory grows with:
V_all crops' activations per sample and the V_all B x K scores). The queue would be the other axis, but
it enters only after ``epoch_queue_starts`` epochs, never within the few steps ``profile`` times.

Differences at CPU scale: the paper's ImageNet recipe is 2 x 224 + 6 x 96 px crops (small side 0.43 of
the large; here 0.5 by default, ``small_size`` sets it), K = 3000, queue 3840 from epoch 15 at batch 256,
LARS with a prototype freeze of 313 iterations (one epoch at batch 4096): the config defaults are those;
CPU suites set smaller K, heads, queues and freeze. The large crops keep the suite's ``crop_scale``
(the paper's are (0.14, 1)). The step counter and the queue are buffers, so checkpoints resume them
exactly; the epoch that starts the queue is ``step // (train_size // global batch)`` (the engine drops
each epoch's last partial batch). Sinkhorn runs in float32 at least, whatever the autocast precision (float64 for epsilon < 0.025).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sslbench import distributed
from sslbench.components.heads import mlp_head
from sslbench.components.losses import per_sample_activation_bytes
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import at_least_one, check, non_negative, optional, positive, scale_pair


def _all_reduce(x: torch.Tensor, op: Any = dist.ReduceOp.SUM) -> torch.Tensor:
    """``op`` (a sum) over the ranks, in place, when data parallel; the identity on one process."""
    if distributed.active():
        dist.all_reduce(x, op=op)
    return x


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp codes (SwAV App. A.1, the official ``distributed_sinkhorn``).

    scores: B x K (z . c_k) of this rank's samples -> B x K codes (float32 at least), each row summing to 1.
    Q = exp(scores / epsilon)^T is K x B_all (B_all: the samples of every rank); each iteration scales
    its rows to sum 1/K and then its columns to 1/B_all; the result is Q^T times B_all. The largest score
    (over all ranks) is subtracted before exp: a common factor the first normalisation removes exactly.
    """
    # float32 at least (bf16 scores under autocast); float64 where exp(-2 / epsilon), a sample's weight when
    # its scores are 2 below the largest (unit z and c: scores in [-1, 1]), would underflow float32 (epsilon < 0.025)
    dtype = torch.float64 if 2 / epsilon > 80 else torch.promote_types(scores.dtype, torch.float32)
    q = scores.detach().to(dtype) / epsilon
    peak = _all_reduce(q.max(), dist.ReduceOp.MAX)
    Q = torch.exp(q - peak).t()  # K x B
    k, b = Q.shape[0], Q.shape[1] * (distributed.world_size() if distributed.active() else 1)
    Q /= _all_reduce(Q.sum())
    for _ in range(iterations):
        Q /= _all_reduce(Q.sum(dim=1, keepdim=True))  # rows: each prototype's total weight 1/K
        Q /= k
        Q /= Q.sum(dim=0, keepdim=True)  # columns: each sample's total weight 1/B
        Q /= b
    return (Q * b).t()


@register_method("swav")
class SwAV(Method):
    modality = "image"
    version = 1
    negatives_key = "pretrain.batch_size"  # no negatives: the step grows with the batch (see the docstring)

    @dataclass
    class Config(Method.Config):
        num_prototypes: int = field(default=3000, metadata=check(at_least_one))  # K
        temperature: float = 0.1  # tau of the predictions p_t
        epsilon: float = field(default=0.05, metadata=check(positive))  # Sinkhorn's entropy weight
        sinkhorn_iterations: int = field(default=3, metadata=check(at_least_one))
        proj_hidden_dim: int = 2048
        proj_dim: int = 128
        num_small_crops: int = field(default=6, metadata=check(non_negative))  # V (the paper: 6 x 96 px)
        small_size: int | None = field(default=None, metadata=check(optional(at_least_one),
                                                                     "1 or more, or null (half the large side)"))
        small_crop_scale: tuple[float, float] = field(default=(0.05, 0.14), metadata=check(scale_pair))
        queue_length: int = field(default=0, metadata=check(non_negative))  # 0: no queue
        epoch_queue_starts: int = field(default=15, metadata=check(non_negative))
        freeze_prototypes_steps: int = field(default=313, metadata=check(non_negative))

    steps_done: torch.Tensor
    queue: torch.Tensor
    queue_count: torch.Tensor

    def setup(self) -> None:
        c = self.cfg
        self.projector = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, 2)
        self.prototypes = nn.Linear(c.proj_dim, c.num_prototypes, bias=False)
        self.normalize_prototypes()
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # optimiser steps taken
        world = distributed.world_size()
        rows = c.queue_length // world  # this rank's share of the queue (the official code's)
        self.register_buffer("queue", torch.zeros(2, rows, c.proj_dim))  # per large crop, ring buffers
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))  # rows written so far
        self._pending: torch.Tensor | None = None
        self._sizes: tuple[int, int] | None = None

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        w = self.prototypes.weight
        w.copy_(F.normalize(w, dim=1))

    # -- views
    def views(self, base: Any) -> list[Any]:
        """2 large crops (the suite's recipe) and ``num_small_crops`` small ones: ``small_size`` px, area
        ``small_crop_scale``."""
        large = int(base.size or self.data.image_size)
        small = int(self.cfg.small_size or max(1, round(large / 2)))
        self._sizes = (large, small)
        small_view = dataclasses.replace(base, size=small, crop_scale=tuple(self.cfg.small_crop_scale))
        return [base, base] + [small_view] * self.cfg.num_small_crops

    # -- training
    def embed_crops(self, views: list[torch.Tensor]) -> torch.Tensor:
        """V_all views of B x C x S_v x S_v -> z: V_all B x D unit vectors (view-major). Consecutive views of one
        size share one encoder pass (and its BN statistics), as the official multi-crop forward."""
        feats, start = [], 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            feats.append(self.encoder(torch.cat(views[start:end])))
            start = end
        return F.normalize(self.projector(torch.cat(feats)), dim=1)

    def _queue_on(self, batch_size: int) -> bool:
        """The queue fills from epoch ``epoch_queue_starts`` on (epochs of the global batch)."""
        if self.queue.shape[1] == 0:
            return False
        world = distributed.world_size() if distributed.active() else 1
        steps_per_epoch = max(1, self.train_size // (batch_size * world))
        return int(self.steps_done) // steps_per_epoch >= self.cfg.epoch_queue_starts

    def swav_loss(self, scores: torch.Tensor, batch_size: int, queue_scores: list[torch.Tensor | None]
                  ) -> torch.Tensor:
        """scores: V_all B x K (view-major; views 0 and 1 the large crops); queue_scores: per large crop, the
        queue's L x K scores or None. -> the scalar swapped-prediction loss (official ``main_swav.py``)."""
        c, b = self.cfg, batch_size
        n_views = scores.shape[0] // b
        log_p = F.log_softmax(scores / c.temperature, dim=1).view(n_views, b, -1)  # V_all x B x K
        loss = scores.new_zeros(())
        for s in range(2):
            out = scores[s * b:(s + 1) * b].detach()
            if queue_scores[s] is not None:
                out = torch.cat([queue_scores[s], out])
            q = sinkhorn(out, c.epsilon, c.sinkhorn_iterations)[-b:]  # B x K, no gradient
            sub = sum(-(q * log_p[t]).sum(dim=1).mean() for t in range(n_views) if t != s)
            loss = loss + sub / (n_views - 1)
        return loss / 2

    def training_step(self, batch: Batch) -> StepOutput:
        views = batch.views
        b = views[0].shape[0]
        z = self.embed_crops(views)  # V_all B x D
        frozen = int(self.steps_done) < self.cfg.freeze_prototypes_steps
        weight = self.prototypes.weight.detach() if frozen else self.prototypes.weight  # K x D
        scores = z @ weight.t()  # V_all B x K
        queue_on = self._queue_on(b)
        full = queue_on and int(self.queue_count) >= self.queue.shape[1]
        with torch.no_grad():
            queue_scores = [self.queue[s] @ self.prototypes.weight.detach().t() if full else None for s in range(2)]
        loss = self.swav_loss(scores, b, queue_scores)
        self._pending = z[:2 * b].detach().view(2, b, -1) if queue_on else None
        return StepOutput(loss=loss)

    def after_step(self, step: int, total: int) -> None:
        """Unit prototypes again, the step counter, and the large crops' z into the queue (oldest out)."""
        self.normalize_prototypes()
        self.steps_done.fill_(step)
        if self._pending is not None:
            self._enqueue(self._pending)
            self._pending = None

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor) -> None:
        """z: 2 x B x D -> the ring buffers (any B; only the last L survive when B >= L)."""
        length, b = self.queue.shape[1], z.shape[1]
        n = int(self.queue_count)
        rows = (n + torch.arange(b, device=self.queue.device)) % length
        if b > length:
            rows, z = rows[-length:], z[:, -length:]
        self.queue[:, rows] = z.to(self.queue.dtype)
        self.queue_count.fill_(n + b)

    # -- profile
    def num_negatives(self, batch_size: int) -> int:
        return 0  # prototypes, not negatives

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """What grows with the batch, float32: the activations autograd keeps for every crop through encoder
        and projector (traced per sample, one per crop size), the V_all B x K scores and their log-softmax, and
        Sinkhorn's K x (B + L) codes. Not counted: workspaces, transient gradients, allocator slack."""
        large, small = self._sizes or (int(self.data.image_size), max(1, round(int(self.data.image_size) / 2)))
        if getattr(self, "_crop_bytes", None) is None:
            net = nn.Sequential(self.encoder, self.projector)
            ch = int(self.data.channels)
            self._crop_bytes = (per_sample_activation_bytes(net, (ch, large, large)),
                                per_sample_activation_bytes(net, (ch, small, small)))
        c = self.cfg
        n_views = 2 + c.num_small_crops
        act = batch_size * (2 * self._crop_bytes[0] + c.num_small_crops * self._crop_bytes[1])
        scores = 2 * n_views * batch_size * c.num_prototypes * 4
        codes = (batch_size + self.queue.shape[1]) * c.num_prototypes * 4
        return act + scores + codes
