"""``sslbench sweep``: methods x suites x seeds x ``--grid`` values, each point an ordinary ``sslbench run``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("sweep")
@click.argument("methods", nargs=-1, required=True)
@click.option("--suite", "suites", multiple=True, help="Suite name or YAML path; repeatable [default: digits-linear].")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed(s); default: each suite's seeds. Repeatable.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="An axis of the grid, e.g. method.temperature=0.1,0.2 (values as in --set; commas inside "
                   "[...] do not split). Repeatable: the points are the product of all axes.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value in every point.")
@click.option("--out", "out_dir", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the records (one JSON per point, as `run` writes them).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data root (default: $SSLBENCH_DATA, else ~/.cache/sslbench/data).")
@click.option("--download", is_flag=True, help="Download missing data sets (once, here, before any point runs).")
@click.option("--jobs", type=int, default=None,
              help="Points at once: local processes [default 1], the SLURM array's parallelism, Ray tasks in flight "
                   "[default: all].")
@click.option("--executor", default="local", show_default=True, metavar="local|submitit|ray",
              help="Where the points run: processes on this machine, a SLURM job array through submitit, or Ray "
                   "tasks (the last two: pip install 'sslbench[sweep]').")
@click.option("--dry-run", is_flag=True, help="Resolve and check every point, print the plan, run nothing.")
@click.option("--quiet", is_flag=True, help="Only the plan line and the summary table.")
@click.option("--slurm-partition", default=None, help="submitit: the SLURM partition.")
@click.option("--slurm-time", default=None, metavar="TIME",
              help="submitit: time limit per point, MINUTES, HH:MM:SS or D-HH:MM:SS.")
@click.option("--slurm-gpus", type=int, default=None, help="submitit: GPUs per point.")
@click.option("--slurm-cpus", type=int, default=None, help="submitit: CPUs per point (also its torch threads).")
@click.option("--slurm-mem-gb", type=float, default=None, help="submitit: memory per point in GB.")
@click.option("--slurm-account", default=None, help="submitit: the SLURM account.")
@click.option("--slurm-option", "slurm_options", multiple=True, metavar="KEY=VALUE",
              help="submitit: any other parameter of submitit's SlurmExecutor (qos=high, constraint=volta, ...).")
@click.option("--submitit-cluster", default=None, metavar="auto|slurm|local|debug",
              help="submitit: the executor; auto is SLURM where sbatch exists, else local processes [default: auto].")
@click.option("--submitit-folder", default=None, type=click.Path(file_okay=False),
              help="submitit: folder for its pickles and logs, shared with the nodes [default: <out>/.sweep/submitit].")
@click.option("--ray-address", default=None,
              help="ray: ray.init(address=...): 'auto' for the running cluster, ray://host:port; default: "
                   "$RAY_ADDRESS or a new local instance.")
@click.option("--ray-cpus", type=float, default=None, help="ray: CPUs per point (its torch threads) [default: 1].")
@click.option("--ray-gpus", type=float, default=None, help="ray: GPUs per point [default: 0].")
@click.pass_context
def sweep_cmd(ctx: click.Context, methods: tuple[str, ...], suites: tuple[str, ...], seeds: tuple[int, ...],
              grid: tuple[str, ...], sets: tuple[str, ...], out_dir: str, data_dir: str | None, download: bool,
              jobs: int | None, executor: str, dry_run: bool, quiet: bool, **backend: object) -> None:
    """Run METHODS x suites x seeds x --grid values; each point is one `sslbench run` and one record.

    \b
    sslbench sweep simclr moco.v2 --seed 0 --seed 1 --set pretrain.epochs=5 --jobs 2
    sslbench sweep simclr --grid method.temperature=0.1,0.2,0.5 --grid pretrain.batch_size=128,256
    sslbench sweep simclr moco.v2 --suite cifar10-linear --executor submitit --slurm-partition gpu \\
        --slurm-gpus 1 --slurm-cpus 8 --slurm-time 12:00:00
    sslbench sweep simclr --seed 0 --seed 1 --seed 2 --executor ray --ray-address auto --ray-gpus 1

    \b
    Every point's config is resolved and checked before anything runs (bad input: one line, exit 2).
    Points with an ok record in --out (same method and version, suite, config hash, seed) are skipped;
    points with a checkpoint resume from it; so running the same sweep again finishes what is left.
    Exit 0 only when every point ends ok. Ctrl-C stops the points gracefully ('interrupted' records,
    checkpoints); the next run of the sweep resumes them.
    """
    from ..sweep.options import SweepOptions
    from ..sweep.orchestrate import run_sweep

    given = {k for k, v in backend.items() if v not in (None, ())}
    opts = SweepOptions(methods=methods, suites=suites or ("digits-linear",), seeds=seeds, sets=sets, grid=grid,
                        out_dir=Path(out_dir), data_dir=data_dir, download=download, jobs=jobs, executor=executor,
                        dry_run=dry_run, quiet=quiet, explicit=given,
                        **{k: v for k, v in backend.items() if v not in (None, ())})
    if opts.submitit_folder is not None:
        opts.submitit_folder = Path(opts.submitit_folder)
    sys.exit(run_sweep(opts))
