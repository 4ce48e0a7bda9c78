"""The submitit executor: the sweep's points as one SLURM job array (``AutoExecutor.map_array``).

Every array task runs :class:`PointJob` -> :func:`sslbench.sweep.point.run_point` on one point, so ``--out`` and
the data root must be on a file system the nodes share (the usual case; submitit needs one for its own folder,
``<out>/.sweep/submitit`` by default). The tasks are submitted only after every point was resolved and
preflighted here. ``--jobs`` caps how many tasks run at once (``slurm_array_parallelism``). On a time-out or
preemption submitit requeues the task (:meth:`PointJob.checkpoint`) and the point resumes from its last
checkpoint. Ctrl-C cancels the unfinished tasks (they get SIGTERM: they checkpoint and write an ``interrupted``
record; running the sweep again resumes them); a second Ctrl-C stops waiting for them. ``--submitit-cluster local`` runs the array on this
machine with submitit's LocalExecutor (what the tests use); ``auto`` is SLURM when ``sbatch`` is there.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import parse_set
from ..errors import ConfigError
from ..registry import unknown_message
from .options import SweepOptions, import_backend, parse_minutes
from .point import PointSpec, run_point
from .signals import SignalLog
from .skip import Outcome, outcome_after, point_records

POLL_S = 1.0


class PointJob:
    """The callable of every array task; requeued on time-out or preemption (submitit calls ``checkpoint``)."""

    def __call__(self, spec: PointSpec) -> dict[str, Any]:
        return run_point(spec)

    def checkpoint(self, spec: PointSpec) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, spec)


def parameters(opts: SweepOptions) -> dict[str, Any]:
    """submitit parameters from the options; unknown ``--slurm-option`` keys are one line (before anything runs)."""
    submitit = import_backend("submitit")
    params: dict[str, Any] = {"name": "sslbench-sweep", "nodes": 1, "tasks_per_node": 1}
    if opts.slurm_time is not None:
        params["timeout_min"] = parse_minutes(opts.slurm_time)
    for name, value, kind in (("gpus_per_node", opts.slurm_gpus, "--slurm-gpus"),
                              ("cpus_per_task", opts.slurm_cpus, "--slurm-cpus"),
                              ("mem_gb", opts.slurm_mem_gb, "--slurm-mem-gb")):
        if value is not None:
            if value < (0 if name == "gpus_per_node" else 1) or (name == "mem_gb" and value <= 0):
                raise ConfigError(f"Bad {kind} {value}: expected a positive number")
            params[name] = value
    if opts.slurm_partition:
        params["slurm_partition"] = opts.slurm_partition
    if opts.slurm_account:
        params["slurm_account"] = opts.slurm_account
    if opts.jobs is not None:
        params["slurm_array_parallelism"] = opts.jobs
    valid = submitit.SlurmExecutor._valid_parameters()
    for key, value in parse_set(opts.slurm_options):
        name = key.replace("-", "_")
        if name not in valid:
            raise ConfigError(unknown_message("SLURM parameter", key, valid) + f" (in --slurm-option {key}=...)")
        params[f"slurm_{name}"] = value
    return params


def run_submitit(specs: list[PointSpec], opts: SweepOptions, params: dict[str, Any],
                 on_start: Callable[[PointSpec], Any], on_done: Callable[[PointSpec, Outcome], Any],
                 note: Callable[[str], Any]) -> int | None:
    """Submit the array, wait for every task; returns 128 + the signal when stopped, else None."""
    submitit = import_backend("submitit")
    folder = Path(opts.submitit_folder or Path(opts.out_dir) / ".sweep" / "submitit").resolve()
    cluster = None if opts.submitit_cluster == "auto" else opts.submitit_cluster
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    try:
        executor.update_parameters(**params)
    except (NameError, AssertionError, ValueError, TypeError) as e:  # submitit's own checks
        raise ConfigError(f"submitit refused the parameters: {str(e).splitlines()[0]}") from None
    before = {s.index: set(point_records(Path(s.out), tuple(s.key))) for s in specs}
    cancelled = False
    with SignalLog() as sig:  # before the jobs start: local ones inherit a default SIGINT, not an ignored one
        jobs = executor.map_array(PointJob(), specs)
        ids = ", ".join(dict.fromkeys(str(j.job_id).split("_")[0] for j in jobs))
        note(f"submitted {len(jobs)} point(s) to {executor.cluster} as job {ids} (logs: {folder})")
        for spec in specs:
            on_start(spec)
        waiting = dict(zip((s.index for s in specs), zip(specs, jobs, strict=True), strict=True))
        while waiting:
            if sig.received and not cancelled:
                for _, job in waiting.values():
                    _cancel(job)
                note(f"cancelled {len(waiting)} unfinished point(s); they write 'interrupted' records")
                cancelled = True
            if len(sig.received) > 1:
                break  # a second signal: stop waiting
            for index, (spec, job) in list(waiting.items()):
                if job.done():
                    del waiting[index]
                    on_done(spec, _outcome(spec, job, before[index]))
            if waiting:
                time.sleep(POLL_S)
    for spec, _job in waiting.values():
        on_done(spec, outcome_after(Path(spec.out), tuple(spec.key), before[spec.index], None,
                                    "still stopping when the sweep stopped waiting", stopped=True))
    return sig.exit_code


def _cancel(job: Any) -> None:
    """SLURM: ``scancel`` (SIGTERM to the task, SIGKILL after the cluster's KillWait). A local job: SIGTERM to its
    controller, which forwards it and waits for the task (its own cancel sends SIGINT, then SIGKILL 1 s later)."""
    process = getattr(job, "_process", None)  # submitit.local.local.LocalJob's controller process
    if process is not None and hasattr(process, "send_signal"):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    else:
        job.cancel(check=False)


def _was_cancelled(job: Any) -> bool:
    try:
        return str(job.state).upper().startswith(("CANCELLED", "INTERRUPTED"))
    except Exception:  # no state to be had (the cluster's accounting is down): say failed
        return False


def _outcome(spec: PointSpec, job: Any, before: set[str]) -> Outcome:
    try:
        return Outcome(**job.result())
    except Exception as e:  # the task died (cancelled, killed, node failure): what did it leave in --out?
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return outcome_after(Path(spec.out), tuple(spec.key), before, None,
                             f"job {job.job_id}: {lines[-1] if lines else type(e).__name__}",
                             stopped=_was_cancelled(job))


__all__ = ["PointJob", "parameters", "run_submitit"]
