"""Data sets by name: ``load_dataset("cifar10", ["train", "test"], root)``.

Each modality keeps its loaders in its own module (``image.py``, ``graph.py``; audio and text
modules add theirs to :data:`DATASETS`). A loader is
``load_X(root, splits, download=False, **options) -> (DataInfo, {split: Split})``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError
from .base import DataInfo, Split
from .graph import GRAPH_DATASETS
from .image import IMAGE_DATASETS
from .root import cache_dir, data_root

Loader = Callable[..., tuple[DataInfo, dict[str, Split]]]

DATASETS: dict[str, Loader] = {**IMAGE_DATASETS, **GRAPH_DATASETS}


def get_loader(name: str) -> Loader:
    """The loader registered as ``name``; unknown names raise with 'Did you mean' suggestions."""
    try:
        return DATASETS[name]
    except KeyError:
        pass
    names = sorted(DATASETS)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"Did you mean: {', '.join(close)}?" if close else f"Valid names: {', '.join(names)}."
    raise UnknownNameError(f"Unknown dataset '{name}'. {hint}")


def load_dataset(
    name: str,
    splits: Sequence[str],
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    **options: Any,
) -> tuple[DataInfo, dict[str, Split]]:
    """Load the named data set's splits from ``root`` (default: :func:`data_root`)."""
    loader = get_loader(name)
    root = data_root() if root is None else Path(root).expanduser().resolve()
    return loader(root, list(splits) if not isinstance(splits, str) else [splits], download, **options)


__all__ = ["DATASETS", "DataInfo", "Split", "cache_dir", "data_root", "get_loader", "load_dataset"]
