"""The one atomic-write helper: every file sslbench writes (records, baselines, checkpoints, caches) goes
through a temporary file in the same folder and ``os.replace``, so a crash leaves the old file or none,
never a truncated one. Readers ignore the ``.tmp`` leftovers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The file gets the usual permissions (0666 less the umask; mkstemp alone makes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def ensure_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Create ``path`` (and its parents) if missing and prove that a file can be written in it, before any work
    starts; one line naming the folder and the reason otherwise."""
    from .errors import SSLBenchError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SSLBenchError(f"Cannot write to {what} {path}: {e.strerror or e}") from None
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data), binary=True)


__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "ensure_writable_dir"]


def install_dir(tmp: str | os.PathLike[str], folder: str | os.PathLike[str], complete: Callable[[Path], bool]) -> None:
    """Publish the finished folder ``tmp`` as ``folder`` with one rename (a cache entry: decoded arrays), made
    readable as the umask allows (``mkdtemp`` makes 0700). An entry another process finished meanwhile
    (``complete(folder)``) is kept; a damaged or partial one is moved aside first and removed. Raises OSError when
    the rename cannot be done (a read-only cache); ``tmp`` is the caller's to remove."""
    import shutil

    tmp, folder = Path(tmp), Path(folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        os.rename(tmp, folder)
        return
    except OSError:
        if not folder.exists():
            raise
    if complete(folder):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    try:
        os.rename(folder, old / "entry")
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(old, ignore_errors=True)
