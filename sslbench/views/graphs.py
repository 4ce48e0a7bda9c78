"""Views of whole graphs (graph-level data, one sample = one graph): GCC's subgraph instances.

GCC (Qiu et al. 2020, arXiv 2006.09963, Sec. 3.2) makes an instance of a graph from an ego node r:

1. random walk with restart (RWR) from r: every trace starts at r, and at each step it stops (the walk
   restarts at r) with probability ``restart_prob`` (0.8) or moves to a uniformly drawn neighbour; traces are
   drawn until ``walk_length`` nodes were visited (repeats counted; GCC's ``rw_hops`` 256, raised to
   deg(r)^0.75 e / (e - 1) / restart_prob for hubs, as the official sampler does) or, here, until
   ``max_nodes`` distinct nodes were reached;
2. the subgraph induced by the visited nodes (r first): connected, since every node was reached from r
   along edges that the induced subgraph keeps;
3. node features: GCC's generalised positional embedding, the eigenvectors of the ``pos_dim`` largest
   eigenvalues of D^-1/2 A D^-1/2 of the (sub)graph (= the smallest of its normalised Laplacian
   I - D^-1/2 A D^-1/2), each node's row L2-normalised, zero-padded to ``pos_dim`` columns; then a one-hot of
   the node's degree in the (sub)graph clipped at ``max_degree`` (GCC's learned degree embedding is this one-hot
   times the first layer's weights), GCC's ego indicator (1 for r), and optionally the data set's own node
   features (``Graph.x``).

Two views of a graph are two independent RWR subgraphs around the same ego node (GCC's
``step_dist = [1, 0, 0]``); the ego node is drawn with probability proportional to degree^0.75 (GCC's
sampler) or uniformly. Randomness comes from a NumPy generator the batch source seeds per
``(seed, epoch, sample index)``.

Differences from the official code: eigenvectors are ordered by decreasing eigenvalue (the official
``eigsh(which="LA")`` returns them increasing, so a column's meaning shifts with the subgraph's size) and given
a fixed sign (each column's largest-magnitude entry positive; the official sign is ARPACK's, from a random
start vector); k = min(n, pos_dim) eigenvectors where the official code, bound by ARPACK, takes min(n - 2,
pos_dim); dense ``numpy.linalg.eigh`` up to ``DENSE_MAX`` nodes, ``scipy.sparse.linalg.eigsh`` with a fixed
start vector above.

Shapes: a :class:`~sslbench.data.graphset.Graph` holds CSR adjacency (``indptr`` n + 1, ``indices`` E, both
directions of each undirected edge); a featurised graph is (x n x F float32, edge_index 2 x E int64); a batch
is a :class:`GraphBatch` (x N x F, edge_index 2 x E, batch N, num_graphs B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

DENSE_MAX = 1000  # graphs up to this many nodes: dense eigh; above: scipy's eigsh (Lanczos)
START_KINDS = ("degree", "uniform")


@dataclass
class GraphsViewConfig:
    """The suite's ``views:`` section for graph-level data: GCC's RWR subgraph (Sec. 3.2)."""

    restart_prob: float = 0.8  # P(a trace stops and the walk restarts at the ego node), per step
    walk_length: int = 256  # nodes visited (repeats counted) before the walk stops: GCC's rw_hops
    max_nodes: int = 128  # at most this many distinct nodes in a subgraph (GCC's subgraph_size)
    start: str = "degree"  # ego node: "degree" (P ~ degree^0.75, GCC's sampler) or "uniform"


@dataclass(frozen=True)
class GraphFeatures:
    """Which node features a featurised graph carries, in this order: ``pos_dim`` positional-embedding
    columns, ``max_degree + 1`` degree one-hot columns (none when ``max_degree`` is 0), 1 ego indicator, and
    the data set's ``node_dim`` own node features (0: none)."""

    pos_dim: int = 32
    max_degree: int = 64
    node_dim: int = 0

    @property
    def degree_dim(self) -> int:
        return self.max_degree + 1 if self.max_degree > 0 else 0

    @property
    def dim(self) -> int:
        return self.pos_dim + self.degree_dim + 1 + self.node_dim


