"""Content fingerprints recorded with every result, so a number can be traced to its data.

Every function returns ``"sha256:<first 16 hex digits>"``. File checksums are memoised
in ``<cache_dir>/sha256-memo.json`` keyed by (absolute path, size, mtime), so a
20 MB archive is hashed once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .root import cache_dir

PREFIX = "sha256:"
HEX_CHARS = 16
MEMO_NAME = "sha256-memo.json"
_CHUNK = 1 << 20


def _short(hexdigest: str) -> str:
    return PREFIX + hexdigest[:HEX_CHARS]


def _memo_path() -> Path:
    return cache_dir() / MEMO_NAME


def _read_memo(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(path: Path, memo: dict[str, str]) -> None:
    """Write atomically (temp file + rename) so concurrent runs never see half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sha256-memo.")
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f, indent=0, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
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
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = _memo_path()
    memo = _read_memo(memo_path)
    hexdigest = memo.get(key)
    if hexdigest is None:
        hexdigest = _hash_file(path)
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
            entries.append(f"{rel}/{name}\t{os.path.getsize(os.path.join(dirpath, name))}")
    entries.sort()
    return _short(hashlib.sha256("\n".join(entries).encode()).hexdigest())


def combine_fingerprints(parts: Iterable[str]) -> str:
    """One fingerprint over several (ordered) fingerprints or other strings."""
    return _short(hashlib.sha256("\n".join(parts).encode()).hexdigest())


def files_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Fingerprint of several files' contents, in sorted name order."""
    paths = sorted(Path(p) for p in paths)
    return combine_fingerprints(f"{p.name}={file_sha256(p)}" for p in paths)
