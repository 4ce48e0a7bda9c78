"""k-means in torch, for the clustering methods (DeepCluster, Local Aggregation) that cluster a memory bank.

Lloyd's algorithm (assign each point to its nearest centroid, move each centroid to its points' mean),
vectorised: the N x k scores are computed in row chunks of at most ``chunk_elems`` entries, centroids are
updated with one ``index_add_`` and one ``bincount``; there is no Python loop over points (only over the k
initial centroids of k-means++ and over the empty clusters, which are few).

- ``metric="euclidean"``: squared L2 distance (faiss' ``Clustering`` + ``IndexFlatL2``, what the official
  DeepCluster and Local Aggregation code run on their l2-normalised features).
- ``metric="cosine"``: spherical k-means: points and centroids l2-normalised, nearest = highest cosine.
- ``init="random"``: k distinct points drawn uniformly (faiss' default); ``"k-means++"``: D^2 sampling
  (Arthur & Vassilvitskii 2007); or a k x D tensor of initial centroids.
- Empty clusters (DeepCluster, Caron et al. 2018, arXiv 1807.05520, Sec. 3.2 "Empty clusters"): a random
  non-empty cluster (one with at least 2 points) is picked, the empty one gets its centroid plus a small random
  perturbation (the picked one minus the same), and the picked cluster's points are re-split between the two
  by distance. If that re-split leaves one side empty (duplicate points: the geometry cannot split them) its
  points are split in two random halves instead, so no cluster is ever returned empty when N >= k.

Every random draw comes from the ``generator`` (a CPU ``torch.Generator``), so a seeded call is
deterministic on a given device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

METRICS = ("euclidean", "cosine")
INITS = ("random", "k-means++")


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # k x D, the means of the returned assignment (unit rows for cosine)
    assign: torch.Tensor  # int64 N, cluster of each point in [0, k)
    inertia: float  # sum over points of the squared distance (cosine: 1 - cos) to the centroid it was assigned
    splits: int  # empty clusters re-filled by splitting a non-empty one, over all iterations


def _nearest(x: torch.Tensor, c: torch.Tensor, metric: str, chunk_elems: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N x D points, k x D centroids -> (int64 N nearest centroid, N distances: squared L2 or 1 - cos)."""
    rows = max(1, chunk_elems // max(1, c.shape[0]))
    c_sq = (c * c).sum(1)
    idx, dist = [], []
    for xs in x.split(rows):
        if metric == "cosine":
            best, j = (xs @ c.T).max(1)
            d = 1 - best
        else:  # argmin ||x - c||^2 = argmax 2 x.c - ||c||^2
            best, j = (2 * xs @ c.T - c_sq).max(1)
            d = ((xs * xs).sum(1) - best).clamp_min(0)
        idx.append(j)
        dist.append(d)
    return torch.cat(idx), torch.cat(dist)


def _means(x: torch.Tensor, assign: torch.Tensor, old: torch.Tensor, metric: str) -> torch.Tensor:
    """The mean of each cluster's points (k x D); an empty cluster keeps its old centroid."""
    k = old.shape[0]
    sums = torch.zeros_like(old).index_add_(0, assign, x)
    counts = torch.bincount(assign, minlength=k).to(x.dtype)
    c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], old)
    return F.normalize(c, dim=1) if metric == "cosine" else c


