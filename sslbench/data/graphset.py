"""Graph classification sets in the TU Dortmund format (TUDataset, Morris et al. 2020), one sample = one graph.

Layout under the data root (torch_geometric's ``TUDataset(root=<root>/graph/TUDataset, name=NAME)`` layout)::

    graph/TUDataset/<NAME>/raw/<NAME>_A.txt                 "i, j" per line: an edge between nodes i and j
                                                            (1-based, numbered across all graphs)
                               <NAME>_graph_indicator.txt   the graph (1-based) of node i on line i
                               <NAME>_graph_labels.txt      the label of graph g on line g
                               <NAME>_node_labels.txt       optional: node i's label(s), one column per kind
                               <NAME>_node_attributes.txt   optional: node i's attributes, comma separated

The files are parsed in memory (nothing is written to the data root) as torch_geometric's ``read_tu_data``
reads them: node ids minus one, self-loops removed, duplicate edges merged, graph labels mapped to 0..C-1 in
sorted order, node labels one-hot per column after subtracting the column's minimum, node attributes first.
Graphs are undirected here: every edge is kept in both directions (what GCC's random walks and Laplacians
need). Each graph is a :class:`Graph` (CSR adjacency over its own nodes 0..n-1). Every file is checked (numbers,
columns, rows against the node and graph counts, edges within one graph, node ids in range, graphs numbered
contiguously); a bad file is one :class:`~sslbench.data.base.DataFileError` line naming it. ``--download``
fetches the raw zip from torch_geometric's ``TUDataset.url`` into that folder (raw files only).

Splits ``train``, ``test`` and ``all`` (dataset options):

- default: a seeded class-stratified hold-out of ``test_fraction`` (0.2) of the graphs (``split_seed`` 0);
- ``fold: k`` (with ``folds``, 10): fold k of a seeded stratified k-fold split (sklearn's ``StratifiedKFold``
  with shuffling, GCC's and InfoGraph's evaluation): fold k is ``test``, the others ``train``.

Node features are computed by the views (:mod:`sslbench.views.graphs`): ``pos_dim`` (32, GCC's
positional-embedding size), ``max_degree`` (64; 0: no degree one-hot) and ``node_features`` (false: GCC is
structure-only; true appends the files' node labels / attributes). ``DataInfo.num_features`` is their total
width, what the encoder is built for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from ..views.graphs import GraphFeatures
from .base import DataFileError, DataInfo, Split, one_line, stratified_split
from .fingerprint import files_fingerprint

SPLITS = ("train", "test", "all")
REQUIRED = ("A", "graph_indicator", "graph_labels")
OPTIONAL = ("node_labels", "node_attributes")
OPTIONS = ("test_fraction", "split_seed", "folds", "fold", "pos_dim", "max_degree", "node_features")

# registered names -> the TUDataset name (its folder and file prefix); GCC's graph classification sets first
KNOWN_SETS = {
    "imdb-binary": "IMDB-BINARY", "imdb-multi": "IMDB-MULTI", "collab": "COLLAB",
    "reddit-binary": "REDDIT-BINARY", "reddit-multi-5k": "REDDIT-MULTI-5K",
    "proteins": "PROTEINS", "mutag": "MUTAG", "nci1": "NCI1", "dd": "DD",
}


@dataclass(eq=False)
class Graph:
    """One undirected graph: CSR adjacency over nodes 0..n-1 (``indptr`` int64 n + 1, ``indices`` int64 E, both
    directions of every edge, neighbours sorted, no self-loops, no duplicates) and optional node features
    ``x`` (n x F float32, from the files)."""

    indptr: np.ndarray
    indices: np.ndarray
    x: np.ndarray | None = None

    @property
    def num_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def edge_index(self) -> np.ndarray:
        """2 x E int64 (row, col), sorted by row then col."""
        rows = np.repeat(np.arange(self.num_nodes, dtype=np.int64), self.degrees)
        return np.stack([rows, self.indices])

    @staticmethod
    def from_edges(edge_index: np.ndarray, num_nodes: int, x: np.ndarray | None = None) -> Graph:
        """A graph from any 2 x E edge list over 0..num_nodes-1: symmetrised, self-loops and duplicates dropped."""
        ei = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
        ei = ei[:, ei[0] != ei[1]]
        keys = np.unique(np.concatenate([ei[0] * num_nodes + ei[1], ei[1] * num_nodes + ei[0]]))
        rows, cols = keys // max(num_nodes, 1), keys % max(num_nodes, 1)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_nodes))]).astype(np.int64)
        return Graph(indptr, cols.astype(np.int64), x)


# --------------------------------------------------------------------------- reading the files

def raw_folder(root: Path, name: str) -> Path:
    return Path(root) / "graph" / "TUDataset" / name / "raw"


def _read_table(path: Path, dtype: Any) -> np.ndarray:
    """A comma-separated numeric text file -> rows x columns (at least 2-D); one line naming the file otherwise."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (does not fail) on an empty file
            table = np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2, comments=None)
    except OSError as err:
        raise DataFileError(f"Cannot read {path}: {one_line(err)}") from err
    except (ValueError, UserWarning) as err:
        raise DataFileError(f"{path} is not a table of {np.dtype(dtype).name} numbers, comma separated, one row a "
                            f"line: {one_line(err)}") from err
    if table.size == 0:
        raise DataFileError(f"{path} is empty")
    return table


