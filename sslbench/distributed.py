"""Data-parallel training under ``torchrun``: the process group, ranks, and the few collectives the engine uses.

``torchrun --nproc-per-node N -m sslbench run ...`` (or ``sslbench run --nproc N``) starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment.
:func:`process_group` joins them (NCCL on CUDA devices, each process on ``cuda:LOCAL_RANK``; gloo on CPU)
and destroys the group at the end. Without those variables (a plain ``sslbench run``) everything here is
a no-op for one process: :func:`active` is False, :func:`rank` 0, :func:`world_size` 1.

- :func:`active`: a group of more than one process is joined and collectives are on (not inside
  :func:`local_only`, the rank-0-only evaluation after pretraining, where a collective would wait forever).
- :func:`average_gradients`: the mean of every trainable parameter's gradient over the ranks, in buckets,
  the parameters in the same order on every rank (their registration order), a zero where a rank has no
  gradient, and a parameter no rank has a gradient for left without one (the optimiser skips it, as it
  would in one process).
- :func:`broadcast_module`: rank 0's parameters and buffers to every rank.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV = "SSLBENCH_DIST_TIMEOUT_MIN"  # minutes a rank waits at a collective (rank 0 evaluating): default 120
BUCKET_BYTES = 25 * 2**20  # gradient all-reduce buckets (DDP's default bucket size)

_local_only = 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from torchrun's environment (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def env_rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """The number of processes: the joined group's, else torchrun's ``WORLD_SIZE`` (1 for a plain run)."""
    return dist.get_world_size() if initialized() else env_world_size()


def rank() -> int:
    """This process's rank: the joined group's, else torchrun's ``RANK`` (0 for a plain run)."""
    return dist.get_rank() if initialized() else env_rank()


def is_main() -> bool:
    """Rank 0: the one process that prints, shows progress and writes records and checkpoints."""
    return rank() == 0


def active() -> bool:
    """True while collectives are on: a joined group of more than one process, outside :func:`local_only`."""
    return initialized() and dist.get_world_size() > 1 and _local_only == 0


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Collectives off inside: what one rank does alone (rank 0's evaluation) sees :func:`active` False, so a
    gather is the identity instead of a wait for ranks that are not there."""
    global _local_only
    _local_only += 1
    try:
        yield
    finally:
        _local_only -= 1


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device_name: str = "auto") -> Iterator[None]:
    """Join torchrun's processes for the block (nothing for one process) and destroy the group at its end.
    ``device_name`` is ``pretrain.device``: NCCL when it resolves to CUDA (``cuda:LOCAL_RANK`` made the
    current device first), gloo otherwise."""
    if env_world_size() <= 1 or initialized():
        yield
        return
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        from .errors import ConfigError

        raise ConfigError(f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} not set: start distributed runs "
                          "with torchrun or sslbench run --nproc N")
    from .device import select_device

    device = select_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(env_local_rank())
    minutes = float(os.environ.get(TIMEOUT_ENV, "120"))
    dist.init_process_group(backend_for(device), timeout=datetime.timedelta(minutes=minutes))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _device_of(tensors: Sequence[torch.Tensor]) -> torch.device:
    """Where this group's collectives run: the current CUDA device under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensors[0].device if tensors else torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum a few floats over the ranks (one small collective); the values themselves on one process."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device_of([]))
    dist.all_reduce(t)
    return t.tolist()


def broadcast_int(value: int, src: int = 0) -> int:
    """``src``'s integer on every rank (exit codes)."""
    if not active():
        return value
    t = torch.tensor([int(value)], dtype=torch.long, device=_device_of([]))
    dist.broadcast(t, src=src)
    return int(t.item())


def all_true(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on every rank (a lock rank 0 took, a setup that succeeded)."""
    if not active():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.long, device=_device_of([]))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Rank ``src``'s parameters and buffers (a queue, a bank, BN statistics) copied into every rank's."""
    if not active():
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=src)


@torch.no_grad()
def average_gradients(params: Sequence[torch.nn.Parameter], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Replace each parameter's gradient by its mean over the ranks (what DDP does after backward).

    The parameters must come in the same order on every rank. A rank without a gradient for a parameter
    contributes zeros; a parameter without a gradient on every rank keeps ``grad = None`` (so an optimiser
    with weight decay or momentum leaves it alone, as in one process). Gradients are flattened into buckets
    of about ``bucket_bytes`` per dtype, so a model is a few collectives, not one per tensor.
    """
    if not active():
        return
    params = list(params)
    world = dist.get_world_size()
    device = _device_of([p for p in params])
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has)
    todo = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for p in todo:
        if bucket and (p.dtype != bucket[0].dtype or size + p.numel() * p.element_size() > bucket_bytes):
            _reduce_bucket(bucket, world)
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel() * p.element_size()
    if bucket:
        _reduce_bucket(bucket, world)


def _reduce_bucket(params: list[torch.nn.Parameter], world: int) -> None:
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for p in params:
        n = p.numel()
        value = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = value.clone()
        else:
            p.grad.copy_(value)
        offset += n


def launch(nproc: int, argv: Sequence[str]) -> int:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m sslbench ARGV`` on this machine; returns
    its exit code. SIGINT and SIGTERM are passed on to it (torchrun passes them to the ranks: a checkpoint and
    an ``interrupted`` record by rank 0); it runs in its own session, so a terminal's Ctrl-C arrives once."""
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "sslbench", *argv]
    proc = subprocess.Popen(cmd, start_new_session=True)

    def forward(signum: int, frame: object) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


__all__ = ["active", "all_reduce_sum", "all_true", "average_gradients", "barrier", "broadcast_int",
           "broadcast_module", "env_world_size", "initialized", "is_main", "launch", "local_only", "process_group", "rank",
           "world_size"]
