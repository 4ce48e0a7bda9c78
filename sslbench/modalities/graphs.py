"""Graph-level data: one sample is one graph (graph classification; TUDataset sets, ``data/graphset.py``).

- Splits: ``samples`` a list of :class:`~sslbench.data.graphset.Graph` (CSR adjacency, optional node
  features), ``labels`` int64 N (graph labels), ``extra["features"]`` the
  :class:`~sslbench.views.graphs.GraphFeatures` every input of the set carries (``DataInfo.num_features`` wide).
- Pretraining (:class:`GraphsBatchSource`): batches of graph indices in an order drawn from ``(seed, epoch)``;
  for each graph an ego node, then one RWR subgraph per view recipe around it (GCC, Qiu et al. 2020, Sec. 3.2;
  :mod:`sslbench.views.graphs`), every draw from a NumPy generator seeded by ``(seed, epoch, graph index)``;
  each view is a :class:`~sslbench.views.graphs.GraphBatch` of B subgraphs, featurised on their own.
- Evaluation (the protocols' features, one row per graph): the WHOLE graph, its positional embedding computed
  on the whole graph, the ego indicator on its highest-degree node (GCC's graph classification inputs,
  ``GraphClassificationDataset`` with ``entire_graph=True``); featurised once per graph and kept for the
  process (weakly, with the graph).
- Fine-tuning: the evaluation inputs (``augment: true`` is refused).
- Floor (``baseline.pixels``): the input features summed over each graph's nodes (the degree histogram, the
  summed positional embeddings, the ego flag, summed node features): ``num_features`` per graph.
- Throughput in graphs/s.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..data.base import DataInfo, Split
from ..errors import ConfigError
from ..method import Batch
from ..plugins import register_modality
from ..seeding import step_seed
from ..views.graphs import (
    GraphBatch,
    GraphFeatures,
    GraphsViewConfig,
    check_graphs_views,
    choose_start,
    featurize,
    induced_subgraph,
    rwr_nodes,
)
from .base import IndexedBatchSource, Modality, subset_targets

_EVAL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Graph -> {GraphFeatures: (x, edge_index)}


def split_features(split: Split) -> GraphFeatures:
    spec = (split.extra or {}).get("features")
    if not isinstance(spec, GraphFeatures):
        raise ConfigError("a graph-level split must say its node features (Split.extra['features'], a GraphFeatures)")
    return spec


def subgraph_view(graph: Any, ego: int, recipe: GraphsViewConfig, spec: GraphFeatures,
                  rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """One GCC instance of ``graph`` around ``ego``: (x n' x F, edge_index 2 x E' local), the ego node first."""
    nodes = rwr_nodes(graph.indptr, graph.indices, ego, recipe.restart_prob, recipe.walk_length, recipe.max_nodes, rng)
    ei = induced_subgraph(graph.indptr, graph.indices, nodes)
    node_x = graph.x[nodes] if graph.x is not None else None
    return featurize(ei, len(nodes), 0, spec, node_x), ei


def whole_graph_view(graph: Any, spec: GraphFeatures) -> tuple[torch.Tensor, np.ndarray]:
    """The evaluation input of ``graph``: the whole graph, the ego flag on its (first) highest-degree node."""
    per_graph = _EVAL_CACHE.setdefault(graph, {})
    if spec not in per_graph:
        ei = graph.edge_index
        per_graph[spec] = (featurize(ei, graph.num_nodes, int(np.argmax(graph.degrees)), spec, graph.x), ei)
    return per_graph[spec]


class GraphsBatchSource(IndexedBatchSource):
    """Pretraining batches: ``Batch(views=[GraphBatch of B subgraphs, ...], index, labels)``, one view per
    recipe, every view of a graph around the same ego node (see the module docstring for the seeding)."""

    def __init__(self, split: Split, method: Any, views_cfg: Any, cfg: Any, seed: int, device: torch.device):
        super().__init__(len(split), cfg.batch_size, seed, device)
        self.graphs, self.spec = split.samples, split_features(split)
        self.recipes = method.views(views_cfg if views_cfg is not None else GraphsViewConfig())
        check_graphs_views(self.recipes)
        self.labels = split.labels if method.needs_labels else None
        self._epoch = 0

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        self._epoch = epoch
        yield from super().epoch_batches(epoch, start)

    def make_batch(self, idx: torch.Tensor) -> Batch:
        per_view: list[list] = [[] for _ in self.recipes]
        for i in idx.tolist():
            rng = np.random.default_rng(step_seed(self.seed, self._epoch * 10_000_019 + i))
            graph = self.graphs[i]
            ego = choose_start(graph.indptr, self.recipes[0].start, rng)
            for v, recipe in enumerate(self.recipes):
                per_view[v].append(subgraph_view(graph, ego, recipe, self.spec, rng))
        views = [GraphBatch.collate(items).to(self.device) for items in per_view]
        labels = self.labels[idx].to(self.device) if self.labels is not None else None
        return Batch(views=views, index=idx.to(self.device), labels=labels)


@register_modality("graphs")
class GraphsModality(Modality):
    unit = "graphs"
    check_suite = "imdb-binary-gcc"  # the smallest real-data suite: smoke runs, benchmarks/gpu_check.py
    view_config = GraphsViewConfig
    supports_finetune = True

    def sample_shape(self, data: DataInfo) -> tuple[int, ...]:
        raise ConfigError("graphs have no fixed input shape: the traced memory floor is not available for them")

    def probe_batch(self, data: DataInfo, batch: int, view: Any, generator: torch.Generator) -> GraphBatch:
        """``batch`` rings of the view's ``max_nodes`` nodes with random features (the largest subgraph a view
        can give, for traced activation floors)."""
        n = int(getattr(view, "max_nodes", None) or GraphsViewConfig().max_nodes)
        ring = np.stack([np.arange(n), (np.arange(n) + 1) % n])
        ei = np.concatenate([ring, ring[::-1]], axis=1)
        return GraphBatch.collate([(torch.rand(n, int(data.num_features), generator=generator), ei)
                                   for _ in range(batch)])

    def raw_features(self, x: Any) -> torch.Tensor:
        out = torch.zeros(x.num_graphs, x.x.shape[1], dtype=torch.float32, device=x.x.device)
        return out.index_add_(0, x.batch, x.x.float())

    def raw_feature_dim(self, data: DataInfo) -> int:
        return int(data.num_features)

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        check_graphs_views(recipes)
        split_features(split)

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> GraphsBatchSource:
        return GraphsBatchSource(split, method, views_cfg, cfg, seed, device)

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        idx = torch.as_tensor(idx, dtype=torch.int64)
        return Split(labels=split.labels[idx], samples=[split.samples[i] for i in idx.tolist()], extra=split.extra,
                     targets=subset_targets(split, idx))

    def eval_inputs(self, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                    indices: torch.Tensor | None = None) -> Iterator[GraphBatch]:
        """Whole graphs of the split (or of ``indices``) in order, ``batch_size`` a batch, as GraphBatches."""
        spec = split_features(split)
        idx = range(len(split)) if indices is None else torch.as_tensor(indices).long().tolist()
        idx = list(idx)
        for i in range(0, len(idx), batch_size):
            items = [whole_graph_view(split.samples[j], spec) for j in idx[i:i + batch_size]]
            yield GraphBatch.collate(items).to(device)


__all__ = ["GraphsModality", "GraphsBatchSource", "subgraph_view", "whole_graph_view"]
