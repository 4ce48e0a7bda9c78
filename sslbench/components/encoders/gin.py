"""GIN: graph isomorphism network with a graph-level readout (Xu et al. 2019, arXiv 1810.00826), GCC's encoder.

Per layer k (torch_geometric's ``GINConv``, eps fixed at 0 as GCC's ``learn_eps=False``):
h_v^(k) = ReLU(BN(MLP^(k)(h_v^(k-1) + sum_{u in N(v)} h_u^(k-1)))), MLP = Linear-BN-ReLU-Linear.
Readout (Xu et al. Sec. 4.2, GCC's ``UnsupervisedGIN``): h_G = sum_k Dropout(W_k POOL({h_v^(k)})) over
k = 0 (the input features) .. L - 1, POOL = sum (GCC) or mean; ``readout: last`` uses W_{L-1} POOL(h^(L-1))
only. ``layers`` counts the input as a layer, as Xu et al. and GCC do: 5 layers = 4 GIN convolutions.
GCC: 5 layers, hidden 64, output 64, sum pooling, dropout 0.5 on the readout.

Input: a :class:`~sslbench.views.graphs.GraphBatch` (x N x F, edge_index 2 x E, batch N, num_graphs B);
output: B x ``out_dim``. Neighbour sums are one sparse CSR product per layer (as the GCN encoder), outside
autocast in float32 (CPU CSR products have no bf16 kernel).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data.base import DataInfo
from ...errors import UnknownNameError
from ...plugins import register_encoder
from .graph import sparse_adjacency

POOLINGS = ("sum", "mean")
READOUTS = ("layers", "last")


def _mlp(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, b))


class GIN(nn.Module):
    """See the module docstring. ``in_dim`` F -> ``out_dim`` per graph."""

    def __init__(self, in_dim: int, hidden: int = 64, out_dim: int = 64, layers: int = 5, pooling: str = "sum",
                 readout: str = "layers", dropout: float = 0.5):
        super().__init__()
        from torch_geometric.nn import GINConv

        if pooling not in POOLINGS:
            raise UnknownNameError(f"Unknown pooling '{pooling}' (in encoder.options.pooling). Valid: {', '.join(POOLINGS)}")
        if readout not in READOUTS:
            raise UnknownNameError(f"Unknown readout '{readout}' (in encoder.options.readout). Valid: {', '.join(READOUTS)}")
        if layers < 2 or hidden < 1 or out_dim < 1 or not 0 <= dropout < 1:
            raise UnknownNameError(f"Bad gin options: layers={layers} (>= 2), hidden={hidden}, out_dim={out_dim} "
                                   f"(>= 1), dropout={dropout} (in [0, 1))")
        dims = [in_dim] + [hidden] * (layers - 1)
        self.convs = nn.ModuleList(GINConv(_mlp(a, b), eps=0.0, train_eps=False) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in dims[1:])
        heads = dims if readout == "layers" else dims[-1:]
        self.readouts = nn.ModuleList(nn.Linear(d, out_dim) for d in heads)
        self.drop = nn.Dropout(dropout)
        self.pooling, self.readout = pooling, readout
        self.num_features = out_dim

    def pool(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """N x D node rows -> B x D per graph (sum or mean)."""
        out = torch.zeros(num_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, batch, h)
        if self.pooling == "mean":
            count = torch.bincount(batch, minlength=num_graphs).clamp_min(1).to(h.dtype)
            out = out / count[:, None]
        return out

    def forward(self, g) -> torch.Tensor:
        """A GraphBatch -> B x out_dim."""
        out_dtype = g.x.dtype
        x = g.x.float() if g.x.dtype in (torch.float16, torch.bfloat16) else g.x
        with torch.autocast(x.device.type, enabled=False):
            adj_t = sparse_adjacency(g.edge_index, x.shape[0], x.dtype)
            hidden = [x]
            for conv, norm in zip(self.convs, self.norms, strict=True):
                x = torch.relu(norm(conv(x, adj_t)))
                hidden.append(x)
            used = hidden if self.readout == "layers" else hidden[-1:]
            out = sum(self.drop(lin(self.pool(h, g.batch, g.num_graphs)))
                      for lin, h in zip(self.readouts, used, strict=True))
        return out.to(out_dtype)


@register_encoder("gin", modality="graphs")
def gin(data: DataInfo, options: dict) -> nn.Module:
    """GIN (Xu et al. 2019) with a graph-level readout, GCC's encoder (options: hidden, out_dim, layers, pooling,
    readout, dropout)."""
    valid = {"hidden", "out_dim", "layers", "pooling", "readout", "dropout"}
    unknown = set(options) - valid
    if unknown:
        raise UnknownNameError(f"Unknown option '{sorted(unknown)[0]}' for encoder gin. Valid: {', '.join(sorted(valid))}")
    return GIN(int(data.num_features), int(options.get("hidden", 64)), int(options.get("out_dim", 64)),
               int(options.get("layers", 5)), str(options.get("pooling", "sum")), str(options.get("readout", "layers")),
               float(options.get("dropout", 0.5)))


__all__ = ["GIN", "gin"]
