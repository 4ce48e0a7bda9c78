"""What a run tells an experiment tracker, and the trackers that need no package.

A :class:`Tracker` receives, in order: ``start(config, run_id)`` once the run is built (the resolved
config as a nested dict, the record's run id), ``log_step(step, metrics)`` at each step the engine
keeps in the record's ``train.loss_history`` (``train/loss``, ``train/lr``, ``train/samples_per_s``,
``train/peak_memory_mb``: :class:`~sslbench.tracking.meter.StepMeter`), ``log_final(metrics, step)``
with the record's metrics, timing and status, and ``close()`` (always, from the runner's ``finally``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Scalars = dict[str, float]


@runtime_checkable
class Tracker(Protocol):
    name: str

    def start(self, config: dict, run_id: str, **info: Any) -> None: ...

    def log_step(self, step: int, metrics: Scalars) -> None: ...

    def log_final(self, metrics: dict[str, float | str], step: int | None = None) -> None: ...

    def close(self) -> None: ...


class NullTracker:
    """Tracking off (the default, and every rank but 0 under DDP): every call does nothing."""

    name = "none"
    enabled = False

    def start(self, config: dict, run_id: str, **info: Any) -> None:
        pass

    def log_step(self, step: int, metrics: Scalars) -> None:
        pass

    def log_final(self, metrics: dict[str, float | str], step: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class MultiTracker:
    """Fans every call out to ``trackers``. Tracking is never required to run: a tracker that raises (a full
    disk, an unreachable server) prints one warning and is dropped; training and the record go on."""

    name = "multi"
    enabled = True

    def __init__(self, trackers: list[Tracker], warn: Any = None):
        self.trackers = list(trackers)
        self._warn = warn or _warn

    def _each(self, call: str, *args: Any, **kwargs: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, call)(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any tracker failure is reported, never fatal
                self.trackers.remove(tracker)
                first = (str(e).strip().splitlines() or [""])[0]
                self._warn(f"tracking: {tracker.name} failed in {call}() ({type(e).__name__}: {first}); "
                           "the run goes on without it")
                if call != "close":
                    try:
                        tracker.close()
                    except Exception:  # noqa: BLE001 - reported once above
                        pass

    def start(self, config: dict, run_id: str, **info: Any) -> None:
        self._each("start", config, run_id, **info)

    def log_step(self, step: int, metrics: Scalars) -> None:
        self._each("log_step", step, metrics)

    def log_final(self, metrics: dict[str, float | str], step: int | None = None) -> None:
        self._each("log_final", metrics, step)

    def close(self) -> None:
        self._each("close")
        self.trackers = []


def _warn(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[red]warning:[/red] {escape(message)}", highlight=False)
