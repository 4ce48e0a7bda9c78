"""``sslbench sweep``: check the options, resolve and preflight every point, skip the done ones, hand the rest to
an executor (local processes, a submitit job array, Ray tasks), print a table of point -> status -> record.

Exit code: 0 when every point ends ``ok`` (or was already), 1 when one did not, 128 + n after signal n, 2 on bad
input (before anything runs or is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..atomic import ensure_writable_dir
from ..errors import ConfigError
from ..registry import unknown_message
from .options import EXECUTORS, SUBMITIT_CLUSTERS, SweepOptions, import_backend
from .plan import PlannedPoint, check_points, make_specs, resolve
from .point import PointSpec
from .skip import Outcome

BACKEND_OPTIONS = {
    "submitit": ("slurm_partition", "slurm_time", "slurm_gpus", "slurm_cpus", "slurm_mem_gb", "slurm_account",
                 "slurm_options", "submitit_cluster", "submitit_folder"),
    "ray": ("ray_address", "ray_cpus", "ray_gpus"),
}
COLOURS = {"ok": "green", "done": "green", "interrupted": "yellow", "not run": "yellow"}


def check_options(opts: SweepOptions) -> dict[str, Any]:
    """Everything about the executor before any config is resolved; returns submitit's parameters (or {})."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(unknown_message("executor", opts.executor, EXECUTORS) + " (--executor)")
    if opts.jobs is not None and opts.jobs < 1:
        raise ConfigError(f"Bad --jobs {opts.jobs}: expected a positive number of points at once")
    for backend, names in BACKEND_OPTIONS.items():
        given = [n for n in names if n in opts.explicit]
        if given and opts.executor != backend:
            flag = "--" + given[0].replace("_", "-").replace("slurm-options", "slurm-option")
            raise ConfigError(f"{flag} applies to --executor {backend} only (this sweep uses --executor "
                              f"{opts.executor})")
    if opts.executor == "submitit":
        if opts.submitit_cluster not in SUBMITIT_CLUSTERS:
            raise ConfigError(unknown_message("submitit cluster", opts.submitit_cluster, SUBMITIT_CLUSTERS)
                              + " (--submitit-cluster)")
        from .submitit_backend import parameters

        return parameters(opts)  # imports submitit: a missing package is one line
    if opts.executor == "ray":
        if opts.ray_cpus < 0 or opts.ray_gpus < 0:
            raise ConfigError(f"Bad --ray-cpus {opts.ray_cpus:g} / --ray-gpus {opts.ray_gpus:g}: expected >= 0")
        import_backend("ray")
    return {}


def run_sweep(opts: SweepOptions) -> int:
    """Run the sweep; returns the exit code. Raises :class:`~sslbench.errors.SSLBenchError` on bad input."""
    from ..data import data_root

    err = Console(stderr=True, soft_wrap=True, highlight=False)
    note = (lambda msg: None) if opts.quiet else (lambda msg: err.print(f"[dim]{escape(msg)}[/dim]"))
    params = check_options(opts)
    opts.out_dir = Path(opts.out_dir).absolute()
    root = data_root(opts.data_dir)
    planned = resolve(opts, lambda msg: err.print(f"[yellow]{escape(msg)}[/yellow]"))
    check_points(planned, root, opts.download)
    jobs = opts.jobs or 1
    threads = None
    if opts.executor == "local":
        from .local import threads_per_job

        threads = threads_per_job(min(jobs, max(1, sum(pp.state != "done" for pp in planned))))
    elif opts.executor == "submitit":
        threads = opts.slurm_cpus
    elif opts.executor == "ray":
        threads = max(1, int(opts.ray_cpus))
    specs = make_specs(planned, opts.sets, opts.out_dir, root, threads)
    done = sum(pp.state == "done" for pp in planned)
    resume = sum(pp.state == "resume" for pp in planned)
    err.print(f"[bold]{len(planned)} point{'s' * (len(planned) != 1)}[/bold]: {done} done already, "
              f"{len(specs)} to run" + (f" ({resume} resumed from a checkpoint)" if resume else "")
              + (f" with --executor {opts.executor}" if specs else ""))
    if opts.dry_run:
        out = Console(soft_wrap=True)
        out.print(_plan_table(planned))
        for spec in specs:  # one per line, to copy
            out.print(escape(spec.command), highlight=False)
        return 0
    outcomes: dict[int, Outcome] = {i: Outcome("done", pp.record) for i, pp in enumerate(planned, 1)
                                    if pp.state == "done"}
    stopped = None
    if specs:
        ensure_writable_dir(opts.out_dir, "--out")
        stopped = _execute(specs, opts, params, jobs, outcomes, err, note)
    Console(soft_wrap=True).print(_summary_table(planned, outcomes))
    if specs:
        counts: dict[str, int] = {}
        for o in outcomes.values():
            counts[o.status] = counts.get(o.status, 0) + 1
        err.print(f"{len(planned)} point{'s' * (len(planned) != 1)}: "
                  + ", ".join(f"{counts[s]} {s}" for s in sorted(counts)))
    if stopped is not None:
        err.print("[yellow]stopped: run the same sweep again to resume the interrupted points[/yellow]")
        return stopped
    return 0 if all(o.status in ("ok", "done") for o in outcomes.values()) else 1


def _execute(specs: list[PointSpec], opts: SweepOptions, params: dict[str, Any], jobs: int,
             outcomes: dict[int, Outcome], err: Console, note: Any) -> int | None:
    total = len(specs)
    finished = [0]

    def on_start(spec: PointSpec) -> None:
        note(f"start  {spec.label}")

    def on_done(spec: PointSpec, outcome: Outcome) -> None:
        outcomes[spec.index] = outcome
        finished[0] += 1
        if opts.quiet:
            return
        colour = COLOURS.get(outcome.status, "red")
        line = (f"[{finished[0]}/{total}] [{colour}]{outcome.status}[/{colour}] {escape(spec.label)}"
                + (f" -> {escape(outcome.record)}" if outcome.record else ""))
        if outcome.status != "ok" and outcome.error:
            line += f"\n    [{colour}]{escape(outcome.error)}[/{colour}]"
        err.print(line)

    if opts.executor == "submitit":
        from .submitit_backend import run_submitit

        return run_submitit(specs, opts, params, on_start, on_done, note)
    if opts.executor == "ray":
        from .ray_backend import run_ray

        return run_ray(specs, opts, on_start, on_done, note)
    from .local import run_local

    return run_local(specs, jobs, on_start, on_done)


def _plan_table(planned: list[PlannedPoint]) -> Table:
    table = Table(title="sweep plan", show_lines=False)
    for col in ("#", "point", "state", "config hash", "record"):
        table.add_column(col, overflow="fold")
    for i, pp in enumerate(planned, 1):
        table.add_row(str(i), escape(pp.point.label), pp.state, pp.key[3], escape(pp.record or ""))
    return table


def _summary_table(planned: list[PlannedPoint], outcomes: dict[int, Outcome]) -> Table:
    table = Table(title="sweep", show_lines=False)
    for col in ("#", "point", "status", "record"):
        table.add_column(col, overflow="fold")
    for i, pp in enumerate(planned, 1):
        o = outcomes.get(i) or Outcome("not run")
        status = "ok (done already)" if o.status == "done" else o.status
        colour = COLOURS.get(o.status, "red")
        table.add_row(str(i), escape(pp.point.label), f"[{colour}]{status}[/{colour}]",
                      escape(o.record or (o.error or "")))
    return table


__all__ = ["run_sweep", "check_options"]