def _init(x: torch.Tensor, k: int, init: str, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if init == "random":
        return x[torch.randperm(n, generator=g)[:k].to(x.device)].clone()
    # k-means++: each next centroid drawn with probability proportional to its squared distance to the nearest one
    first = int(torch.randint(0, n, (1,), generator=g))
    chosen = [first]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(k - 1):
        w = d2.double().cpu()
        if float(w.sum()) <= 0:  # every point sits on a centroid already (duplicates): uniform
            w = torch.ones(n, dtype=torch.float64)
        j = int(torch.multinomial(w, 1, generator=g))
        chosen.append(j)
        d2 = torch.minimum(d2, ((x - x[j]) ** 2).sum(1))
    return x[torch.tensor(chosen, device=x.device)].clone()


def _split_empty(x: torch.Tensor, assign: torch.Tensor, c: torch.Tensor, metric: str, g: torch.Generator,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """DeepCluster's re-assignment of empty clusters (see the module docstring); returns (assign, centroids,
    number of splits). Needs N >= k (then some cluster has 2 points whenever one is empty)."""
    k = c.shape[0]
    counts = torch.bincount(assign, minlength=k)
    empty = (counts == 0).nonzero().flatten().tolist()
    if not empty:
        return assign, c, 0
    assign, c = assign.clone(), c.clone()
    for j in empty:
        donors = (counts >= 2).nonzero().flatten()
        m = int(donors[int(torch.randint(0, len(donors), (1,), generator=g))])
        members = (assign == m).nonzero().flatten()
        noise = torch.randn(c.shape[1], generator=g, dtype=c.dtype).to(c.device)
        delta = eps * c[m].norm().clamp_min(1e-12) * F.normalize(noise, dim=0)
        pair = torch.stack([c[m] + delta, c[m] - delta])  # row 0: the empty cluster j, row 1: the donor m
        if metric == "cosine":
            pair = F.normalize(pair, dim=1)
        side, _ = _nearest(x[members], pair, metric, 1 << 22)
        if side.min() == side.max():  # the geometry cannot split these points: two random halves
            side = torch.zeros_like(side)
            side[torch.randperm(len(members), generator=g)[: len(members) // 2].to(side.device)] = 1
        to_j = members[side == 0]
        assign[to_j] = j
        counts[j], counts[m] = len(to_j), counts[m] - len(to_j)
        c[j], c[m] = x[to_j].mean(0), x[assign == m].mean(0)
        if metric == "cosine":
            c[j], c[m] = F.normalize(c[j], dim=0), F.normalize(c[m], dim=0)
    return assign, c, len(empty)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 20, metric: str = "euclidean", init: str | torch.Tensor = "random",
           generator: torch.Generator | None = None, split_empty: bool = True, eps: float = 1e-3,
           chunk_elems: int = 1 << 24) -> KMeansResult:
    """Cluster the rows of x (N x D) into k clusters with ``iters`` Lloyd iterations (see the module docstring).

    With ``split_empty`` (DeepCluster's rule) no returned cluster is empty; without it empty clusters keep
    their centroid and stay empty. ``chunk_elems`` bounds the N x k score block held at once.
    """
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"kmeans: x must be N x D with N >= 1, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k must be in [1, {n}] (the number of points), got {k}")
    if metric not in METRICS:
        raise ValueError(f"kmeans: metric must be one of {METRICS}, got {metric!r}")
    if iters < 0:
        raise ValueError(f"kmeans: iters must be >= 0, got {iters}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = x.detach().float()
    if metric == "cosine":
        x = F.normalize(x, dim=1)
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (k, x.shape[1]):
            raise ValueError(f"kmeans: init centroids must be {k} x {x.shape[1]}, got {tuple(init.shape)}")
        c = init.detach().to(x).clone()
    elif init in INITS:
        c = _init(x, k, init, g)
    else:
        raise ValueError(f"kmeans: init must be one of {INITS} or a k x D tensor, got {init!r}")
    if metric == "cosine":
        c = F.normalize(c, dim=1)
    splits = 0
    for _ in range(iters):
        assign, _ = _nearest(x, c, metric, chunk_elems)
        if split_empty:
            assign, c, s = _split_empty(x, assign, c, metric, g, eps)
            splits += s
        c = _means(x, assign, c, metric)
    assign, dist = _nearest(x, c, metric, chunk_elems)
    if split_empty:
        assign, c, s = _split_empty(x, assign, c, metric, g, eps)
        splits += s
    c = _means(x, assign, c, metric)
    if metric == "cosine":
        inertia = float((1 - (x * c[assign]).sum(1)).sum())
    else:
        inertia = float(((x - c[assign]) ** 2).sum())
    return KMeansResult(centroids=c, assign=assign, inertia=inertia, splits=splits)


@torch.no_grad()
def pca_whiten(x: torch.Tensor, dim: int, eps: float = 1e-5) -> torch.Tensor:
    """PCA-whitening (DeepCluster Sec. 3.2: features PCA-reduced to 256 dims, whitened, then l2-normalised):
    N x D -> N x dim, centred, projected on the top ``dim`` principal axes, each scaled to unit variance."""
    n, d = x.shape
    if not 1 <= dim <= min(n, d):
        raise ValueError(f"pca_whiten: dim must be in [1, {min(n, d)}] (min of points and features), got {dim}")
    xc = x.double() - x.double().mean(0)
    cov = xc.T @ xc / max(1, n - 1)
    vals, vecs = torch.linalg.eigh(cov)  # ascending
    vals, vecs = vals.flip(0)[:dim], vecs.flip(1)[:, :dim]
    return (xc @ vecs / (vals.clamp_min(0) + eps).sqrt()).to(x.dtype)