def check_graphs_views(recipes: list[Any]) -> None:
    """One-line ConfigError for a recipe that is not a valid RWR view."""
    for r in recipes:
        if not isinstance(r, GraphsViewConfig):
            raise ConfigError(f"graph-level views must be GraphsViewConfig (views: {{restart_prob, walk_length, "
                              f"max_nodes, start}}), got {type(r).__name__}")
        if not 0.0 < float(r.restart_prob) < 1.0:
            raise ConfigError(f"Bad value for 'views.restart_prob': {r.restart_prob!r}; must be in (0, 1)")
        for name, low in (("walk_length", 1), ("max_nodes", 2)):
            v = getattr(r, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"Bad value for 'views.{name}': {v!r}; must be an integer >= {low}")
        if r.start not in START_KINDS:
            raise ConfigError(f"Bad value for 'views.start': {r.start!r}; valid: {', '.join(START_KINDS)}")


# --------------------------------------------------------------------------- sampling

def choose_start(indptr: np.ndarray, kind: str, rng: np.random.Generator) -> int:
    """The ego node: P ~ degree^0.75 (GCC's sampler; uniform when every degree is 0) or uniform."""
    n = len(indptr) - 1
    if kind == "degree":
        w = np.diff(indptr).astype(np.float64) ** 0.75
        total = w.sum()
        if total > 0:
            return int(np.searchsorted(np.cumsum(w), rng.random() * total, side="right").clip(max=n - 1))
    return int(rng.integers(n))


