"""Shared data types for every modality's loaders.

A loader returns a :class:`Split` per split name. Image splits that fit in memory
carry ``images`` (uint8, N x C x H x W) so the engine can batch and augment them
on the training device without a DataLoader; large trees (ImageNet) carry a
``dataset`` whose items are ``(uint8 C x H x W tensor, int label)``. A transductive
graph's splits all carry the same ``graph`` and their own ``nodes`` (data/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataNotFoundError


class DataFileError(DataNotFoundError):
    """A data file is there but cannot be used: unreadable, truncated, corrupt, of the wrong type or shape, or
    refused (a pickle naming a type its format never holds). The message names the file and what is wrong, on
    one line; the CLI exits 2 before any run. A subclass of DataNotFoundError, so existing handlers catch it."""


def one_line(err: BaseException) -> str:
    """An exception as ``Type: message`` on one line (for embedding a library's error in ours)."""
    kind = type(err).__name__
    if kind == "error":  # zlib.error, struct.error: say whose
        kind = f"{type(err).__module__}.{kind}"
    detail = " ".join(str(err).split())
    return f"{kind}: {detail}" if detail else kind


NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip's directory


def open_npz(path: Path) -> Any:
    """``np.load`` of an ``.npz`` archive with ``allow_pickle`` off (an object array is refused, never
    unpickled); anything else (not a zip, a lone ``.npy``, a truncated or unreadable file) raises DataFileError
    naming the file."""
    import zipfile

    import numpy as np

    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as err:
        raise DataFileError(f"{path} cannot be read: {one_line(err)}") from err
    if head.startswith(b"\x93NUMPY"):
        raise DataFileError(f"{path} holds a single .npy array, not an .npz archive of named arrays")
    if not head.startswith(NPZ_MAGIC):
        raise DataFileError(f"{path} is not an .npz archive (a zip of .npy arrays): it starts with {head!r}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataFileError(f"{path} is not a readable .npz archive (truncated or corrupt?): {one_line(err)}") from err


@dataclass
class DataInfo:
    """What a method, encoder or protocol needs to know about a data set."""

    name: str
    modality: str  # "image" | "audio" | "text" | "graph"
    num_classes: int
    classes: list[str]
    channels: int = 3
    num_features: int = 0  # graphs: node feature dimension F
    num_nodes: int = 0  # graphs: N nodes of the (whole, transductive) graph
    image_size: int = 32  # native side length of the images in pixels
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    fingerprint: str = ""  # sha256 of the source files (or arrays), see data/fingerprint.py
    source: str = ""  # where it was read from (path), for provenance
    targets: dict[str, list[str]] = field(default_factory=dict)  # further label sets: name -> class names
    frame_targets: dict[str, list[str]] = field(default_factory=dict)  # frame-level label sets -> class names


@dataclass
class Split:
    """One split of a data set.

    images:  uint8 tensor N x C x H x W when held in memory, else None
    labels:  int64 tensor N
    dataset: a map-style Dataset of (uint8 C x H x W tensor, label) when not in memory
    graph:   a torch_geometric ``Data`` (x N x F, edge_index 2 x E, y N): the whole graph, shared by every split
    nodes:   int64 tensor of this split's node indices in ``graph`` (labels == graph.y[nodes])
    samples: any other modality's in-memory inputs, indexable by sample (e.g. a float N x F tensor)
    targets: further label sets of the same samples, name -> int64 N (FSDD: {"speaker": ...} beside the
             digit ``labels``); their class names are in ``DataInfo.targets``. Protocols evaluate them when
             the suite lists them (``dataset.targets``); a modality's ``subset`` keeps them aligned.
    frame_targets: frame-level label sets, name -> one int64 T_i tensor per sample (LibriSpeech phones from
             a forced alignment, one label per 10 ms; an empty tensor where a sample has none); class names in
             ``DataInfo.frame_targets``; read by the ``frame_linear`` protocol.
    """

    labels: torch.Tensor
    images: torch.Tensor | None = None
    dataset: Dataset | None = None
    graph: Any = None
    nodes: torch.Tensor | None = None
    samples: Any = None
    extra: dict = field(default_factory=dict)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    frame_targets: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_memory(self) -> bool:
        return self.images is not None


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """A seeded class-stratified split for data sets without an official one (torchvision sets, SentEval).

    Per class, a seeded permutation: round(test_fraction n) test items, the rest train; sorted indices."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"Bad value for 'dataset.options.test_fraction': {test_fraction!r}; must be in (0, 1)")
    rng = np.random.default_rng(int(seed))
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test)),
            "all": np.arange(len(labels))}
