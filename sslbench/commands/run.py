"""``sslbench run``: resolve the config for each seed, preflight, execute, print a one-line summary per run."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from ..atomic import ensure_writable_dir
from ..build import RunOptions, preflight
from ..config import parse_set
from ..errors import SSLBenchError
from ..interrupt import GracefulStop, Interrupted
from ..runner import execute, has_checkpoint, run_lock
from ..suites import build_run_config, load_suite, validate_suite


@click.command("run")
@click.argument("method")
@click.option("--suite", default="digits-linear", show_default=True, help="Suite name or path to a suite YAML.")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed(s); default: the suite's seeds. Repeatable.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. pretrain.epochs=5, method.temperature=0.2, linear.epochs=50.")
@click.option("--out", "out_dir", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for run records (one JSON per run).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data root (default: $SSLBENCH_DATA, else ~/.cache/sslbench/data).")
@click.option("--download", is_flag=True, help="Download missing data sets from their official sources.")
@click.option("--resume", is_flag=True,
              help="Continue from the last checkpoint of the same method, suite, config and seed; exit 2 when there "
                   "is none (seeds without one start fresh).")
@click.option("--resume-if-any", is_flag=True, help="As --resume, but start fresh when there is nothing to resume.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: str,
            data_dir: str | None, download: bool, resume: bool, resume_if_any: bool, quiet: bool) -> None:
    """Pretrain METHOD (e.g. simclr) on a suite, run its protocols, write one record per seed.

    \b
    Ctrl-C or SIGTERM: the current step ends, a checkpoint and an 'interrupted' record are written, exit 130/143;
    --resume then continues exactly where it stopped. A second identical run (same method, suite, config,
    seed and --out) refuses to start while the first holds the run.
    """
    code = run_method(method, suite, seeds, sets, Path(out_dir), data_dir, download, resume or resume_if_any,
                      quiet, require_checkpoint=resume and not resume_if_any)
    sys.exit(code)


def run_method(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: Path,
               data_dir: str | None, download: bool, resume: bool, quiet: bool,
               require_checkpoint: bool = False) -> int:
    """Returns the exit code: 0 when every seed ended ``ok``, 1 otherwise, 130/143 when interrupted."""
    from ..data import data_root

    console = Console(stderr=True, soft_wrap=True)
    overrides = parse_set(sets)
    if not seeds:
        raw, where = load_suite(suite)
        validate_suite(raw, where)
        seeds = tuple(raw.get("seeds") or [0])
    # resolve every seed's config first: bad input fails before any run starts
    configs = [build_run_config(method, suite, overrides, seed) for seed in seeds]
    opts = RunOptions(out_dir=out_dir, data_root=data_root(data_dir), download=download, resume=resume,
                      progress=not quiet)
    if require_checkpoint and not any(has_checkpoint(opts, cfg) for cfg, _, _ in configs):
        raise SSLBenchError(f"Nothing to resume: no checkpoint of {method} on {configs[0][0].suite} "
                            f"(seeds {', '.join(str(c.seed) for c, _, _ in configs)}) under "
                            f"{out_dir / '.work'}; run without --resume (or with --resume-if-any) to start")
    # a missing data set or protocol file, a bad encoder/method/view option fails here, before --out is made
    preflight(*configs[0][:2], opts)
    ensure_writable_dir(out_dir, "--out")  # a read-only or impossible --out fails here, not after training
    try:
        with GracefulStop() as stop, contextlib.ExitStack() as locks:
            for cfg, _, _ in configs:  # a second identical run stops here, before any work
                locks.enter_context(run_lock(opts, cfg))
            return _execute_all(configs, opts, stop, console, out_dir)
    except Interrupted as e:
        console.print(f"[yellow]{e.reason}: record saved with status 'interrupted'; --resume continues[/yellow]",
                      highlight=False)
        return e.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: record saved with status 'interrupted'[/yellow]")
        return 130


def _execute_all(configs: list, opts: RunOptions, stop: GracefulStop, console: Console, out_dir: Path) -> int:
    code = 0
    for cfg, cls, _ in configs:
        console.print(f"[bold]{cfg.method}[/bold] on [bold]{cfg.suite}[/bold] v{cfg.suite_version} "
                      f"seed {cfg.seed}", highlight=False)
        record = execute(cfg, cls, opts, stop)
        metrics = ", ".join(f"{k} {v['value']:.2f}" for k, v in record.metrics.items())
        colour = "green" if record.status == "ok" else "red"
        console.print(f"[{colour}]{record.status}[/{colour}] {metrics} "
                      f"({record.timing['wall_s']:.0f} s, {record.timing['samples_per_s']:.0f} "
                      f"{record.timing.get('throughput_unit', 'samples/s')}) "
                      f"-> {out_dir / (record.run_id + '.json')}", highlight=False)
        if record.status != "ok":
            console.print(f"[red]{escape(str(record.error))}[/red]", highlight=False)
            code = 1
    return code
