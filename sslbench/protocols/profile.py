"""``sslbench profile``: throughput and memory of a method against its number of negatives.

For each value of the method's ``negatives_key`` (SimCLR: the batch size; MoCo: the queue
size; InstDisc: the sampled negatives) a fresh process (:mod:`sslbench.profile_point`)
builds the run as ``sslbench run`` would, warms up, times training steps on the suite's
real data and measures memory: CPU peak resident set size of that process (growth =
peak - RSS right before the first step), or CUDA ``max_memory_allocated``. Next to it
stands the method's analytic floor (``Method.negatives_memory_bytes``) and, between
consecutive points, the ratio of the measured to the analytic memory slope (bytes per
extra negative). An out-of-memory point is recorded as such and the sweep goes on.

Reading the slope ratio: the peak is a maximum over the phases of a step, so the
negatives show in it only once their phase (usually the loss's backward pass) is the
largest; between two small points the peak may sit in the encoder's backward pass and
the ratio falls below 1. Stored negatives allocated at set-up (a queue, a bank) are in
the baseline, not in the growth. The floor counts float32 tensors: under bf16 autocast
on CUDA compare with ``--set pretrain.precision=fp32``. On CPU glibc's heap keeps freed
blocks resident, which moves the peak by tens of MB between runs; ``exact_heap`` runs the
points with ``MALLOC_MMAP_THRESHOLD_=131072`` so that the peak follows live allocations
(reproducible slopes, slower steps).

Output: a rich table, a PNG (throughput and peak memory against the negatives, log2 x
axis, the analytic floor dashed) and one record per point (suite ``profile:<suite>``)
that ``sslbench compare`` reads.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, SSLBenchError

DEFAULT_SUITE = "cifar10-linear-small"
DEFAULT_NEGATIVES = "256,4096,65536"
PROFILE_VERSION = 1
MB = 2**20
EXACT_HEAP_THRESHOLD = 128 * 1024  # bytes: glibc maps blocks from this size on their own (fixed, not adaptive)


# ---------------------------------------------------------------- analytic helpers


def saved_activation_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for backward in ``module(x)``, each storage once, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(seen.values())


def per_sample_activation_bytes(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Activation bytes autograd keeps per input sample of ``module`` in training mode (float32, CPU).

    Traced on a copy (the module's BN statistics are untouched) at batch 2 and 4; the
    difference halved leaves out what does not grow with the batch.
    """
    net = copy.deepcopy(module).float().cpu().train()
    g = torch.Generator().manual_seed(0)
    sizes = [saved_activation_bytes(net, torch.rand(b, *input_shape, generator=g)) for b in (2, 4)]
    return max(0, (sizes[1] - sizes[0]) // 2)


# ---------------------------------------------------------------- input


def parse_negatives(text: str) -> list[int]:
    """"256,4096,65536" -> [256, 4096, 65536] (order kept, duplicates dropped); one-line error otherwise."""
    values: list[int] = []
    for item in str(text).split(","):
        s = item.strip()
        try:
            v = int(s)
        except ValueError:
            v = 0
        if v < 1 or not s.lstrip("+").isdigit():
            raise SSLBenchError(f"Bad --negatives value '{s}' in '{text}': expected positive integers "
                                f"separated by commas, e.g. {DEFAULT_NEGATIVES}")
        if v not in values:
            values.append(v)
    return values


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


# ---------------------------------------------------------------- one point, in its own process


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def run_point_process(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m sslbench.profile_point`` on ``spec``; returns its result (status ok/oom/failed).

    ``env`` is added to this process's environment. A child killed by SIGKILL (the kernel's
    OOM killer) counts as out of memory.
    """
    from ..profile_point import RESULT_MARK

    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "sslbench.profile_point"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env)
    lines = [json.loads(ln[len(RESULT_MARK):]) for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    setup = next((d for d in lines if d.get("kind") == "setup"), {})
    result = next((d for d in lines if d.get("kind") == "result"), None)
    if result is not None:
        return {**setup, **result}
    if proc.returncode == -signal.SIGKILL:
        return {**setup, "status": "oom", "error": "out of memory (killed by SIGKILL)"}
    tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    why = _signal_name(proc.returncode) if proc.returncode < 0 else f"exit code {proc.returncode}"
    return {**setup, "status": "failed", "error": (tail[-1] if tail else "no output") + f" ({why})"}


def _point_from_result(n: int, batch: int, res: dict[str, Any]) -> Point:
    p = Point(negatives=n, batch_size=int(res.get("batch_size") or batch), status=res.get("status", "failed"),
              num_negatives=res.get("num_negatives"), error=res.get("error"), raw=res)
    if res.get("analytic_bytes") is not None:
        p.analytic_mb = res["analytic_bytes"] / MB
    if p.status == "ok":
        p.samples_per_s = res.get("samples_per_s")
        p.step_ms = res["median_step_s"] * 1000 if res.get("median_step_s") is not None else None
        p.peak_mb, p.baseline_mb, p.growth_mb = res.get("peak_mb"), res.get("baseline_mb"), res.get("growth_mb")
        p.memory_kind = res.get("memory_kind")
    return p


def slope_ratios(points: list[Point]) -> None:
    """For each ok point after the first (by negatives): (measured growth slope) / (analytic slope)."""
    ok = sorted((p for p in points if p.status == "ok" and p.growth_mb is not None and p.analytic_mb is not None),
                key=lambda p: p.negatives)
    for prev, cur in zip(ok, ok[1:], strict=False):
        analytic = cur.analytic_mb - prev.analytic_mb
        cur.slope_ratio = (cur.growth_mb - prev.growth_mb) / analytic if analytic > 0 else None


def overall_ratio(points: list[Point], measure: str = "growth_mb") -> float | None:
    """Measured / analytic memory slope between the smallest and the largest ok point (``growth_mb`` or ``peak_mb``)."""
    ok = sorted((p for p in points if p.status == "ok" and getattr(p, measure) is not None
                 and p.analytic_mb is not None), key=lambda p: p.negatives)
    if len(ok) < 2 or ok[-1].analytic_mb <= ok[0].analytic_mb:
        return None
    return (getattr(ok[-1], measure) - getattr(ok[0], measure)) / (ok[-1].analytic_mb - ok[0].analytic_mb)


# ---------------------------------------------------------------- records


def profile_hash(cfg: Any, key: str, negatives: int, device_type: str, exact_heap: bool = False) -> str:
    """12 hex digits over the run's config hash, the swept key and value, the device type and how memory is kept."""
    from ..config import config_hash

    blob = json.dumps({"config_hash": config_hash(cfg), "negatives_key": key, "negatives": negatives,
                       "device": device_type, "exact_heap": exact_heap, "profile_version": PROFILE_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def point_record(point: Point, cfg: Any, cls: type, info: Any, device: torch.device, key: str,
                 opts: ProfileOptions, provenance: dict[str, Any]):
    """The RunRecord of one point: status ok, or failed with error "out of memory" for an OOM point."""
    from ..config import resolved_dict
    from ..plugins import METHODS
    from ..records import Metric, RunRecord

    name, _, variant = cfg.method.partition(".")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    status = point.status if point.status in ("ok", "interrupted") else "failed"
    error = "out of memory" if point.status == "oom" else point.error
    config = resolved_dict(cfg)
    config["profile"] = {"negatives_key": key, "negatives": point.negatives, "num_negatives": point.num_negatives,
                         "batch_size": point.batch_size, "steps": opts.steps, "warmup": opts.warmup,
                         "memory_limit_mb": opts.memory_limit_mb, "exact_heap": opts.exact_heap,
                         "device": str(device),
                         "outcome": point.status, "detail": point.error}
    record = RunRecord(
        run_id=f"profile-{cfg.method}-{cfg.suite}-{point.negatives}-{stamp}-{uuid.uuid4().hex[:6]}",
        status=status,
        method={"name": name, "variant": variant or None, "version": cls.version, "origin": METHODS.entry(name).origin},
        suite={"name": f"profile:{cfg.suite}", "version": cfg.suite_version, "data_fingerprint": info.fingerprint,
               "data_source": info.source, "reference": None, "protocol_versions": {"profile": PROFILE_VERSION}},
        config=config, config_hash=profile_hash(cfg, key, point.negatives, device.type, opts.exact_heap), seed=cfg.seed,
        error=error, created=datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance,
    )
    if point.status == "ok":
        per_s = "nodes/s" if info.modality == "graph" else "samples/s"  # a graph step processes its N nodes
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


# ---------------------------------------------------------------- the sweep


def profile_method(method: str, opts: ProfileOptions) -> int:
    """Run the sweep; prints the table, writes the plot and one record per point.

    Returns the exit code: 0 when every point ended ok or out of memory, 1 when one failed otherwise.
    """
    from rich.console import Console

    from ..config import parse_set
    from ..data import data_root
    from ..engine import select_device
    from ..plugins import _extra_plugin_dirs
    from ..provenance import code_info, environment_info, hardware_info
    from ..records import save_record
    from ..runner import RunOptions, load_run_data, subset
    from ..suites import build_run_config, suite_path

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    values = parse_negatives(opts.negatives)
    if opts.steps < 1 or opts.warmup < 0:
        raise ConfigError(f"--steps must be >= 1 and --warmup >= 0, got {opts.steps} and {opts.warmup}")
    if opts.memory_limit_mb is not None and opts.memory_limit_mb <= 0:
        raise ConfigError(f"--memory-limit-mb must be positive, got {opts.memory_limit_mb:g}")
    overrides = parse_set(opts.sets)
    base, cls, _ = build_run_config(method, opts.suite, overrides, opts.seed)
    key = cls.negatives_key
    extra: list[tuple[str, Any]] = []
    if opts.device:
        extra.append(("pretrain.device", opts.device))
    if opts.batch_size is not None:
        if key == "pretrain.batch_size":
            raise ConfigError(f"--batch-size does not apply to {method}: its negatives are the batch "
                              f"({key}); sweep it with --negatives")
        extra.append(("pretrain.batch_size", opts.batch_size))
    # every point's config first: bad input fails before any point runs
    configs = [build_run_config(method, opts.suite, [*overrides, *extra, (key, n)], opts.seed)[0] for n in values]
    root = data_root(opts.data_dir)
    info, splits = load_run_data(configs[0], RunOptions(data_root=root))
    train_size = len(subset(splits[configs[0].dataset.train], configs[0].dataset.max_train_samples))
    transductive = splits[configs[0].dataset.train].graph is not None  # every step is the whole graph
    for n, cfg in zip(values, configs, strict=True):
        if not transductive and cfg.pretrain.batch_size > train_size:
            raise ConfigError(f"Batch {cfg.pretrain.batch_size} (negatives {n}) exceeds the {train_size} "
                              f"training samples of suite '{cfg.suite}'")
    device = select_device(configs[0].pretrain.device)
    spath = str(suite_path(opts.suite))
    code = code_info()
    child_env = {"MALLOC_MMAP_THRESHOLD_": str(EXACT_HEAP_THRESHOLD)} if opts.exact_heap else {}
    err.print(f"[bold]profile {method}[/bold] on [bold]{base.suite}[/bold] ({device}): {key} = "
              f"{', '.join(map(str, values))}; {opts.warmup} warm-up + {opts.steps} timed steps per point")

    def save(point: Point, cfg: Any) -> None:
        # environment and hardware as the point's own process saw them (the parent never touches the GPU)
        provenance = {"code": code, "environment": point.raw.get("environment") or environment_info(),
                      "hardware": point.raw.get("hardware") or {**hardware_info(torch.device("cpu")),
                                                                 "device": str(device)}}
        record = point_record(point, cfg, cls, info, device, key, opts, provenance)
        if point.record_path is not None:  # rewrite in place (same run id) once the slopes are known
            record.run_id = point.record_path.stem
        point.record_path = save_record(record, opts.out_dir)

    points: list[Point] = []
    for i, (n, cfg) in enumerate(zip(values, configs, strict=True), 1):
        spec = {"method": method, "suite": spath, "seed": cfg.seed, "steps": opts.steps, "warmup": opts.warmup,
                "overrides": [[k, v] for k, v in [*overrides, *extra, (key, n)]], "data_root": str(root),
                "plugin_dirs": list(_extra_plugin_dirs), "memory_limit_mb": opts.memory_limit_mb}
        err.print(f"  [{i}/{len(values)}] {key}={n} ...", end=" ")
        try:
            point = _point_from_result(n, cfg.pretrain.batch_size, run_point_process(spec, child_env))
        except KeyboardInterrupt:
            point = Point(negatives=n, batch_size=cfg.pretrain.batch_size, status="interrupted",
                          error="interrupted by the user")
            save(point, cfg)
            err.print("[yellow]interrupted[/yellow]: the points so far are saved")
            return 130
        points.append(point)
        save(point, cfg)
        if point.status == "ok":
            err.print(f"[green]ok[/green] {point.samples_per_s:,.1f} {'nodes' if info.modality == 'graph' else 'samples'}"
                      f"/s, peak {point.peak_mb:,.1f} MB")
        else:
            colour = "yellow" if point.status == "oom" else "red"
            err.print(f"[{colour}]{point.status}[/{colour}] {point.error or ''}")
    slope_ratios(points)
    for point, cfg in zip(points, configs, strict=True):
        if point.slope_ratio is not None:
            save(point, cfg)

    title = (f"sslbench profile {method} on {base.suite}: negatives = {key} ({device}; median of "
             f"{opts.steps} steps after {opts.warmup} warm-up)")
    out = Console()
    if not out.is_terminal:
        out.width = max(out.width, 132)  # the whole table in logs and pipes
    rate = "nodes" if info.modality == "graph" else "samples"
    out.print(profile_table(points, title, rate))
    ratio, peak_ratio = overall_ratio(points), overall_ratio(points, "peak_mb")
    if ratio is not None:
        ok = sorted((p for p in points if p.status == "ok"), key=lambda p: p.negatives)
        out.print(f"memory per extra negative, measured / analytic, {ok[0].negatives} -> {ok[-1].negatives}: "
                  f"growth {ratio:.2f}, peak {peak_ratio:.2f}", highlight=False)
    plot = opts.plot or opts.out_dir / f"profile-{method}-{base.suite}.png"
    plot_profile(points, Path(plot), title, key, rate)
    out.print(f"plot: {plot}\nrecords: {opts.out_dir} ({len(points)} written)", highlight=False)
    return 1 if any(p.status == "failed" for p in points) else 0
