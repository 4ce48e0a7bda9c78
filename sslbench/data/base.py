"""Shared data types for every modality's loaders.

A loader returns a :class:`Split` per split name. Image splits that fit in memory
carry ``images`` (uint8, N x C x H x W) so the engine can batch and augment them
on the training device without a DataLoader; large trees (ImageNet) carry a
``dataset`` whose items are ``(uint8 C x H x W tensor, int label)``. A transductive
graph's splits all carry the same ``graph`` and their own ``nodes`` (data/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


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


@dataclass
class Split:
    """One split of a data set.

    images:  uint8 tensor N x C x H x W when held in memory, else None
    labels:  int64 tensor N
    dataset: a map-style Dataset of (uint8 C x H x W tensor, label) when not in memory
    graph:   a torch_geometric ``Data`` (x N x F, edge_index 2 x E, y N): the whole graph, shared by every split
    nodes:   int64 tensor of this split's node indices in ``graph`` (labels == graph.y[nodes])
    samples: any other modality's in-memory inputs, indexable by sample (e.g. a float N x F tensor)
    """

    labels: torch.Tensor
    images: torch.Tensor | None = None
    dataset: Dataset | None = None
    graph: Any = None
    nodes: torch.Tensor | None = None
    samples: Any = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_memory(self) -> bool:
        return self.images is not None
