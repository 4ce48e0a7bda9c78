"""``sslbench run``: resolve the config for each seed, preflight, execute, print a one-line summary per run."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from ..build import RunOptions, preflight
from ..config import parse_set
from ..runner import execute
from ..suites import build_run_config, load_suite


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
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of the same method, suite, config and seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: str,
            data_dir: str | None, download: bool, resume: bool, quiet: bool) -> None:
    """Pretrain METHOD (e.g. simclr) on a suite, run its protocols, write one record per seed."""
    code = run_method(method, suite, seeds, sets, Path(out_dir), data_dir, download, resume, quiet)
    sys.exit(code)


def run_method(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: Path,
               data_dir: str | None, download: bool, resume: bool, quiet: bool) -> int:
    """Returns the exit code: 0 when every seed ended ``ok``, 1 otherwise."""
    from ..data import data_root

    console = Console(stderr=True, soft_wrap=True)
    overrides = parse_set(sets)
    if not seeds:
        raw, _ = load_suite(suite)
        seeds = tuple(int(s) for s in (raw.get("seeds") or [0]))
    # resolve every seed's config first: bad input fails before any run starts
    configs = [build_run_config(method, suite, overrides, seed) for seed in seeds]
    opts = RunOptions(out_dir=out_dir, data_root=data_root(data_dir), download=download, resume=resume,
                      progress=not quiet)
    preflight(*configs[0][:2], opts)  # a missing data set or a bad encoder/method/view option fails here
    code = 0
    for cfg, cls, _ in configs:
        console.print(f"[bold]{cfg.method}[/bold] on [bold]{cfg.suite}[/bold] v{cfg.suite_version} "
                      f"seed {cfg.seed}", highlight=False)
        try:
            record = execute(cfg, cls, opts)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: record saved with status 'interrupted'[/yellow]")
            return 130
        metrics = ", ".join(f"{k} {v['value']:.2f}" for k, v in record.metrics.items())
        colour = "green" if record.status == "ok" else "red"
        console.print(f"[{colour}]{record.status}[/{colour}] {metrics} "
                      f"({record.timing['wall_s']:.0f} s, {record.timing['samples_per_s']:.0f} "
                      f"{record.timing.get('throughput_unit', 'samples/s')}) "
                      f"-> {out_dir / (record.run_id + '.json')}", highlight=False)
        if record.status != "ok":
            console.print(f"[red]{record.error}[/red]", highlight=False)
            code = 1
    return code
