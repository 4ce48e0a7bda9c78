"""Graph views and corruptions, usable by any graph method.

- :func:`shuffle_rows`: DGI's corruption function C (Velickovic et al. 2019, arXiv 1809.10341,
  Sec. 3.4 / official ``execute.py``): the node feature matrix's rows are permuted, the
  edges are kept, so every node gets another node's features on the same structure.
- :func:`drop_edges`: GRACE's removing edges, RE (Zhu et al. 2020, arXiv 2006.04131, Sec. 3.2):
  each (directed) edge is removed independently with probability p_e.
- :func:`mask_features`: GRACE's masking node features, MF: each feature dimension is zeroed
  with probability p_f, the same dimensions for every node.

All draw from torch's global generator, which the engine seeds per step, so a view
replays exactly on resume. Shapes: x N x F, edge_index 2 x E.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError


def shuffle_rows(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x N x F -> (x[perm], perm): row i of the result is row perm[i] of x."""
    perm = torch.randperm(x.shape[0], device=x.device, generator=generator)
    return x[perm], perm


def drop_edges(edge_index: torch.Tensor, p: float) -> torch.Tensor:
    """edge_index 2 x E -> 2 x E' with each column kept with probability 1 - p."""
    if p <= 0:
        return edge_index
    keep = torch.rand(edge_index.shape[1], device=edge_index.device) >= p
    return edge_index[:, keep]


def mask_features(x: torch.Tensor, p: float) -> torch.Tensor:
    """x N x F -> a copy with each of the F columns zeroed with probability p."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape[1], device=x.device) >= p
    return x * keep.to(x.dtype)


@dataclass
class GraphViewConfig:
    """Graph views (Zhu et al. 2020, GRACE Sec. 3.2): edge dropping and feature masking, one value per view.

    A list gives each view its own probability (GRACE's p_e,1 / p_e,2 and p_f,1 / p_f,2); one value is
    used by every view. DGI's corruption (feature-row shuffling) is the method's own negative, not a view.
    """

    drop_edge: list[float] = field(default_factory=lambda: [0.0])  # P(an edge is removed)
    mask_feature: list[float] = field(default_factory=lambda: [0.0])  # P(a feature dimension is zeroed)


@dataclass
class GraphViewRecipe:
    """One view's corruption probabilities."""

    drop_edge: float = 0.0
    mask_feature: float = 0.0


def view_recipes(cfg: GraphViewConfig, num_views: int) -> list[GraphViewRecipe]:
    """One recipe per view from the suite's lists (a single value serves every view)."""
    out = []
    for name in ("drop_edge", "mask_feature"):
        values = list(getattr(cfg, name))
        if len(values) not in (1, num_views):
            raise ConfigError(f"Bad value for 'views.{name}': {values} has {len(values)} entries; "
                              f"give 1 or {num_views} (one per view)")
        for v in values:
            if not 0.0 <= float(v) < 1.0:
                raise ConfigError(f"Bad value in 'views.{name}': {v} is not a probability in [0, 1)")
        out.append(values * num_views if len(values) == 1 else values)
    return [GraphViewRecipe(float(e), float(f)) for e, f in zip(out[0], out[1], strict=True)]


def resolve_views(recipes: list) -> list[GraphView]:
    """A method's ``views(base)`` output -> one :class:`GraphView` per view. Items may be the suite's
    :class:`GraphViewConfig` (its lists give view i the i-th probabilities) or ready recipes."""
    return [GraphView(view_recipes(r, len(recipes))[i] if isinstance(r, GraphViewConfig) else r)
            for i, r in enumerate(recipes)]


def graph_inputs(graph, device):
    """The whole graph's x (N x F) and edge_index (2 x E) on ``device``, without labels or masks."""
    return type(graph)(x=graph.x, edge_index=graph.edge_index, num_nodes=graph.num_nodes).to(device)


class GraphView:
    """Applies one recipe to a graph: (x N x F, edge_index 2 x E) -> a new torch_geometric ``Data``."""

    def __init__(self, recipe: GraphViewRecipe):
        self.recipe = recipe

    def __call__(self, graph):
        from torch_geometric.data import Data

        return Data(x=mask_features(graph.x, self.recipe.mask_feature),
                    edge_index=drop_edges(graph.edge_index, self.recipe.drop_edge), num_nodes=graph.num_nodes)


__all__ = ["GraphViewConfig", "shuffle_rows", "drop_edges", "mask_features", "GraphViewRecipe", "GraphView", "view_recipes",
           "resolve_views", "graph_inputs"]
