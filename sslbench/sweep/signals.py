"""SIGINT/SIGTERM while a sweep waits on its points: logged, not raised, so that the executor decides what to
do with each (forward it to the points, cancel the jobs) and every point still ends with an outcome."""

from __future__ import annotations

import signal
import threading
from typing import Any


class SignalLog:
    """A context manager: SIGINT and SIGTERM are appended to :attr:`received` (main thread only; elsewhere
    nothing is installed and the signals keep their handlers)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)

    def __enter__(self) -> SignalLog:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number (130 SIGINT, 143 SIGTERM), or None when none came."""
        return 128 + self.received[0] if self.received else None


__all__ = ["SignalLog"]
