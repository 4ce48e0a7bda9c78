"""Where data sets are read from (the data root) and where derived files go (the cache).

The data root may be read-only (a shared mount), so every derived file, such as
decoded image arrays or the checksum memo, is written under :func:`cache_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_ROOT = "~/.cache/sslbench/data"
DEFAULT_CACHE_DIR = "~/.cache/sslbench"


def _resolve(value: str | os.PathLike[str]) -> Path:
    return Path(value).expanduser().resolve()


def data_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``--data-dir`` if given, else ``$SSLBENCH_DATA``, else ``~/.cache/sslbench/data``."""
    if cli_value:
        return _resolve(cli_value)
    return _resolve(os.environ.get("SSLBENCH_DATA") or DEFAULT_DATA_ROOT)


def cache_dir() -> Path:
    """The cache folder (``$SSLBENCH_CACHE`` else ``~/.cache/sslbench``), created on demand."""
    path = _resolve(os.environ.get("SSLBENCH_CACHE") or DEFAULT_CACHE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