def _column(path: Path, table: np.ndarray, what: str) -> np.ndarray:
    if table.shape[1] != 1:
        raise DataFileError(f"{path} has {table.shape[1]} columns; expected one {what} per line")
    return table[:, 0]


def read_tu(folder: Path, name: str, node_features: bool = False) -> tuple[list[Graph], np.ndarray, list[str]]:
    """Parse and check one TUDataset folder: (graphs, labels int64 G in 0..C-1, class names)."""
    path = {part: folder / f"{name}_{part}.txt" for part in (*REQUIRED, *OPTIONAL)}
    indicator = _column(path["graph_indicator"], _read_table(path["graph_indicator"], np.int64), "graph id")
    n = len(indicator)
    if indicator.min() < 1 or np.any(np.diff(indicator) < 0):
        bad = int(np.flatnonzero(np.diff(indicator) < 0)[0]) + 2 if indicator.min() >= 1 else \
            int(np.flatnonzero(indicator < 1)[0]) + 1
        raise DataFileError(f"{path['graph_indicator']} line {bad}: graph ids must start at 1 and never decrease "
                            "(the nodes of each graph numbered together)")
    num_graphs = int(indicator[-1])
    sizes = np.bincount(indicator - 1, minlength=num_graphs)
    if np.any(sizes == 0):
        raise DataFileError(f"{path['graph_indicator']}: graph {int(np.flatnonzero(sizes == 0)[0]) + 1} has no "
                            f"nodes (graph ids must run 1..{num_graphs} without gaps)")

    labels_raw = _column(path["graph_labels"], _read_table(path["graph_labels"], np.int64), "graph label")
    if len(labels_raw) != num_graphs:
        raise DataFileError(f"{path['graph_labels']} has {len(labels_raw)} lines but "
                            f"{path['graph_indicator'].name} numbers {num_graphs} graphs")
    values, labels = np.unique(labels_raw, return_inverse=True)
    if len(values) < 2:
        raise DataFileError(f"{path['graph_labels']} holds one label ({values[0]}) only; graph classification "
                            "needs two classes or more")

    edges = _read_table(path["A"], np.int64)
    if edges.shape[1] != 2:
        raise DataFileError(f"{path['A']} has {edges.shape[1]} columns; expected 'i, j' (two node ids) per line")
    out_of_range = np.flatnonzero((edges < 1).any(axis=1) | (edges > n).any(axis=1))
    if len(out_of_range):
        i = int(out_of_range[0])
        raise DataFileError(f"{path['A']} line {i + 1}: edge {edges[i, 0]}, {edges[i, 1]} names a node outside "
                            f"1..{n} (the {n} nodes of {path['graph_indicator'].name})")
    ei = edges.T - 1
    across = np.flatnonzero(indicator[ei[0]] != indicator[ei[1]])
    if len(across):
        i = int(across[0])
        raise DataFileError(f"{path['A']} line {i + 1}: edge {edges[i, 0]}, {edges[i, 1]} joins graph "
                            f"{indicator[ei[0, i]]} to graph {indicator[ei[1, i]]}")

    x = _node_features(path, n) if node_features else None
    starts = np.concatenate([[0], np.cumsum(sizes)])
    graphs = _split_graphs(ei, indicator - 1, starts, x)
    classes = [str(v) for v in values.tolist()]
    return graphs, labels.astype(np.int64), classes


