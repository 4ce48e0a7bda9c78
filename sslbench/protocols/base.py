"""Protocol base class and the evaluation context shared by every protocol.

A protocol receives an :class:`EvalContext` (the trained method, the data, the
device, the seed) and returns named :class:`~sslbench.records.Metric` values. The
context computes each split's frozen features once and caches them, so linear,
kNN, few-shot and noisy-label protocols of one run share one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from ..data.base import DataInfo, Split
from ..engine import channels_last
from ..records import Metric
from ..views.image import eval_batch, eval_transform


class Protocol:
    name: ClassVar[str] = ""
    version: ClassVar[int] = 1

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        raise NotImplementedError


@dataclass
class EvalContext:
    method: Any  # sslbench.method.Method (its .embed gives frozen features)
    data: DataInfo
    splits: dict[str, Split]  # keys "train" and "test"
    device: torch.device
    seed: int = 0
    batch_size: int = 512
    _cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    _graph_cache: dict[int, torch.Tensor] = field(default_factory=dict)

    def features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features N x D (float32, on CPU) and labels N of a split, computed once. For a graph's
        node splits, one forward pass over the whole graph serves every split (rows ``split.nodes``)."""
        if split not in self._cache:
            s = self.splits[split]
            if s.graph is not None:
                if id(s.graph) not in self._graph_cache:
                    self._graph_cache[id(s.graph)] = embed_graph(self.method, s.graph, self.device)
                feats = self._graph_cache[id(s.graph)][s.nodes]
            else:
                feats = extract_features(self.method, s, self.data, self.device, self.batch_size)
            self._cache[split] = (feats, s.labels.clone())
        return self._cache[split]


@torch.no_grad()
def extract_features(method: Any, split: Split, data: DataInfo, device: torch.device,
                     batch_size: int = 512) -> torch.Tensor:
    """Run ``method.embed`` in eval mode over a split: N samples -> N x D on CPU."""
    was_training = method.training
    method.eval()
    out = []
    try:
        if split.in_memory:
            for i in range(0, len(split), batch_size):
                x = eval_batch(split.images[i:i + batch_size].to(device), data)
                out.append(method.embed(channels_last(x)).float().cpu())
        else:
            tf = eval_transform(data)
            loader = DataLoader(_Mapped(split.dataset, tf), batch_size=batch_size, num_workers=0)
            for x in loader:
                out.append(method.embed(x.to(device)).float().cpu())
    finally:
        method.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_graph(method: Any, graph: Any, device: torch.device) -> torch.Tensor:
    """``method.embed`` in eval mode over a whole graph (x N x F, edge_index 2 x E) -> N x D on CPU."""
    was_training = method.training
    method.eval()
    try:
        from ..views.graph import graph_inputs

        return method.embed(graph_inputs(graph, device)).float().cpu()
    finally:
        method.train(was_training)


class _Mapped(torch.utils.data.Dataset):
    def __init__(self, base, tf):
        self.base, self.tf = base, tf

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.tf(self.base[i][0])


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of rows whose label is among the k highest scores: scores N x C, labels N."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return 100.0 * (top == labels[:, None]).any(dim=1).float().mean().item()
