"""``sslbench profile``: throughput and memory against the number of negatives (sslbench.profiling)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("profile")
@click.argument("method")
@click.option("--negatives", default="256,4096,65536", show_default=True, metavar="LIST",
              help="Comma-separated values of the method's negatives key: batch sizes for simclr, "
                   "queue sizes for moco, sampled negatives for instdisc.")
@click.option("--suite", default="cifar10-linear-small", show_default=True, help="Suite name or path to a suite YAML.")
@click.option("--batch-size", type=int, default=None,
              help="Fixed batch for queue/bank methods (moco, instdisc); default: the suite's.")
@click.option("--steps", type=int, default=10, show_default=True, help="Timed training steps per point.")
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed warm-up steps per point.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (as in run).")
@click.option("--out", "out_dir", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the records (one JSON per point).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="PNG of throughput and memory vs negatives [default: <out>/profile-<method>-<suite>.png].")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps [default: the suite's, auto].")
@click.option("--memory-limit-mb", type=float, default=None,
              help="Let each point's steps use at most this much more memory (RLIMIT_AS on CPU, a memory "
                   "fraction on CUDA); a point beyond it is recorded as out of memory.")
@click.option("--exact-heap", is_flag=True,
              help="CPU: run the points with MALLOC_MMAP_THRESHOLD_=131072 so that peak RSS follows live "
                   "allocations (reproducible memory slopes; slower steps).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data root (default: $SSLBENCH_DATA, else ~/.cache/sslbench/data).")
def profile_cmd(method: str, negatives: str, suite: str, batch_size: int | None, steps: int, warmup: int,
                sets: tuple[str, ...], out_dir: str, plot: str | None, device: str | None,
                memory_limit_mb: float | None, exact_heap: bool, data_dir: str | None) -> None:
    """Throughput and memory of METHOD against its number of negatives, one fresh process per point.

    \b
    Per point: warm up, time steps on the suite's real data, report median samples/s and
    step time, peak memory (CUDA max allocated; CPU peak RSS and its growth over the RSS
    before the first step) and the method's analytic floor of the negatives' memory; the
    table compares the measured memory slope with the analytic one. Out-of-memory points
    are recorded and the sweep goes on. Writes a table, a PNG and records for `compare`.

    \b
    sslbench profile simclr --negatives 64,128,256
    sslbench profile moco.v2 --negatives 256,4096,65536 --steps 5
    """
    from ..profiling.sweep import ProfileOptions, profile_method

    opts = ProfileOptions(suite=suite, negatives=negatives, batch_size=batch_size, steps=steps, warmup=warmup,
                          sets=sets, out_dir=Path(out_dir), plot=Path(plot) if plot else None, device=device,
                          memory_limit_mb=memory_limit_mb, exact_heap=exact_heap, data_dir=data_dir)
    sys.exit(profile_method(method, opts))
