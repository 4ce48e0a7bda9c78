"""``sslbench run``: resolve the config for each seed, preflight, execute, print a one-line summary per run."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from .. import distributed
from ..atomic import ensure_writable_dir
from ..build import RunOptions, check_distributed, preflight
from ..config import parse_set
from ..errors import SSLBenchError
from ..interrupt import GracefulStop, Interrupted
from ..runner import execute, has_checkpoint, run_lock
from ..suites import build_run_config, load_suite, validate_suite
from ..tracking import TrackingOptions, tracking_options


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
@click.option("--nproc", default=None, metavar="N",
              help="Data parallel on this machine: start N processes with torchrun (python -m torch.distributed.run "
                   "--standalone); pretrain.batch_size stays the global batch. Same as torchrun --nproc-per-node N "
                   "-m sslbench run ...")
@click.option("--track", multiple=True, metavar="NAME",
              help="Log losses, lr, throughput, memory, final metrics and the config to tensorboard and/or wandb "
                   "(repeatable or comma-separated; pip install 'sslbench[track]'). Off by default.")
@click.option("--track-dir", default=None, type=click.Path(file_okay=False),
              help="Tracker files: TensorBoard <run id>/ folders, W&B's wandb/ [default: <--out>/tracking].")
@click.option("--wandb-project", default=None,
              help="W&B project [default: $WANDB_PROJECT, else sslbench]. WANDB_MODE is respected; without an API "
                   "key W&B logs offline (never a login prompt).")
def run_cmd(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: str,
            data_dir: str | None, download: bool, resume: bool, resume_if_any: bool, quiet: bool,
            nproc: str | None = None,
            track: tuple[str, ...] = (), track_dir: str | None = None, wandb_project: str | None = None) -> None:
    """Pretrain METHOD (e.g. simclr) on a suite, run its protocols, write one record per seed.

    \b
    Ctrl-C or SIGTERM: the current step ends, a checkpoint and an 'interrupted' record are written, exit 130/143;
    --resume then continues exactly where it stopped. A second identical run (same method, suite, config,
    seed and --out) refuses to start while the first holds the run.
    """
    world = _nproc(nproc)
    try:
        code = run_method(method, suite, seeds, sets, Path(out_dir), data_dir, download, resume or resume_if_any,
                          quiet, require_checkpoint=resume and not resume_if_any,
                          tracking=tracking_options(track, track_dir, wandb_project),  # checked before any work
                          launch=world)
    except SSLBenchError as e:
        if not distributed.is_main():  # under torchrun every rank finds the same bad input: rank 0 says it
            sys.exit(e.exit_code)
        raise
    if code is None:  # checked here; now the same command in `world` processes
        ctx = click.get_current_context()
        code = distributed.launch(world, [*_argv(ctx.parent), "run", *_argv(ctx, skip={"nproc"})])
    sys.exit(code)


def _nproc(value: str | None) -> int | None:
    """``--nproc``: a positive process count, and not inside a torchrun process already."""
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise SSLBenchError(f"Bad value for --nproc: {value!r}; a number of processes >= 1 (e.g. the GPUs here)")
    if "WORLD_SIZE" in os.environ:
        raise SSLBenchError("--nproc inside a torchrun process: use either torchrun or --nproc, not both")
    return int(value)


def _argv(ctx: click.Context | None, skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The command line that gives ``ctx``'s parsed parameters again (non-default options, then arguments)."""
    if ctx is None:
        return []
    opts: list[str] = []
    args: list[str] = []
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.name in skip or value is None:
            continue
        if isinstance(p, click.Argument):
            args += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        if not isinstance(p, click.Option) or p.name in ("help", "version") or value == p.default or value == ():
            continue
        flag = next((o for o in p.opts if o.startswith("--")), p.opts[0])
        if p.is_flag:
            opts += [flag] if value else list(p.secondary_opts[:1])
        else:
            for v in (value if p.multiple else [value]):
                opts += [flag, str(v)]
    return opts + args


def run_method(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: Path,
               data_dir: str | None, download: bool, resume: bool, quiet: bool,
               require_checkpoint: bool = False, tracking: TrackingOptions | None = None,
               launch: int | None = None) -> int | None:
    """Returns the exit code: 0 when every seed ended ``ok``, 1 otherwise, 130/143 when interrupted.

    Data parallel: under torchrun (``WORLD_SIZE`` > 1) every rank resolves and checks the same configs, then
    the ranks join one process group; rank 0 alone holds the locks, prints and writes records. ``launch``
    (``--nproc N``): check everything for N processes and return None without running (the caller then
    starts torchrun)."""
    from ..data import data_root

    world = launch or distributed.env_world_size()
    console = Console(stderr=True, soft_wrap=True, quiet=not distributed.is_main())
    overrides = parse_set(sets)
    if not seeds:
        raw, where = load_suite(suite)
        validate_suite(raw, where)
        seeds = tuple(raw.get("seeds") or [0])
    # resolve every seed's config first: bad input fails before any run starts
    configs = [build_run_config(method, suite, overrides, seed) for seed in seeds]
    opts = RunOptions(out_dir=out_dir, data_root=data_root(data_dir), download=download, resume=resume,
                      progress=not quiet and distributed.is_main(), tracking=tracking)
    if require_checkpoint and not any(has_checkpoint(opts, cfg) for cfg, _, _ in configs):
        raise SSLBenchError(f"Nothing to resume: no checkpoint of {method} on {configs[0][0].suite} "
                            f"(seeds {', '.join(str(c.seed) for c, _, _ in configs)}) under "
                            f"{out_dir / '.work'}; run without --resume (or with --resume-if-any) to start")
    # a missing data set or protocol file, a bad encoder/method/view option fails here, before --out is made
    preflight(*configs[0][:2], opts)
    for cfg, _, _ in configs:  # graphs, a global batch the processes do not divide, sync_bn on CPU
        check_distributed(cfg, opts, world)
    ensure_writable_dir(out_dir, "--out")  # a read-only or impossible --out fails here, not after training
    if launch:
        return None
    try:
        with distributed.process_group(configs[0][0].pretrain.device), GracefulStop() as stop, \
                contextlib.ExitStack() as locks:
            refused = None
            if distributed.is_main():  # rank 0 holds the locks for every rank
                try:
                    for cfg, _, _ in configs:  # a second identical run stops here, before any work
                        locks.enter_context(run_lock(opts, cfg))
                except SSLBenchError as e:
                    refused = e
            if not distributed.all_true(refused is None):
                if refused is not None:
                    raise refused
                return SSLBenchError.exit_code  # rank 0 says why
            code = _execute_all(configs, opts, stop, console, out_dir)
            return distributed.broadcast_int(code)  # rank 0's verdict is the run's
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
        distributed.barrier()  # data parallel: the next seed starts together, after rank 0's evaluation
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
