"""Weighted kNN on frozen features (Wu et al. 2018, arXiv 1805.01978, Sec. 3.4).

Cosine similarity between L2-normalised test and training features; each of the
k nearest neighbours votes for its class with weight exp(s / t). Top-1 (and top-5
when there are more than 10 classes) on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy


@torch.no_grad()
def knn_scores(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, num_classes: int,
               k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Class scores M x C for test features M x D from training features N x D (labels N)."""
    train = F.normalize(train, dim=1)
    test = F.normalize(test, dim=1)
    k = min(k, train.shape[0])
    out = []
    for i in range(0, test.shape[0], chunk):
        sim = test[i:i + chunk] @ train.T  # m x N
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[top_idx], weights)
        out.append(votes)
    return torch.cat(out)


@register_protocol("knn")
class KNNProbe(Protocol):
    version = 1

    @dataclass
    class Config:
        k: int = 200
        temperature: float = 0.1

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        x_train, y_train = ctx.features("train")
        x_test, y_test = ctx.features("test")
        scores = knn_scores(x_train, y_train, x_test, ctx.data.num_classes, self.cfg.k, self.cfg.temperature)
        out = {"top1": Metric(topk_accuracy(scores, y_test, 1), True, "%", "knn")}
        if ctx.data.num_classes > 10:
            out["top5"] = Metric(topk_accuracy(scores, y_test, 5), True, "%", "knn")
        return out
