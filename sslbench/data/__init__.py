"""Data sets by name: ``load_dataset("cifar10", ["train", "test"], root)``.

Data sets live in the :data:`~sslbench.plugins.DATASETS` registry. Each modality's module registers its
loaders with ``@register_dataset(name, modality)`` (``image.py``: digits, mnist, cifar10/100, imagefolder;
``torchvision_sets.py``: every other torchvision image classification set, by torchvision's spelling;
``graph.py``: the torch_geometric graphs); entry points (``sslbench.datasets``) and plugin folders add more.
Names are found whatever their case and separators (``FashionMNIST``, ``fashion_mnist``). A loader is
``load_X(root, splits, download=False, **options) -> (DataInfo, {split: Split})``. A data file that is there
but damaged, unreadable or hostile raises :class:`DataFileError` (a ``DataNotFoundError``): one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..plugins import DATASETS
from .base import DataFileError, DataInfo, Split
from .root import cache_dir, data_root

Loader = Callable[..., tuple[DataInfo, dict[str, Split]]]


def get_loader(name: str) -> Loader:
    """The loader registered as ``name`` (any case, ``_`` or ``-``); unknown names raise with 'Did you mean'."""
    return DATASETS.get(name)


def load_dataset(
    name: str,
    splits: Sequence[str],
    /,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    **options: Any,
) -> tuple[DataInfo, dict[str, Split]]:
    """Load the named data set's splits from ``root`` (default: :func:`data_root`). ``name`` and ``splits`` are
    positional, so that a loader may take options of those names (imagefolder's ``name``)."""
    loader = get_loader(name)
    root = data_root() if root is None else Path(root).expanduser().resolve()
    return loader(root, list(splits) if not isinstance(splits, str) else [splits], download, **options)


__all__ = ["DATASETS", "DataFileError", "DataInfo", "Split", "cache_dir", "data_root", "get_loader", "load_dataset"]
