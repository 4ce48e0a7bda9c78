"""Content fingerprints recorded with every result, so a number can be traced to its data.

Every function returns ``"sha256:<first 16 hex digits>"``. File checksums are memoised
in ``<cache_dir>/sha256-memo.json`` keyed by (absolute path, size, mtime), so a
20 MB archive is hashed once, not on every run. A memo entry is written only after the whole
file was read, and entries that are not 64 hex digits are ignored (a damaged memo costs a
re-hash, never a wrong fingerprint). A file that cannot be read raises
:class:`~sslbench.data.base.DataFileError` naming it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write_text
from .base import DataFileError, one_line
from .root import cache_dir

PREFIX = "sha256:"
HEX_CHARS = 16
MEMO_NAME = "sha256-memo.json"
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _short(hexdigest: str) -> str:
    return PREFIX + hexdigest[:HEX_CHARS]


def _memo_path() -> Path:
    return cache_dir() / MEMO_NAME


def _read_memo(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and _HEX64.fullmatch(v)}


def _write_memo(path: Path, memo: dict[str, str]) -> None:
    """Write atomically (temp file + rename) so concurrent runs never see half a file."""
    try:
        atomic_write_text(path, json.dumps(memo, indent=0, sort_keys=True))
    except OSError:
        pass  # the memo is an optimisation only


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Fingerprint of one file's bytes (streamed, memoised by path, size and mtime)."""
    given = path
    try:
        path = Path(path).resolve()
        stat = path.stat()
    except OSError as err:
        raise DataFileError(f"Cannot read {given}: {one_line(err)}") from err
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = _memo_path()
    memo = _read_memo(memo_path)
    hexdigest = memo.get(key)
    if hexdigest is None:
        try:
            hexdigest = _hash_file(path)
        except OSError as err:
            raise DataFileError(f"Cannot read {given}: {one_line(err)}") from err
        memo = _read_memo(memo_path)  # another run may have added entries meanwhile
        memo[key] = hexdigest
        _write_memo(memo_path, memo)
    return _short(hexdigest)


def _as_numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array)


def array_fingerprint(*arrays: Any) -> str:
    """Fingerprint of numpy arrays / torch tensors: their shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        a = _as_numpy(array)
        digest.update(f"{a.dtype.str}{a.shape}|".encode())
        digest.update(a.reshape(-1).view(np.uint8))
    return _short(digest.hexdigest())


def tree_fingerprint(root: str | os.PathLike[str]) -> str:
    """Cheap fingerprint of a folder tree: sorted relative paths and file sizes (no content)."""
    root = Path(root)
    entries: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            file = os.path.join(dirpath, name)
            try:
                size = os.path.getsize(file)
            except OSError as err:  # a dangling link, a file removed meanwhile
                raise DataFileError(f"Cannot read {file}: {one_line(err)}") from err
            entries.append(f"{rel}/{name}\t{size}")
    entries.sort()
    return _short(hashlib.sha256("\n".join(entries).encode()).hexdigest())


def combine_fingerprints(parts: Iterable[str]) -> str:
    """One fingerprint over several (ordered) fingerprints or other strings."""
    return _short(hashlib.sha256("\n".join(parts).encode()).hexdigest())


def files_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Fingerprint of several files' contents, in sorted name order."""
    paths = sorted(Path(p) for p in paths)
    return combine_fingerprints(f"{p.name}={file_sha256(p)}" for p in paths)


# --------------------------------------------------------------------------- which files a reader opened

class ReadLog(set):
    """The paths a reader opened or listed, remembering their order: :meth:`last_under` names the file a
    failing reader was reading (Python's own lazy imports on the way are skipped by the folder)."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[Path] = []

    def add(self, path: Path) -> None:
        super().add(path)
        self.order.append(path)

    def last_under(self, folder: str | os.PathLike[str]) -> Path | None:
        folder = Path(folder).resolve()
        return next((p for p in reversed(self.order) if p.is_relative_to(folder)), None)


_reads: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar("sslbench_reads", default=None)
_hook_installed = False
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple) -> None:
    if event not in ("open", "os.listdir", "os.scandir"):
        return
    found = _reads.get()
    if found is None or not args:
        return
    path = args[0]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return  # a file descriptor
    if event == "open":
        mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, 0)
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return
        if mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS:
            return
    try:
        found.add(Path(os.fsdecode(path)).resolve())
    except (OSError, ValueError):  # pragma: no cover - an odd path name is simply not recorded
        pass


@contextlib.contextmanager
def record_reads() -> Iterator[ReadLog]:
    """Record the files opened for reading and the folders listed by this thread (and its tasks) inside the
    block, e.g. by a torchvision constructor, so a data set's fingerprint covers exactly what was read.

    Uses a process-wide audit hook (PEP 578), installed on first use and idle outside these blocks. Reads by C
    libraries (HDF5, LMDB) are not seen."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    found = ReadLog()
    token = _reads.set(found)
    try:
        yield found
    finally:
        _reads.reset(token)
