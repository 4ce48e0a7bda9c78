"""Node-classification graphs through torch_geometric, read offline from the data root.

One transductive graph per data set. Every split is a :class:`~sslbench.data.base.Split`
over the same graph: ``graph`` is the whole graph (``x`` N x F float, ``edge_index``
2 x E int64, ``y`` N) and ``nodes`` the int64 indices of the split's nodes; ``labels``
are ``y[nodes]``. Methods pretrain on the whole graph without labels; protocols train
on the ``train`` nodes and score on the ``test`` nodes. Split names: ``train``, ``val``,
``test`` and ``all``.

Layout under the data root (what torch_geometric downloads)::

    graph/planetoid/{Cora,CiteSeer,PubMed}/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}
    graph/amazon/{Computers,Photo}/raw/amazon_electronics_<name>.npz
    graph/coauthor/{CS,Physics}/raw/ms_academic_{cs,phy}.npz

The raw files are parsed in memory (``torch_geometric.io``); nothing is written to the
data root, which may be read-only. ``download=True`` fetches missing files with
torch_geometric's own downloaders.

Splits (dataset option ``split``):

- ``public`` (Planetoid only, the default there): Yang et al. 2016's fixed split,
  20 labelled nodes per class (Cora 140, CiteSeer 120, PubMed 60), 500 validation,
  1000 test nodes. DGI (Velickovic et al. 2019) evaluates on it.
- ``random`` (the default elsewhere): a seeded random permutation of all nodes,
  ``train_fraction`` (0.1) train, ``val_fraction`` (0.1) validation, the rest (0.8) test,
  as GRACE (Zhu et al. 2020, Sec. 4.1) and PyGCL do. ``split_seed`` (0) fixes it, so every
  method and run sees the same nodes. A number is only comparable on its own split.

Features are row-normalised (``normalize_features: true``, torch_geometric's
``NormalizeFeatures``), as DGI's and GRACE's official code do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from .base import DataInfo, Split
from .fingerprint import files_fingerprint

GRAPH_SPLITS = ("train", "val", "test", "all")
SPLIT_KINDS = ("public", "random")


@dataclass(frozen=True)
class GraphSpec:
    """Where one torch_geometric data set lives under ``<root>/graph`` and how to read it."""

    title: str
    family: str  # planetoid | amazon | coauthor
    folder: str  # torch_geometric's name, e.g. "Cora"
    raw_files: tuple[str, ...]
    has_public_split: bool = False


def _planetoid(title: str, folder: str, prefix: str) -> GraphSpec:
    parts = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    return GraphSpec(title, "planetoid", folder, tuple(f"ind.{prefix}.{p}" for p in parts), has_public_split=True)


GRAPH_SPECS: dict[str, GraphSpec] = {
    "cora": _planetoid("Cora", "Cora", "cora"),
    "citeseer": _planetoid("CiteSeer", "CiteSeer", "citeseer"),
    "pubmed": _planetoid("PubMed", "PubMed", "pubmed"),
    "amazon-computers": GraphSpec("Amazon Computers", "amazon", "Computers", ("amazon_electronics_computers.npz",)),
    "amazon-photo": GraphSpec("Amazon Photo", "amazon", "Photo", ("amazon_electronics_photo.npz",)),
    "coauthor-cs": GraphSpec("Coauthor CS", "coauthor", "CS", ("ms_academic_cs.npz",)),
    "coauthor-physics": GraphSpec("Coauthor Physics", "coauthor", "Physics", ("ms_academic_phy.npz",)),
}


def raw_dir(root: Path, spec: GraphSpec) -> Path:
    return Path(root) / "graph" / spec.family / spec.folder / "raw"


def _download(root: Path, spec: GraphSpec) -> None:
    """Fetch the raw files with torch_geometric's dataset classes (they also write a processed/ copy)."""
    from torch_geometric import datasets as pyg

    base = Path(root) / "graph" / spec.family
    try:
        if spec.family == "planetoid":
            pyg.Planetoid(str(base), spec.folder)
        elif spec.family == "amazon":
            pyg.Amazon(str(base), spec.folder)
        else:
            pyg.Coauthor(str(base), spec.folder)
    except Exception as e:  # noqa: BLE001 - any network or disk failure becomes one clear line
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataNotFoundError(f"Could not download {spec.title} into {base}: {type(e).__name__}: {detail}") from e