def _node_features(path: dict[str, Path], n: int) -> np.ndarray:
    """torch_geometric's node features: [attributes | one-hot of each label column minus its minimum]."""
    parts = []
    for part in ("node_attributes", "node_labels"):
        if not path[part].is_file():
            continue
        table = _read_table(path[part], np.float32 if part == "node_attributes" else np.int64)
        if len(table) != n:
            raise DataFileError(f"{path[part]} has {len(table)} lines but there are {n} nodes")
        if part == "node_labels":
            table = table - table.min(axis=0, keepdims=True)
            for c in range(table.shape[1]):
                onehot = np.zeros((n, int(table[:, c].max()) + 1), dtype=np.float32)
                onehot[np.arange(n), table[:, c]] = 1.0
                parts.append(onehot)
        else:
            parts.append(table)
    if not parts:
        raise ConfigError(f"Bad value for 'dataset.options.node_features': true, but {path['node_labels'].parent} "
                          f"has neither {path['node_labels'].name} nor {path['node_attributes'].name}")
    return np.concatenate(parts, axis=1).astype(np.float32)


def _split_graphs(ei: np.ndarray, graph_of: np.ndarray, starts: np.ndarray, x: np.ndarray | None) -> list[Graph]:
    """Global 0-based edges -> one :class:`Graph` per graph over its local node ids."""
    n = int(starts[-1])
    ei = ei[:, ei[0] != ei[1]]
    keys = np.unique(np.concatenate([ei[0] * n + ei[1], ei[1] * n + ei[0]]))  # symmetric, deduplicated, sorted
    rows, cols = keys // n, keys % n
    edge_graph = graph_of[rows]
    edge_starts = np.searchsorted(edge_graph, np.arange(len(starts)))
    degree = np.bincount(rows, minlength=n)
    graphs = []
    for g in range(len(starts) - 1):
        lo, hi = int(starts[g]), int(starts[g + 1])
        indptr = np.concatenate([[0], np.cumsum(degree[lo:hi])]).astype(np.int64)
        indices = (cols[edge_starts[g]:edge_starts[g + 1]] - lo).astype(np.int64)
        graphs.append(Graph(indptr, indices, None if x is None else x[lo:hi]))
    return graphs


def _download(root: Path, name: str) -> None:
    """torch_geometric's TUDataset zip, extracted under a temporary name beside the target, then renamed into
    ``<root>/graph/TUDataset/<NAME>/raw`` (a cut download leaves no raw folder)."""
    from torch_geometric.data import download_url, extract_zip
    from torch_geometric.datasets import TUDataset

    base = Path(root) / "graph" / "TUDataset"
    dest = raw_folder(root, name)
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
        try:
            archive = download_url(f"{TUDataset.url}/{name}.zip", str(tmp), log=False)
            extract_zip(archive, str(tmp), log=False)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp / name, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception as e:  # noqa: BLE001 - any network or disk failure becomes one clear line
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataNotFoundError(f"Could not download {name} into {dest}: {type(e).__name__}: {detail}") from e


# --------------------------------------------------------------------------- splits and the loader

def stratified_folds(labels: np.ndarray, folds: int, fold: int, seed: int) -> dict[str, np.ndarray]:
    """Fold ``fold`` of a seeded stratified k-fold split as test, the rest as train (sorted indices)."""
    from sklearn.model_selection import StratifiedKFold

    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(f"Bad value for 'dataset.options.folds': {folds!r}; must be an integer >= 2")
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < folds:
        raise ConfigError(f"Bad value for 'dataset.options.fold': {fold!r}; must be an integer in 0..{folds - 1}")
    smallest = int(np.bincount(labels).min())
    if smallest < folds:
        raise ConfigError(f"Bad value for 'dataset.options.folds': {folds}; the smallest class has {smallest} graphs, "
                          f"fewer than the folds")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
    train, test = list(skf.split(np.zeros(len(labels)), labels))[fold]
    return {"train": np.sort(train), "test": np.sort(test), "all": np.arange(len(labels))}


