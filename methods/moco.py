"""MoCo v1 / v2 (He et al. 2019, arXiv 1911.05722; Chen et al. 2020, arXiv 2003.04297).

A query encoder f_q (``self.encoder`` + head) and a key encoder f_k (a momentum copy,
no gradient, outside the optimiser). Query q = f_q(view 1), key k = f_k(view 2), both
L2-normalised (N x D); InfoNCE of q against k and the K queued keys of earlier steps
(Eq. 1, Alg. 1). After the optimiser step f_k <- m f_k + (1 - m) f_q (Eq. 2) and the
step's keys are enqueued. v1: linear head, t = 0.07, no blur; v2: 2-layer MLP head
(fc-ReLU-fc, no BN, as the official code), t = 0.2, blur. ``symmetric`` adds the loss
of q(view 2) against k(view 1) with a second queue (solo-learn's MoCo V2+).

An answer to shuffling BN on one device. MoCo's shuffle BN (Sec. 3.3) stops the BN
batch statistics leaking which key is the positive: on G GPUs each device normalises
its own sub-batch of queries, while the keys are encoded on a shuffled
redistribution of the batch, so a query and its positive key are normalised with
statistics of different subsets. On one device we emulate G = ``shuffle_bn_groups``
devices: queries are encoded in G contiguous sub-batches (what each device would
hold), keys in G sub-batches of a random permutation of the batch (each with its own
BN statistics, key encoder in train mode), then un-permuted. ``shuffle_bn_groups=1``
is the unshuffled ablation the paper warns about. Under torch.distributed with more
than one process the real cross-rank shuffle is done instead (gather, permute with a
permutation broadcast from rank 0, encode this rank's slice, gather, un-permute).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from sslbench.components.heads import mlp_head
from sslbench.components.losses import info_nce, info_nce_logit_bytes
from sslbench.components.memory import (
    KeyQueue,
    concat_all_gather,
    is_distributed,
    momentum_update,
    queue_bytes,
)
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method


@register_method("moco", variants={"v1": dict(mlp_head=False, temperature=0.07, blur=False),
                                   "v2": dict(mlp_head=True, temperature=0.2, blur=True)})
class MoCo(Method):
    modality = "image"
    version = 1
    negatives_key = "method.queue_size"

    @dataclass
    class Config(Method.Config):
        queue_size: int = 65536  # K
        momentum: float = 0.999  # m of the key encoder
        temperature: float = 0.2
        mlp_head: bool = True  # v2's fc-ReLU-fc head; False: v1's linear head
        blur: bool = True  # v2's Gaussian blur (p = 0.5 unless the suite sets one)
        proj_hidden_dim: int = 2048
        proj_dim: int = 128
        shuffle_bn_groups: int = 2  # emulated devices for shuffle BN on one process; 1 disables
        symmetric: bool = False  # also q(view 2) vs k(view 1), with its own queue

    def setup(self) -> None:
        c = self.cfg
        layers = 2 if c.mlp_head else 1
        self.head = mlp_head(self.feature_dim, c.proj_hidden_dim, c.proj_dim, layers, batch_norm=False)
        self.key_encoder = copy.deepcopy(self.encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
            p.requires_grad_(False)
        self.queue = KeyQueue(c.queue_size, c.proj_dim)  # keys of view 2
        self.queue_sym = KeyQueue(c.queue_size, c.proj_dim) if c.symmetric else None  # keys of view 1
        self._pending: list[torch.Tensor] | None = None

    def views(self, base: Any) -> list[Any]:
        if hasattr(base, "blur_p"):
            blur_p = base.blur_p if self.cfg.blur else 0.0
            if self.cfg.blur and blur_p == 0:
                blur_p = 0.5  # the paper's (MoCo v2 follows SimCLR's ImageNet recipe)
            base = dataclasses.replace(base, blur_p=blur_p)
        return [base, base]

    # -- encoders
    def _groups(self, n: int) -> int:
        return max(1, min(self.cfg.shuffle_bn_groups, n // 2))  # >= 2 samples per BN sub-batch

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        """B x ... -> B x D unit queries, BN per contiguous sub-batch (one per emulated device)."""
        g = 1 if is_distributed() else self._groups(x.shape[0])
        q = torch.cat([self.head(self.encoder(c)) for c in x.tensor_split(g)])
        return F.normalize(q, dim=1)

    def _key_net(self, x: torch.Tensor) -> torch.Tensor:
        return self.key_head(self.key_encoder(x))

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """B x ... -> B x D unit keys, encoded with shuffled BN (emulated, or across ranks)."""
        if is_distributed():
            return F.normalize(self._keys_ddp(x), dim=1)
        perm = torch.randperm(x.shape[0], device=x.device)
        k = torch.cat([self._key_net(c) for c in x[perm].tensor_split(self._groups(x.shape[0]))])
        out = torch.empty_like(k)
        out[perm] = k  # un-permute
        return F.normalize(out, dim=1)

    def _keys_ddp(self, x: torch.Tensor) -> torch.Tensor:
        """MoCo's batch shuffle across ranks (official ``_batch_shuffle_ddp`` / ``_batch_unshuffle_ddp``)."""
        world, rank = dist.get_world_size(), dist.get_rank()
        x_all = concat_all_gather(x)
        perm = torch.randperm(x_all.shape[0], device=x.device)
        dist.broadcast(perm, src=0)
        k_all = concat_all_gather(self._key_net(x_all[perm.view(world, -1)[rank]]))
        return k_all[torch.argsort(perm).view(world, -1)[rank]]

    # -- training
    def _loss(self, q: torch.Tensor, k: torch.Tensor, queue: KeyQueue) -> torch.Tensor:
        # q, k and every queued key are unit vectors already, so the loss need not normalise them again
        return info_nce(q, k, negatives=queue.keys.clone().detach(), temperature=self.cfg.temperature,
                        in_batch=False, normalize=False)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views[:2]
        q1, k2 = self._query(x1), self._keys(x2)
        loss = self._loss(q1, k2, self.queue)
        pending = [k2]
        if self.queue_sym is not None:
            q2, k1 = self._query(x2), self._keys(x1)
            loss = 0.5 * (loss + self._loss(q2, k1, self.queue_sym))
            pending.append(k1)
        self._pending = pending
        return StepOutput(loss=loss)

    def after_step(self, step: int, total: int) -> None:
        """Alg. 1 after the SGD step: momentum update of f_k, then enqueue this step's keys."""
        m = self.cfg.momentum
        momentum_update(self.encoder, self.key_encoder, m)
        momentum_update(self.head, self.key_head, m)
        if self._pending is not None:
            self.queue.enqueue(self._pending[0])
            if self.queue_sym is not None:
                self.queue_sym.enqueue(self._pending[1])
            self._pending = None

    def parameter_groups(self) -> list[dict]:
        """The query encoder and head only; the key encoder moves by momentum."""
        key = {id(p) for p in (*self.key_encoder.parameters(), *self.key_head.parameters())}
        return [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in key]}]

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.queue_size

    def negatives_memory_bytes(self, batch_size: int) -> int:
        # per direction: the queue, the clone the loss reads (kept for backward), N x (1 + K) logits fwd + grad
        dirs = 2 if self.cfg.symmetric else 1
        k, d = self.cfg.queue_size, self.cfg.proj_dim
        return dirs * (2 * queue_bytes(k, d) + info_nce_logit_bytes(batch_size, k))
