"""``sslbench profile``: throughput and memory of a method against its number of negatives.

For each value of the method's ``negatives_key`` (SimCLR: the batch size; MoCo: the queue
size; InstDisc: the sampled negatives) a fresh process (:mod:`sslbench.profiling.point`)
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

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, SSLBenchError
from .report import plot_profile, point_record, profile_table
from .sweep_types import DEFAULT_NEGATIVES, Point, ProfileOptions

MB = 2**20
EXACT_HEAP_THRESHOLD = 128 * 1024  # bytes: glibc maps blocks from this size on their own (fixed, not adaptive)


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


# ---------------------------------------------------------------- one point, in its own process


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def run_point_process(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m sslbench.profiling.point`` on ``spec``; returns its result (status ok/oom/failed).

    ``env`` is added to this process's environment. A child killed by SIGKILL (the kernel's
    OOM killer) counts as out of memory.
    """
    from ..registry import python_module_command
    from .point import RESULT_MARK

    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # not `python -m` as such: that imports a rich.py or torch.py from the working directory first
    proc = subprocess.run(python_module_command("sslbench.profiling.point", env), input=json.dumps(spec),
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


# ---------------------------------------------------------------- the sweep


def profile_method(method: str, opts: ProfileOptions) -> int:
    """Run the sweep; prints the table, writes the plot and one record per point.

    Returns the exit code: 0 when every point ended ok or out of memory, 1 when one failed otherwise.
    """
    from rich.console import Console

    from ..build import RunOptions, load_run_data, pretrain_split
    from ..config import parse_set
    from ..data import data_root
    from ..device import select_device
    from ..plugins import _extra_plugin_dirs, get_modality
    from ..provenance import code_info, environment_info, hardware_info
    from ..results.records import save_record
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
    modality = get_modality(info.modality)
    limit = modality.max_batch_size(pretrain_split(configs[0], info, splits))  # None: a step is not a batch
    for n, cfg in zip(values, configs, strict=True):
        if limit is not None and cfg.pretrain.batch_size > limit:
            raise ConfigError(f"Batch {cfg.pretrain.batch_size} (negatives {n}) exceeds the {limit} "
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
        record = point_record(point, cfg, cls, info, device, key, opts, provenance, modality.unit)
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
            err.print(f"[green]ok[/green] {point.samples_per_s:,.1f} {modality.unit}/s, peak {point.peak_mb:,.1f} MB")
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
    rate = modality.unit
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
