"""Projection and prediction heads."""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True) -> nn.Sequential:
    """SimCLR's projection head g(.) (Chen et al. 2020, Sec. 2.1): (Linear -> BN -> ReLU) x (L-1) -> Linear.

    B x in_dim -> B x out_dim. ``num_layers=1`` is a linear head (MoCo v1).
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)
