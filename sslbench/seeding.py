"""Seeds: the whole process's generators, and the per-step seeds that make a resumed run replay exactly.

Data order comes from ``(seed, epoch)`` and augmentation randomness from ``(seed, global step)``
(or ``(seed, epoch, sample index)`` in per-sample workers), all through :func:`step_seed`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; ``deterministic`` also asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for position ``step`` of the run seeded ``seed`` (negative steps: epoch orders)."""
    return (seed * 1_000_003 + step * 7919 + 17) % (2**63 - 1)


__all__ = ["seed_everything", "step_seed"]
