"""One point of ``sslbench profile``, run in a fresh process so that its peak memory is its own.

    python -m sslbench.profiling.point < spec.json      (or the JSON as the only argument)

The spec (written by :mod:`sslbench.profiling.sweep`) holds ``method``, ``suite``,
``overrides`` ([[key, value], ...], the swept negatives key included), ``seed``,
``steps``, ``warmup``, ``data_root``, ``plugin_dirs`` and optionally
``memory_limit_mb``. The point builds the run exactly as ``sslbench run`` does
(:func:`sslbench.build.build_run`), then feeds ``warmup + steps`` batches of the suite's real
data (``Trainer.batches``) through ``Trainer.train_step``.

Timing: wall time of each of the ``steps`` training steps after ``warmup`` (CUDA
synchronised, data preparation excluded); the median is reported.

Memory: on CUDA, ``memory_allocated`` right before the first step is the baseline and
``max_memory_allocated`` over all steps the peak. On CPU, the resident set size right before
the first step (glibc's free heap trimmed first) is the baseline; the high-water mark is
then reset (``/proc/self/clear_refs``) so that data loading and set-up do not count, and
read after the steps (``VmHWM``). Growth = peak - baseline. glibc keeps freed heap blocks
resident and reuses them by chance, so CPU peaks vary by tens of MB between runs; with
``MALLOC_MMAP_THRESHOLD_=131072`` in the environment (``sslbench profile --exact-heap``)
every block of 128 KiB or more is mapped on its own and the peak follows live
allocations, like CUDA's "allocated", at a cost in speed.

Output: lines on stdout, each ``RESULT_MARK`` + JSON: a ``setup`` line once the method
is built (so a point killed later still has its analytic figure) and a ``result`` line
with ``status`` "ok", "oom" or "failed".
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_MARK = "@@sslbench-profile@@ "
OOM_PATTERNS = ("out of memory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def is_oom(exc: BaseException) -> bool:
    """CUDA or CPU allocation failure (torch.OutOfMemoryError, MemoryError, allocator RuntimeErrors)."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(p in str(exc).lower() for p in OOM_PATTERNS)


def _status_kb(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; elsewhere the peak so far)."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """High-water mark of the resident set size (since the last :func:`reset_peak_rss`)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def rss_parts_mb() -> dict[str, float]:
    """Anonymous and file-backed resident memory now (Linux; empty elsewhere)."""
    parts = {k: _status_kb(k) for k in ("RssAnon", "RssFile")}
    return {k: v / 1024 for k, v in parts.items() if v is not None}


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


def trim_heap() -> None:
    """Return glibc's free heap memory to the OS (no-op without glibc)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def limit_memory(limit_mb: float, device: Any) -> None:
    """Let the steps use at most ``limit_mb`` more memory: RLIMIT_AS on CPU, a memory fraction on CUDA."""
    import torch

    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        frac = (torch.cuda.memory_allocated(device) + limit_mb * 2**20) / total
        torch.cuda.set_per_process_memory_fraction(min(1.0, frac), device)
        return
    size_kb = _status_kb("VmSize")
    if size_kb is None:
        return
    cap = int(size_kb * 1024 + limit_mb * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def emit(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_MARK + json.dumps({"kind": kind, **payload}) + "\n")
    sys.stdout.flush()


def run_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Set the run up, time ``warmup + steps`` training steps, measure memory; returns the result."""
    import torch

    from ..build import RunOptions, build_run
    from ..plugins import set_plugin_dirs
    from ..provenance import environment_info, hardware_info
    from ..suites import build_run_config

    set_plugin_dirs(spec.get("plugin_dirs") or [])
    overrides = [(k, v) for k, v in spec.get("overrides", [])]
    cfg, cls, _ = build_run_config(spec["method"], spec["suite"], overrides, spec.get("seed"))
    opts = RunOptions(data_root=Path(spec["data_root"]) if spec.get("data_root") else None, progress=False)
    run = build_run(cfg, cls, opts)
    method, trainer, device = run.method, run.trainer, run.device
    bs = cfg.pretrain.batch_size
    analytic = int(method.negatives_memory_bytes(bs))
    setup = {"device": str(device), "batch_size": bs, "num_negatives": int(method.num_negatives(bs)),
             "analytic_bytes": analytic, "threads": torch.get_num_threads(), "unit": trainer.unit}
    emit("setup", {**setup, "environment": environment_info(), "hardware": hardware_info(device)})
    warmup, steps = int(spec.get("warmup", 3)), int(spec.get("steps", 10))
    batches = trainer.batches(warmup + steps)
    batch: Any = next(batches)  # prepared before the baseline: what grows is the step's own memory
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
        kind = "cuda_max_allocated"
    else:
        trim_heap()
        baseline, parts_before = current_rss_mb(), rss_parts_mb()
        kind = "cpu_peak_rss" if reset_peak_rss() else "cpu_peak_rss_lifetime"
    if spec.get("memory_limit_mb"):
        limit_memory(float(spec["memory_limit_mb"]), device)
    times: list[float] = []
    losses: list[float] = []
    for i in range(warmup + steps):
        if batch is None:
            batch = next(batches)
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = trainer.train_step(batch)
        if cuda:
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        batch = None  # one batch alive at a time, as at the baseline
        if i >= warmup:
            times.append(dt)
            losses.append(loss)
    if cuda:
        peak, detail = torch.cuda.max_memory_allocated(device) / 2**20, {}
    else:
        peak = peak_rss_mb()
        detail = {"rss_before_mb": parts_before, "rss_after_mb": rss_parts_mb(),
                  "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")}
    median = statistics.median(times) if times else float("nan")
    return {**setup, "status": "ok", "step_s": times, "median_step_s": median,
            "samples_per_s": trainer.samples_per_step / median if median > 0 else None, "baseline_mb": baseline, "peak_mb": peak,
            "growth_mb": peak - baseline, "memory_kind": kind, "final_loss": losses[-1] if losses else None,
            **detail}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0] if argv else sys.stdin.read())
    try:
        result = run_point(spec)
    except BaseException as e:  # noqa: BLE001 - every outcome becomes a result line
        if isinstance(e, KeyboardInterrupt):
            raise
        oom = is_oom(e)
        if not oom:
            traceback.print_exc()
        first_line = (f"{type(e).__name__}: {e}".splitlines() or [type(e).__name__])[0]
        result = {"status": "oom" if oom else "failed", "error": first_line[:500]}
    emit("result", result)
    return 0 if result["status"] in ("ok", "oom") else 1


if __name__ == "__main__":
    sys.exit(main())
