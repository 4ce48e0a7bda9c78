"""The local executor: ``--jobs N`` points at once on this machine, each in a process of its own.

Each point is ``python -m sslbench.sweep.point SPEC`` (:func:`sslbench.sweep.point.run_point`: the point's
``sslbench run`` in that process) with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` and torch's intra-op threads set
to ``max(1, cores // N)`` and, with several CUDA devices, one device per job slot. Output goes to
``<out>/.sweep/logs/<point>.log``. A failed point does not stop the others.

The children run in sessions of their own, so a Ctrl-C at the terminal reaches only this process, which
forwards it once to every running point (each finishes its step, checkpoints and writes an ``interrupted``
record) and starts nothing more; a second Ctrl-C is forwarded again (the points stop at once). SIGTERM alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..build import safe_component
from ..registry import python_module_command
from .point import RESULT_MARK, PointSpec
from .signals import SignalLog
from .skip import Outcome, outcome_after, point_records

POLL_S = 0.1
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    return max(1, (cores or usable_cores()) // max(1, jobs))


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use (their CUDA_VISIBLE_DEVICES names); empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    named = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named or [str(i) for i in range(torch.cuda.device_count())]


def slot_env(slot: int, gpus: list[str], threads: int) -> dict[str, str]:
    """The environment of the point in job slot ``slot``: its threads and, with several GPUs, its own GPU."""
    env = {v: str(threads) for v in THREAD_VARS}
    if len(gpus) > 1:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


@dataclass
class _Running:
    spec: PointSpec
    proc: subprocess.Popen
    log: IO[str]
    log_path: Path
    before: set[str]
    slot: int
    offset: int  # where this attempt's output starts in the (appended) log


def log_path(out: Path, spec: PointSpec) -> Path:
    method, _, suite, chash, seed = spec.key
    return out / ".sweep" / "logs" / (safe_component(f"{method}-{suite}-{chash}-s{seed}") + ".log")


def _result(run: _Running, code: int) -> Outcome:
    """The outcome the point's process printed, else what its records and the last line of its log say."""
    with open(run.log_path, "rb") as f:
        f.seek(run.offset)
        text = f.read().decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(RESULT_MARK):
            return Outcome(**json.loads(ln[len(RESULT_MARK):]))
    tail = next((ln for ln in reversed(lines) if not ln.startswith("$ ")), None)
    return outcome_after(Path(run.spec.out), tuple(run.spec.key), run.before, code, tail)


def run_local(specs: list[PointSpec], jobs: int, on_start: Callable[[PointSpec], Any],
              on_done: Callable[[PointSpec, Outcome], Any]) -> int | None:
    """Run every point, ``jobs`` at a time; returns the signal's exit code (128 + n) when stopped, else None."""
    pending, running = deque(specs), []
    gpus = visible_gpus()
    forwarded = 0
    with SignalLog() as sig:
        while running or (pending and not sig.received):  # after a signal: wait for the running points only
            while forwarded < len(sig.received):  # every signal reaches every running point once
                for r in running:
                    if r.proc.poll() is None:
                        r.proc.send_signal(sig.received[forwarded])
                forwarded += 1
            while pending and not sig.received and len(running) < jobs:
                spec = pending.popleft()
                slot = min(set(range(jobs)) - {r.slot for r in running})
                running.append(_launch(spec, slot, gpus))
                on_start(spec)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                r.log.close()
                on_done(r.spec, _result(r, r.proc.returncode))
            time.sleep(POLL_S)
    for spec in pending:
        on_done(spec, Outcome("not run", error="the sweep was stopped before it started"))
    return sig.exit_code


def _launch(spec: PointSpec, slot: int, gpus: list[str]) -> _Running:
    path = log_path(Path(spec.out), spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed when the point ends
    offset = log.tell()
    log.write(f"$ {spec.command}\n")
    log.flush()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **slot_env(slot, gpus, spec.threads or 1), **spec.env}
    before = set(point_records(Path(spec.out), tuple(spec.key)))
    proc = subprocess.Popen([*python_module_command("sslbench.sweep.point", env), spec.to_json()], env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return _Running(spec, proc, log, path, before, slot, offset)


__all__ = ["run_local", "threads_per_job", "usable_cores", "slot_env", "log_path"]