def load_tudataset(root: Path, splits: list[str], download: bool = False, set: str | None = None,
                   test_fraction: float = 0.2, split_seed: int = 0, folds: int = 10, fold: int | None = None,
                   pos_dim: int = 32, max_degree: int = 64, node_features: bool = False,
                   ) -> tuple[DataInfo, dict[str, Split]]:
    """Load one TUDataset graph set (see the module docstring): splits of graphs, labels = graph labels."""
    if not set or not isinstance(set, str) or "/" in set or set.startswith("."):
        raise ConfigError(f"Bad value for 'dataset.options.set': {set!r}; give the TUDataset name, e.g. "
                          "IMDB-BINARY (its folder under <data root>/graph/TUDataset/)")
    for s in splits:
        if s not in SPLITS:
            raise ConfigError(f"Unknown split '{s}' for dataset '{set}'. Valid: {', '.join(SPLITS)}")
    for key, value in (("pos_dim", pos_dim), ("max_degree", max_degree)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "pos_dim" else 0):
            raise ConfigError(f"Bad value for 'dataset.options.{key}': {value!r}; must be an integer >= "
                              f"{1 if key == 'pos_dim' else 0}")
    folder = raw_folder(root, set)
    files = [folder / f"{set}_{part}.txt" for part in REQUIRED]
    missing = [f for f in files if not f.is_file()]
    if missing and download:
        _download(root, set)
        missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataNotFoundError(
            f"{set} not found: {missing[0]} is missing. Put the TUDataset files {set}_A.txt, "
            f"{set}_graph_indicator.txt and {set}_graph_labels.txt in {folder}, or run with --download")
    graphs, labels, classes = read_tu(folder, set, bool(node_features))
    node_dim = 0 if graphs[0].x is None else int(graphs[0].x.shape[1])
    spec = GraphFeatures(pos_dim=pos_dim, max_degree=max_degree, node_dim=node_dim)
    if fold is None:
        idx = stratified_split(labels, float(test_fraction), int(split_seed))
    else:
        idx = stratified_folds(labels, folds, fold, int(split_seed))
    read = [f for f in (folder / f"{set}_{p}.txt" for p in (*REQUIRED, *OPTIONAL)) if f.is_file()]
    info = DataInfo(name=set, modality="graphs", num_classes=len(classes), classes=classes, channels=spec.dim,
                    num_features=spec.dim, fingerprint=files_fingerprint(read), source=str(folder))
    y = torch.from_numpy(labels)
    out = {}
    for s in splits:
        rows = idx[s]
        out[s] = Split(labels=y[torch.from_numpy(rows)], samples=[graphs[i] for i in rows.tolist()],
                       extra={"features": spec})
    return info, out


def _loader(tu_name: str | None):
    def load(root: Path, splits: list[str], download: bool = False, **options: Any):
        valid = OPTIONS if tu_name else ("set", *OPTIONS)
        for key in options:
            if key not in valid:
                raise ConfigError(f"Unknown dataset option '{key}' for {tu_name or 'tudataset'}. "
                                  f"Valid: {', '.join(valid)}")
        if tu_name:
            options["set"] = tu_name
        return load_tudataset(Path(root), splits, download, **options)

    load.__doc__ = (f"{tu_name} (TUDataset graph classification): one sample per graph, splits train/test/all."
                    if tu_name else "Any TUDataset-format graph set (options: set: NAME): one sample per graph.")
    return load


register_dataset("tudataset", "graphs")(_loader(None))
for _name, _tu in KNOWN_SETS.items():
    register_dataset(_name, "graphs")(_loader(_tu))

__all__ = ["Graph", "read_tu", "load_tudataset", "stratified_folds", "raw_folder", "KNOWN_SETS"]
