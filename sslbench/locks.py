"""One process per run: an exclusive lock on the run's work folder, so that a second identical run cannot remove
or overwrite the first one's checkpoint while it trains (issue 11).

The lock is ``fcntl.flock`` on ``<work dir>.lock``, beside the folder that a fresh run empties (released by the kernel when the process dies, so a
killed run never leaves a stale lock); the file holds the holder's pid and host for the message the
second process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import SSLBenchError


class RunLocked(SSLBenchError):
    """Another process holds the run's lock."""


class RunLock:
    """``with RunLock(work_dir, what):`` holds the run's lock (``<work_dir>.lock``) or raises :class:`RunLocked`
    at once."""

    def __init__(self, folder: Path, what: str):
        folder = Path(folder)
        self.path, self.what = folder.with_name(folder.name + ".lock"), what
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(f"{self.what} is already running in process {holder.get('pid', '?')} on "
                            f"{holder.get('host', '?')} (lock {self.path}); wait for it to end, or use another "
                            "--out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


__all__ = ["RunLock", "RunLocked"]
