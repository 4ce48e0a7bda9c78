"""The Ray executor: each point one ``ray.remote`` task running :func:`sslbench.sweep.point.run_point`.

``ray.init(address=--ray-address)``: none (``RAY_ADDRESS`` or a new local instance, no dashboard), ``auto`` (the
cluster this machine belongs to) or ``ray://host:port``; a Ray already initialised in this process is used as
it is. Each task asks for ``--ray-cpus`` CPUs (its torch threads) and ``--ray-gpus`` GPUs; ``--jobs`` caps the
tasks in flight (default: all, Ray queues them by resources). Workers need sslbench installed and ``--out`` and
the data root on a shared file system. Ctrl-C cancels the unfinished tasks (``ray.cancel``: a KeyboardInterrupt
in the task, which checkpoints and writes an ``interrupted`` record); a second Ctrl-C stops waiting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .options import SweepOptions, import_backend
from .point import PointSpec, run_point
from .signals import SignalLog
from .skip import Outcome, outcome_after, point_records

WAIT_S = 0.5


def run_ray(specs: list[PointSpec], opts: SweepOptions, on_start: Callable[[PointSpec], Any],
            on_done: Callable[[PointSpec, Outcome], Any], note: Callable[[str], Any]) -> int | None:
    """Run every point as a Ray task; returns 128 + the signal when stopped, else None."""
    ray = import_backend("ray")
    started = False
    with SignalLog() as sig:  # before Ray starts its processes: they inherit a default SIGINT
        if not ray.is_initialized():
            local = opts.ray_address is None and not os.environ.get("RAY_ADDRESS")
            ray.init(address=opts.ray_address, **({"include_dashboard": False} if local else {}))
            started = True
        try:
            _run(ray, specs, opts, on_start, on_done, note, sig)
        finally:
            if started:
                ray.shutdown()
    return sig.exit_code


def _run(ray: Any, specs: list[PointSpec], opts: SweepOptions, on_start: Callable[[PointSpec], Any],
         on_done: Callable[[PointSpec, Outcome], Any], note: Callable[[str], Any], sig: SignalLog) -> None:
    task = ray.remote(num_cpus=opts.ray_cpus, num_gpus=opts.ray_gpus)(run_point)
    limit = opts.jobs or len(specs)
    pending = list(specs)
    before = {s.index: set(point_records(Path(s.out), tuple(s.key))) for s in specs}
    in_flight: dict[Any, PointSpec] = {}
    cancelled = False
    while pending or in_flight:
        while pending and not sig.received and len(in_flight) < limit:
            spec = pending.pop(0)
            in_flight[task.remote(spec)] = spec
            on_start(spec)
        if sig.received and not cancelled:
            for ref in in_flight:
                ray.cancel(ref)
            note(f"cancelled {len(in_flight)} unfinished point(s); they write 'interrupted' records")
            cancelled = True
        if len(sig.received) > 1 or not in_flight:
            break
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
        for ref in done:
            spec = in_flight.pop(ref)
            on_done(spec, _outcome(ray, ref, spec, before[spec.index], cancelled))
    for spec in in_flight.values():
        on_done(spec, outcome_after(Path(spec.out), tuple(spec.key), before[spec.index], None,
                                    "still stopping when the sweep stopped waiting", stopped=True))
    for spec in pending:
        on_done(spec, Outcome("not run", error="the sweep was stopped before it started"))


def _outcome(ray: Any, ref: Any, spec: PointSpec, before: set[str], cancelled: bool) -> Outcome:
    try:
        return Outcome(**ray.get(ref))
    except Exception as e:  # cancelled, or the worker died: what did the task leave in --out?
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return outcome_after(Path(spec.out), tuple(spec.key), before, None,
                             f"ray task: {lines[-1] if lines else type(e).__name__}", stopped=cancelled)


__all__ = ["run_ray"]
