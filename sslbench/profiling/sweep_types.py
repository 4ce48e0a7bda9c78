"""The options of a profile sweep and one measured point (shared by the sweep and its report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SUITE = "cifar10-linear-small"
DEFAULT_NEGATIVES = "256,4096,65536"
PROFILE_VERSION = 1


@dataclass
class ProfileOptions:
    suite: str = DEFAULT_SUITE
    negatives: str = DEFAULT_NEGATIVES
    batch_size: int | None = None  # fixed batch for queue/bank methods; default the suite's
    steps: int = 10
    warmup: int = 3
    sets: tuple[str, ...] = ()
    out_dir: Path = Path("results/runs")
    plot: Path | None = None  # default <out>/profile-<method>-<suite>.png
    device: str | None = None
    memory_limit_mb: float | None = None
    exact_heap: bool = False  # CPU: MALLOC_MMAP_THRESHOLD_=131072 in every point, peak RSS ~ live allocations
    data_dir: str | None = None
    seed: int | None = None


@dataclass
class Point:
    """One measured point of the sweep."""

    negatives: int
    batch_size: int
    status: str = "failed"  # ok | oom | failed | interrupted
    num_negatives: int | None = None
    samples_per_s: float | None = None
    step_ms: float | None = None
    peak_mb: float | None = None
    baseline_mb: float | None = None
    growth_mb: float | None = None
    analytic_mb: float | None = None
    memory_kind: str | None = None
    slope_ratio: float | None = None  # measured / analytic memory slope from the previous ok point
    error: str | None = None
    record_path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
