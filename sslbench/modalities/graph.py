"""Transductive graphs (Planetoid, Amazon, Coauthor): one graph, node splits.

Every split of a graph data set shares one torch_geometric ``Data`` (x N x F, edge_index
2 x E) and carries its own ``nodes``. Methods pretrain on the whole graph without labels:
one step is the whole graph (DGI and GRACE train full-batch), so an epoch is one step and
throughput is counted in nodes. Protocols embed the whole graph once per run and index each
split's nodes. Subsets (few-shot, ``max_train_samples``) keep the graph whole and take fewer
labelled nodes. Fine-tuning the encoder is not built for graphs, nor data-parallel pretraining
(refused under more than one process: there is no batch to split).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..data.base import DataInfo, Split
from ..errors import ConfigError
from ..method import Batch
from ..plugins import register_modality
from ..seeding import step_seed
from ..views.graph import GraphViewConfig, graph_inputs, resolve_views
from .base import Modality, eval_mode, subset_targets


class GraphBatchSource:
    """Every step is the whole graph; each step's views are drawn on the device from ``(seed, epoch)``.
    ``samples_per_step`` is N nodes."""

    steps_per_epoch = 1

    def __init__(self, split: Split, method: Any, views_cfg: Any, seed: int, device: torch.device):
        g = split.graph
        self.graph = graph_inputs(g, device)
        self.labels = g.y.to(device) if method.needs_labels else None
        self.seed, self.device = seed, device
        self.n = self.samples_per_step = int(g.num_nodes)
        self.views = resolve_views(method.views(views_cfg))

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        if start >= 1:
            return
        torch.manual_seed(step_seed(self.seed, epoch))
        yield Batch(views=[view(self.graph) for view in self.views],
                    index=torch.arange(self.n, device=self.device), labels=self.labels)


@register_modality("graph")
class GraphModality(Modality):
    unit = "nodes"
    check_suite = "cora-dgi"  # the smallest real-data suite: smoke runs, benchmarks/gpu_check.py
    view_config = GraphViewConfig
    supports_finetune = False

    def encode(self, encoder: torch.nn.Module, x: Any) -> torch.Tensor:
        return encoder(x.x, x.edge_index)

    def raw_features(self, x: Any) -> torch.Tensor:
        return x.x.float()

    def raw_feature_dim(self, data: DataInfo) -> int:
        return int(data.num_features)

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        resolve_views(recipes)

    def max_batch_size(self, split: Split) -> int | None:
        return None  # every step is the whole graph

    def check_distributed(self, world: int, cfg: Any) -> None:
        """Full-graph (transductive) training: one step is the whole graph, there is no batch to split."""
        if world > 1:
            raise ConfigError(f"Graph pretraining is full-graph (one step is the whole graph), so there is no batch "
                              f"to split over {world} processes; run it in one process (no torchrun, no --nproc)")

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> GraphBatchSource:
        return GraphBatchSource(split, method, views_cfg, seed, device)

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        return Split(labels=split.labels[idx], graph=split.graph, nodes=split.nodes[idx], extra=split.extra,
                     targets=subset_targets(split, idx))

    @torch.no_grad()
    def features(self, method: Any, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                 shared: dict) -> torch.Tensor:
        """One forward pass over the whole graph (x N x F, edge_index 2 x E) serves every split: N x D on the
        CPU, rows ``split.nodes``."""
        key = ("graph-embedding", id(split.graph))
        if key not in shared:
            with eval_mode(method):
                shared[key] = method.embed(graph_inputs(split.graph, device)).float().cpu()
        return shared[key][split.nodes]


__all__ = ["GraphModality", "GraphBatchSource"]
