"""Stored negatives and target networks: MoCo's key queue, InstDisc's memory bank, momentum updates.

- :class:`KeyQueue`: MoCo's FIFO dictionary of K keys (He et al. 2019, arXiv 1911.05722, Sec. 3.2, Alg. 1).
- :class:`MemoryBank`: InstDisc's one-feature-per-sample bank (Wu et al. 2018, arXiv 1805.01978, Sec. 3.2-3.3).
- :func:`momentum_update`: theta_k <- m theta_k + (1 - m) theta_q (MoCo Eq. 2; BYOL's target network).

Queue and bank are registered buffers, so ``state_dict()`` (and so the engine's
checkpoints) carry them and a resumed run continues with exactly the same
negatives. Both all-gather what they store when ``torch.distributed`` is
initialised with more than one process; on one process that is a no-op. Every rank then stores the same
keys in the same order (the global batch's: rank 0's rows first), so queue and bank stay identical across
ranks and equal to one process's on the global batch (tested in ``tests/test_distributed.py``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import distributed


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process and collectives are on (not in
    rank 0's evaluation, :func:`sslbench.distributed.local_only`)."""
    return distributed.active()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 (B x ... -> world*B x ..., rank order; no gradient). Identity on one process."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def queue_bytes(size: int, dim: int, dtype_bytes: int = 4) -> int:
    """Bytes of a K x D key queue (or an N x D bank)."""
    return size * dim * dtype_bytes


bank_bytes = queue_bytes


def _random_unit(n: int, d: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d), dim=1)


class KeyQueue(nn.Module):
    """MoCo's queue of the K most recent keys (He et al. 2019, Alg. 1: ``enqueue(queue, k); dequeue(queue)``).

    keys: K x D buffer, initialised with random unit vectors (as the official code does)
    ptr:  0-d int64 buffer, the row the next key is written to (= the oldest key once full)
    """

    keys: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size, self.dim = size, dim
        self.register_buffer("keys", _random_unit(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, k: torch.Tensor) -> None:
        """Write keys B x D (gathered from every rank) after the newest, overwriting the oldest; any B."""
        k = concat_all_gather(k.detach()).to(self.keys.dtype)
        b = k.shape[0]
        if b >= self.size:  # only the last K survive; store them oldest-first from row 0
            self.keys.copy_(k[-self.size:])
            self.ptr.zero_()
            return
        p = int(self.ptr)
        rows = (p + torch.arange(b, device=self.keys.device)) % self.size
        self.keys[rows] = k
        self.ptr.fill_((p + b) % self.size)

    def ordered(self) -> torch.Tensor:
        """The keys oldest to newest: K x D."""
        p = int(self.ptr)
        return torch.cat([self.keys[p:], self.keys[:p]])

    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size()


class MemoryBank(nn.Module):
    """InstDisc's memory bank: one L2-normalised D-dim feature per training sample (Wu et al. 2018, Sec. 3.2).

    memory: N x D buffer, initialised with random unit vectors
    Negatives are drawn uniformly (the paper's noise distribution P_n = 1/N, Sec. 3.2), and an entry
    is refreshed with the proximal update of the official lemniscate code (Sec. 3.3):
    v_i <- normalize(m v_i + (1 - m) f_i).
    """

    memory: torch.Tensor

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"bank size must be >= 1, got {size}")
        self.size, self.dim = size, dim
        self.register_buffer("memory", _random_unit(size, dim))

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        """Entries of the samples ``idx`` (any shape S) -> S x D."""
        return self.memory[idx]

    def sample(self, n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n x k indices drawn uniformly from [0, N) (with replacement), on the bank's device."""
        idx = torch.randint(0, self.size, (n, k), generator=generator)
        return idx.to(self.memory.device)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, feats: torch.Tensor, momentum: float = 0.5) -> None:
        """v_i <- normalize(m v_i + (1 - m) f_i) for idx (B, int64) and feats (B x D), gathered from every rank."""
        idx = concat_all_gather(idx.to(self.memory.device))
        feats = concat_all_gather(feats.detach()).to(self.memory.dtype)
        v = momentum * self.memory[idx] + (1 - momentum) * feats
        self.memory[idx] = F.normalize(v, dim=1)

    def nbytes(self) -> int:
        return self.memory.numel() * self.memory.element_size()


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float, copy_buffers: bool = True) -> None:
    """theta_k <- m theta_k + (1 - m) theta_q over the parameters (MoCo Eq. 2); buffers (BN running
    statistics) are copied from ``online`` when ``copy_buffers``. ``target`` must be a copy of ``online``."""
    for (name, q), (name_k, k) in zip(online.named_parameters(), target.named_parameters(), strict=True):
        if name != name_k:
            raise ValueError(f"momentum_update: parameter {name!r} does not match {name_k!r}")
        k.mul_(m).add_((1 - m) * q.detach())
    if copy_buffers:
        for q, k in zip(online.buffers(), target.buffers(), strict=True):
            k.copy_(q)