def _read(folder: Path, spec: GraphSpec):
    from torch_geometric import io

    if spec.family == "planetoid":
        return io.read_planetoid_data(str(folder), spec.raw_files[0].split(".")[1])
    return io.read_npz(str(folder / spec.raw_files[0]), to_undirected=True)


def random_split(num_nodes: int, train_fraction: float, val_fraction: float, seed: int
                 ) -> dict[str, torch.Tensor]:
    """A seeded random split of all nodes: the first round(train_fraction N) of a permutation are train,
    the next round(val_fraction N) validation, the rest test (GRACE's 10/10/80 by default)."""
    if not (0 < train_fraction < 1 and 0 <= val_fraction < 1 and train_fraction + val_fraction < 1):
        raise ConfigError(f"Bad random split: train_fraction={train_fraction}, val_fraction={val_fraction}; "
                          "both in [0, 1) with train_fraction > 0 and a sum below 1")
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(int(seed)))
    n_train, n_val = round(train_fraction * num_nodes), round(val_fraction * num_nodes)
    return {"train": perm[:n_train].sort().values, "val": perm[n_train:n_train + n_val].sort().values,
            "test": perm[n_train + n_val:].sort().values}


def load_graph(
    name: str,
    root: Path,
    splits: list[str],
    download: bool = False,
    split: str | None = None,
    train_fraction: float = 0.1,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    normalize_features: bool = True,
) -> tuple[DataInfo, dict[str, Split]]:
    """Load one graph and the requested splits of its nodes (see the module docstring)."""
    spec = GRAPH_SPECS[name]
    for s in splits:
        if s not in GRAPH_SPLITS:
            raise ConfigError(f"Unknown split '{s}' for dataset '{name}'. Valid: {', '.join(GRAPH_SPLITS)}")
    kind = split or ("public" if spec.has_public_split else "random")
    if kind not in SPLIT_KINDS or (kind == "public" and not spec.has_public_split):
        valid = SPLIT_KINDS if spec.has_public_split else ("random",)
        raise ConfigError(f"Bad value for 'dataset.options.split': {kind!r} for {name}. Valid: {', '.join(valid)}")
    folder = raw_dir(root, spec)
    missing = [f for f in spec.raw_files if not (folder / f).is_file()]
    if missing and download:
        _download(root, spec)
        missing = [f for f in spec.raw_files if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{spec.title} not found: {folder / missing[0]} is missing. Put torch_geometric's raw files in {folder} "
            "or run with --download")
    data = _read(folder, spec)
    x = data.x.float()
    if normalize_features:
        x = x / x.sum(dim=1, keepdim=True).clamp_min(1.0)  # NormalizeFeatures: rows sum to 1 (zero rows stay 0)
    y = data.y.long().view(-1)
    n = int(x.shape[0])
    if kind == "public":
        nodes = {s: getattr(data, f"{s}_mask").nonzero().view(-1) for s in ("train", "val", "test")}
    else:
        nodes = random_split(n, float(train_fraction), float(val_fraction), int(split_seed))
    nodes["all"] = torch.arange(n)
    from torch_geometric.data import Data

    graph = Data(x=x, edge_index=data.edge_index.long(), y=y)
    num_classes = int(y.max()) + 1
    info = DataInfo(
        name=name, modality="graph", num_classes=num_classes, classes=[f"class {c}" for c in range(num_classes)],
        channels=int(x.shape[1]), num_features=int(x.shape[1]), num_nodes=n,
        fingerprint=files_fingerprint(folder / f for f in spec.raw_files),
        source=str(folder),
    )
    out = {s: Split(labels=y[nodes[s]], graph=graph, nodes=nodes[s], extra={"split": kind}) for s in splits}
    return info, out


def _loader(name: str):
    def load(root: Path, splits: list[str], download: bool = False, **options: Any):
        valid = ("split", "train_fraction", "val_fraction", "split_seed", "normalize_features")
        for key in options:
            if key not in valid:
                raise ConfigError(f"Unknown dataset option '{key}' for {name}. Valid: {', '.join(valid)}")
        return load_graph(name, Path(root), splits, download, **options)

    load.__doc__ = f"{GRAPH_SPECS[name].title} (torch_geometric): one graph, node splits {', '.join(GRAPH_SPLITS)}."
    return load


for _name in GRAPH_SPECS:
    register_dataset(_name, "graph")(_loader(_name))

__all__ = ["GRAPH_SPECS", "load_graph", "random_split"]
