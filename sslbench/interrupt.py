"""Ctrl-C and SIGTERM during a run: finish the step, write a checkpoint and an ``interrupted`` record, exit 130/143.

:class:`GracefulStop` installs handlers for SIGINT and SIGTERM for the length of a run. While the
trainer is inside a step (:meth:`GracefulStop.deferred`) a signal only marks the stop as
requested; the trainer checks :attr:`requested` after each step, saves a checkpoint of the
completed step and raises :class:`Interrupted`. Anywhere else (loading data, evaluating) the signal
raises :class:`Interrupted` at once. A second signal while a stop is pending raises at once too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_code`` is 128 + the signal number (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum

    @property
    def reason(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"


class GracefulStop:
    """A context manager around a run: SIGINT/SIGTERM become :class:`Interrupted`, deferred to the end of a step."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._deferring = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring and self.requested is None:
            self.requested = signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals inside this block wait for its end (one training step)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def raise_if_requested(self) -> None:
        if self.requested is not None:
            raise Interrupted(self.requested)


class NoStop:
    """The trainer's default when no run installed handlers (tests, benchmarks): nothing is ever requested."""

    requested: int | None = None

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        yield

    def raise_if_requested(self) -> None:
        return None


__all__ = ["Interrupted", "GracefulStop", "NoStop"]