def rwr_nodes(indptr: np.ndarray, indices: np.ndarray, start: int, restart_prob: float, walk_length: int,
              max_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Nodes visited by random walks with restart from ``start``: int64, ``start`` first, then in order of first
    visit; at most ``max_nodes`` of them. Each trace makes Geometric(restart_prob) - 1 moves from ``start``;
    traces are drawn until ``max(walk_length, deg^0.75 e / (e - 1) / restart_prob)`` moves were made or
    ``max_nodes`` distinct nodes were visited."""
    deg0 = int(indptr[start + 1] - indptr[start])
    order = [start]
    if deg0 == 0 or max_nodes <= 1:
        return np.asarray(order, dtype=np.int64)
    budget = max(walk_length, int(deg0 ** 0.75 * math.e / (math.e - 1) / restart_prob + 0.5))
    seen = {start}
    moves = 0
    while moves < budget:
        length = min(int(rng.geometric(restart_prob)) - 1, budget - moves)
        if length == 0:  # stopped at once: the walk restarts at the ego node
            continue
        picks = rng.random(length)
        cur = start
        for u in picks:
            lo, hi = indptr[cur], indptr[cur + 1]
            cur = int(indices[lo + int(u * (hi - lo))])
            if cur not in seen:
                seen.add(cur)
                order.append(cur)
                if len(order) >= max_nodes:
                    return np.asarray(order, dtype=np.int64)
        moves += length
    return np.asarray(order, dtype=np.int64)


def induced_subgraph(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The edges among ``nodes`` (global ids) as a 2 x E' int64 edge_index over local ids 0..len(nodes) - 1
    (local id i = ``nodes[i]``); both directions of each undirected edge, sorted by (row, col)."""
    local = {int(v): i for i, v in enumerate(nodes.tolist())}
    rows, cols = [], []
    for i, v in enumerate(nodes.tolist()):
        nb = indices[indptr[v]:indptr[v + 1]]
        for w in nb.tolist():
            j = local.get(w)
            if j is not None:
                rows.append(i)
                cols.append(j)
    if not rows:
        return np.zeros((2, 0), dtype=np.int64)
    ei = np.asarray([rows, cols], dtype=np.int64)
    return ei[:, np.lexsort((ei[1], ei[0]))]


# --------------------------------------------------------------------------- features

def normalized_adjacency(edge_index: np.ndarray, n: int) -> np.ndarray:
    """Dense D^-1/2 A D^-1/2 (n x n float64; degrees below 1 count as 1, so isolated nodes give zero rows)."""
    a = np.zeros((n, n), dtype=np.float64)
    if edge_index.shape[1]:
        a[edge_index[0], edge_index[1]] = 1.0
    d = np.clip(a.sum(axis=1), 1.0, None) ** -0.5
    return d[:, None] * a * d[None, :]


def positional_encoding(edge_index: np.ndarray, n: int, pos_dim: int) -> np.ndarray:
    """GCC's generalised positional embedding: n x pos_dim float32 (see the module docstring): the
    eigenvectors of the k = min(n, pos_dim) largest eigenvalues of D^-1/2 A D^-1/2, in decreasing order, each
    with its largest-magnitude entry positive, rows L2-normalised, zero columns after the k-th."""
    out = np.zeros((n, pos_dim), dtype=np.float32)
    k = min(n, pos_dim)
    if k <= 0:
        return out
    if n <= DENSE_MAX:
        _, vecs = np.linalg.eigh(normalized_adjacency(edge_index, n))
        u = vecs[:, ::-1][:, :k]
    else:
        u = _top_eigenvectors_sparse(edge_index, n, k)
    idx = np.abs(u).argmax(axis=0)
    u = u * np.sign(u[idx, np.arange(k)])[None, :]
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    u = np.divide(u, norms, out=np.zeros_like(u), where=norms > 0)
    out[:, :k] = u
    return out


def _top_eigenvectors_sparse(edge_index: np.ndarray, n: int, k: int) -> np.ndarray:
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    a = sp.csr_matrix((np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(n, n))
    d = sp.diags(np.clip(np.asarray(a.sum(axis=1)).ravel(), 1.0, None) ** -0.5)
    v0 = np.random.default_rng(0).random(n)
    vals, vecs = eigsh(d @ a @ d, k=k, which="LA", v0=v0, ncv=min(n, max(2 * k + 1, 20)))
    return vecs[:, np.argsort(-vals, kind="stable")]


def featurize(edge_index: np.ndarray, n: int, ego: int, spec: GraphFeatures,
              node_x: np.ndarray | None = None) -> torch.Tensor:
    """Node features of a (sub)graph: n x spec.dim float32 = [positional embedding | degree one-hot | ego
    indicator | the data set's node features (rows of ``node_x``, n x spec.node_dim)]."""
    parts = [positional_encoding(edge_index, n, spec.pos_dim)]
    if spec.degree_dim:
        deg = np.bincount(edge_index[0], minlength=n).clip(max=spec.max_degree)
        onehot = np.zeros((n, spec.degree_dim), dtype=np.float32)
        onehot[np.arange(n), deg] = 1.0
        parts.append(onehot)
    flag = np.zeros((n, 1), dtype=np.float32)
    flag[ego] = 1.0
    parts.append(flag)
    if spec.node_dim:
        if node_x is None:
            raise ConfigError("node features were asked for (dataset.options.node_features) but a graph has none")
        parts.append(np.asarray(node_x, dtype=np.float32).reshape(n, spec.node_dim))
    return torch.from_numpy(np.concatenate(parts, axis=1))


# --------------------------------------------------------------------------- batches

@dataclass
class GraphBatch:
    """B graphs as one disjoint union: x N x F float32, edge_index 2 x E int64 (global node ids), batch N int64
    (the graph of each node, 0..B - 1, non-decreasing), num_graphs B."""

    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    def to(self, device: Any) -> GraphBatch:
        return GraphBatch(self.x.to(device), self.edge_index.to(device), self.batch.to(device), self.num_graphs)

    def __len__(self) -> int:
        return self.num_graphs

    @staticmethod
    def collate(graphs: list[tuple[torch.Tensor, np.ndarray | torch.Tensor]]) -> GraphBatch:
        """[(x n_i x F, edge_index 2 x E_i local ids), ...] -> one GraphBatch, node ids offset per graph."""
        xs, eis, batch, offset = [], [], [], 0
        for b, (x, ei) in enumerate(graphs):
            xs.append(x)
            eis.append(torch.as_tensor(ei, dtype=torch.int64) + offset)
            batch.append(torch.full((x.shape[0],), b, dtype=torch.int64))
            offset += x.shape[0]
        return GraphBatch(torch.cat(xs), torch.cat(eis, dim=1), torch.cat(batch), len(graphs))


__all__ = ["GraphsViewConfig", "GraphFeatures", "GraphBatch", "check_graphs_views", "choose_start", "rwr_nodes",
           "induced_subgraph", "normalized_adjacency", "positional_encoding", "featurize", "DENSE_MAX"]
