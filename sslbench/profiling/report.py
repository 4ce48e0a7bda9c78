"""What a profile sweep leaves behind: one record per point (for ``sslbench compare``), a rich table and a PNG
of throughput and memory against the negatives (log2 x axis, the analytic floor dashed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..build import new_record, new_run_id
from ..results.records import Metric
from .sweep_types import PROFILE_VERSION, Point, ProfileOptions

# ---------------------------------------------------------------- records


def profile_hash(cfg: Any, key: str, negatives: int, device_type: str, exact_heap: bool = False) -> str:
    """12 hex digits over the run's config hash, the swept key and value, the device type and how memory is kept."""
    from ..config import config_hash

    blob = json.dumps({"config_hash": config_hash(cfg), "negatives_key": key, "negatives": negatives,
                       "device": device_type, "exact_heap": exact_heap, "profile_version": PROFILE_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def point_record(point: Point, cfg: Any, cls: type, info: Any, device: torch.device, key: str,
                 opts: ProfileOptions, provenance: dict[str, Any], unit: str = "samples"):
    """The RunRecord of one point: status ok, or failed with error "out of memory" for an OOM point; its
    throughput is in ``unit``/s (the modality's unit)."""
    from ..config import resolved_dict

    status = point.status if point.status in ("ok", "interrupted") else "failed"
    error = "out of memory" if point.status == "oom" else point.error
    config = resolved_dict(cfg)
    config["profile"] = {"negatives_key": key, "negatives": point.negatives, "num_negatives": point.num_negatives,
                         "batch_size": point.batch_size, "steps": opts.steps, "warmup": opts.warmup,
                         "memory_limit_mb": opts.memory_limit_mb, "exact_heap": opts.exact_heap,
                         "device": str(device),
                         "outcome": point.status, "detail": point.error}
    record = new_record(cfg, cls, info, run_id=new_run_id(cfg, prefix="profile-", extra=str(point.negatives)),
                        config_hash=profile_hash(cfg, key, point.negatives, device.type, opts.exact_heap),
                        suite_name=f"profile:{cfg.suite}", protocol_versions={"profile": PROFILE_VERSION},
                        config=config, status=status, error=error, **provenance)
    if point.status == "ok":
        per_s = f"{unit}/s"  # what a step processes: images, nodes, ...
        for mname, value, higher, unit in (("samples_per_s", point.samples_per_s, True, per_s),
                                           ("step_ms", point.step_ms, False, "ms"),
                                           ("peak_memory_mb", point.peak_mb, False, "MB"),
                                           ("memory_growth_mb", point.growth_mb, False, "MB"),
                                           ("analytic_memory_mb", point.analytic_mb, False, "MB")):
            if value is not None:
                record.add_metric(mname, Metric(value=round(float(value), 4), higher_is_better=higher, unit=unit,
                                                protocol="profile"))
    raw = point.raw
    record.timing = {"samples_per_s": point.samples_per_s, "step_ms": point.step_ms,
                     "step_s": raw.get("step_s"), "peak_memory_mb": point.peak_mb,
                     "baseline_memory_mb": point.baseline_mb, "memory_growth_mb": point.growth_mb,
                     "analytic_memory_mb": point.analytic_mb, "peak_memory_kind": point.memory_kind,
                     "memory_slope_ratio": point.slope_ratio, "threads": raw.get("threads"),
                     "malloc_mmap_threshold": raw.get("malloc_mmap_threshold"),
                     "rss_parts_mb": {"before": raw.get("rss_before_mb"), "after": raw.get("rss_after_mb")}}
    record.train = {"steps": opts.steps, "warmup_steps": opts.warmup, "final_loss": raw.get("final_loss")}
    return record


# ---------------------------------------------------------------- output


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def profile_table(points: list[Point], title: str, rate: str = "samples"):
    """A rich Table: one row per point, sorted by negatives (``rate``: what a step processes, samples or nodes)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("negatives", "batch", "status", f"{rate}/s", "step ms", "peak MB", "growth MB",
                "analytic MB", "meas/analytic slope"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for p in sorted(points, key=lambda p: p.negatives):
        colour = {"ok": "green", "oom": "yellow"}.get(p.status, "red")
        table.add_row(str(p.negatives), str(p.batch_size), f"[{colour}]{p.status}[/{colour}]",
                      _fmt(p.samples_per_s, ",.1f"), _fmt(p.step_ms, ",.1f"), _fmt(p.peak_mb, ",.1f"),
                      _fmt(p.growth_mb, ",.1f"), _fmt(p.analytic_mb, ",.2f"), _fmt(p.slope_ratio, ".2f"))
    return table


def plot_profile(points: list[Point], path: Path, title: str, key: str, rate: str = "samples") -> Path:
    """Two panels against the negatives (log2 x): samples/s; peak and growth memory with the analytic floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(points, key=lambda p: p.negatives)
    ok = [p for p in pts if p.status == "ok"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot([p.negatives for p in ok], [p.samples_per_s for p in ok], "o-", color="C0")
    ax1.set_ylabel(f"{rate} / s (median step)")
    ax2.plot([p.negatives for p in ok], [p.peak_mb for p in ok], "o-", color="C1", label="peak")
    ax2.plot([p.negatives for p in ok], [p.growth_mb for p in ok], "s-", color="C2", label="growth (peak - baseline)")
    floor = [p for p in pts if p.analytic_mb is not None]
    ax2.plot([p.negatives for p in floor], [p.analytic_mb for p in floor], "--", color="k", label="analytic floor")
    ax2.set_ylabel("memory (MB)")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"negatives ({key})")
        ax.grid(True, which="both", alpha=0.3)
        for p in pts:
            if p.status != "ok":
                ax.axvline(p.negatives, color="red", ls=":", lw=1)
                ax.annotate(p.status, (p.negatives, 0.95), xycoords=("data", "axes fraction"), color="red",
                            ha="center", fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
