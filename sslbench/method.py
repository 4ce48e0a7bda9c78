"""The Method base class: a plugin declares its views, heads, loss and extra state.

Everything shared (encoder construction, optimiser, schedule, AMP, checkpoints,
meters) lives in :mod:`sslbench.engine`. A method sees batches of already
augmented views and returns a :class:`StepOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .data.base import DataInfo


@dataclass
class Batch:
    """One training batch.

    views:  list of V views: image tensors B x C x H x W; for a transductive graph, V torch_geometric
            ``Data`` (x N x F, edge_index 2 x E) of the whole graph (other modalities their own types)
    index:  int64 B, the samples' positions in the training split (memory banks); graphs: arange(N)
    labels: int64 B, only for methods with ``needs_labels``
    """

    views: list[Any]
    index: torch.Tensor
    labels: torch.Tensor | None = None


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar
    logs: dict[str, float] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of every method plugin (see ``methods/simclr.py``)."""

    name: ClassVar[str] = ""
    variant: str | None = None
    modality: ClassVar[str] = "image"  # image | audio | text | graph | any (the floors)
    version: ClassVar[int] = 1  # bump when behaviour changes; recorded in every result
    needs_labels: ClassVar[bool] = False
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    # the config key that `sslbench profile --negatives` sweeps (batch size, queue size, sampled negatives)
    negatives_key: ClassVar[str] = "pretrain.batch_size"

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Any, encoder: nn.Module, feature_dim: int, data: DataInfo, train_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.data = data
        self.train_size = train_size
        self.setup()

    def setup(self) -> None:
        """Build heads and extra state (queues, banks, key encoders)."""

    def views(self, base: Any) -> list[Any]:
        """View recipes for one sample, derived from the suite's base recipe: two alike by default."""
        return [base, base]

    def training_step(self, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimiser step (momentum updates, enqueueing)."""

    @torch.no_grad()
    def embed(self, x: Any) -> torch.Tensor:
        """Frozen features for every protocol (encoder output, no head): images B x C x H x W -> B x feature_dim;
        a graph (torch_geometric ``Data``) -> N x feature_dim, one row per node."""
        if isinstance(x, torch.Tensor):
            return self.encoder(x)
        return self.encoder(x.x, x.edge_index)

    def num_negatives(self, batch_size: int) -> int:
        """Negatives per anchor in one step at ``batch_size``: what ``profile`` sweeps."""
        return 0

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Analytic floor of the memory the negatives need at ``batch_size``: stored keys (queue or bank)
        plus the logits over them and their gradients. Compared with measured memory by ``profile``."""
        return 0

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups; by default every trainable parameter in one group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]
