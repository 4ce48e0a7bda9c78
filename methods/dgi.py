"""Deep Graph Infomax (Velickovic, Fedus, Hamilton, Lio, Bengio, Hjelm 2019, arXiv 1809.10341).

A GCN encoder E maps the graph (X N x F, A) to patch representations H = E(X, A), N x D.
The readout R gives the summary s = sigmoid(mean_i h_i) (D). The corruption C shuffles the
rows of X on the same A (:func:`sslbench.views.graph.shuffle_rows`) and gives the negative
patches H~ = E(C(X), A). The discriminator is bilinear, D(h, s) = sigmoid(h^T W s + b)
(Eq. 5), and the objective is the binary cross-entropy of Eq. 1:

    L = -1/(N + M) * ( sum_i log D(h_i, s) + sum_j log(1 - D(h~_j, s)) )     (M = N here)

Training is full-batch with Adam (lr 0.001) and early stopping on this loss (patience 20),
keeping the best epoch's weights; the frozen representation is H on the clean graph. All of
this follows the official code (``execute.py``, ``models/dgi.py``, ``layers/discriminator.py``).

``corruptions`` > 1 draws several shuffled graphs per step, K N negative patches against one
summary (the paper uses 1): the axis ``sslbench profile`` sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.views.graph import shuffle_rows


def readout(h: torch.Tensor) -> torch.Tensor:
    """DGI's summary: h N x D -> sigmoid of the mean over nodes, D."""
    return torch.sigmoid(h.mean(dim=0))


class BilinearDiscriminator(nn.Module):
    """D(h, s) logits = h^T W s + b for every row h of ``h`` (N x D) and one summary s (D) -> N.

    Initialised as the official code (an ``nn.Bilinear``): Xavier-uniform W, zero bias. Computed as
    h (W s): one D x D matrix-vector product and an N x D one, where ``nn.Bilinear`` on s expanded to
    N rows costs N D^2 and its backward holds an N x D x D intermediate (2.8 GB on Cora at D = 512)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bilinear = nn.Bilinear(dim, dim, 1)
        nn.init.xavier_uniform_(self.bilinear.weight)
        nn.init.zeros_(self.bilinear.bias)

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return h @ (self.bilinear.weight[0] @ s) + self.bilinear.bias


def dgi_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 1 as binary cross-entropy with logits: positives (N) labelled 1, negatives (M) labelled 0,
    averaged over all N + M pairs."""
    logits = torch.cat([pos_logits, neg_logits])
    labels = torch.cat([torch.ones_like(pos_logits), torch.zeros_like(neg_logits)])
    return F.binary_cross_entropy_with_logits(logits, labels)


@register_method("dgi")
class DGI(Method):
    modality = "graph"
    version = 1
    negatives_key = "method.corruptions"

    @dataclass
    class Config(Method.Config):
        corruptions: int = 1  # shuffled graphs per step (negatives per summary: corruptions x N)

    def setup(self) -> None:
        if self.cfg.corruptions < 1:
            from sslbench.errors import ConfigError

            raise ConfigError(f"Bad value for 'method.corruptions': {self.cfg.corruptions}; 1 or more")
        self.discriminator = BilinearDiscriminator(self.feature_dim)

    def views(self, base):
        return [base]  # the clean graph (the suite's views normally change nothing); C is the method's own

    def training_step(self, batch: Batch) -> StepOutput:
        g = batch.views[0]
        h = self.encoder(g.x, g.edge_index)  # N x D positive patches
        s = readout(h)
        negatives = [self.encoder(shuffle_rows(g.x)[0], g.edge_index) for _ in range(self.cfg.corruptions)]
        pos = self.discriminator(h, s)
        neg = torch.cat([self.discriminator(hn, s) for hn in negatives])
        loss = dgi_loss(pos, neg)
        with torch.no_grad():
            acc = 0.5 * ((pos > 0).float().mean() + (neg <= 0).float().mean())
        return StepOutput(loss=loss, logs={"disc_acc": float(acc)})

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.corruptions * self.data.num_nodes

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Float32 floor of what the negatives keep for backward: per corrupted graph, the shuffled
        features (N x F), the GCN's activations (pre- and post-activation, N x D per layer) and the
        discriminator's logits (N)."""
        n, f = self.data.num_nodes, self.data.num_features
        dims = [conv.out_channels for conv in getattr(self.encoder, "convs", [])] or [self.feature_dim]
        per_graph = n * f + sum(2 * n * d for d in dims) + n
        return 4 * self.cfg.corruptions * per_graph
