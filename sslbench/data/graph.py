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

The raw files are parsed in memory; nothing is written to the data root, which may be
read-only. ``download=True`` fetches missing files with torch_geometric's own downloaders.

Planetoid's ``ind.*`` files are Python 2 pickles, and unpickling runs whatever a file names.
They are read here (not by ``torch_geometric.io.read_planetoid_data``) with a restricted
unpickler that resolves only the types the real files hold: numpy arrays and dtypes, scipy's
CSR matrix, and the ``defaultdict`` of lists that is the adjacency. A file naming anything else
is refused with one line naming it, before any of it is built. The arrays are then combined
exactly as torch_geometric does (the same tensors, bit for bit), after checking that the files
agree: feature rows against label rows, feature and label widths, test indices and adjacency
node ids within the graph. Amazon / Coauthor npz files are read with ``allow_pickle`` off and
checked the same way. Any damaged file raises :class:`~sslbench.data.base.DataFileError`.

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

import collections
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ConfigError, DataNotFoundError
from ..plugins import register_dataset
from .base import DataFileError, DataInfo, Split, one_line, open_npz
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
    """Fetch the raw files: Planetoid's missing ``ind.*`` files one by one from torch_geometric's source URL
    (not through its ``Planetoid`` class, whose processing would unpickle them unrestricted), Amazon and
    Coauthor through torch_geometric's classes (npz files; they also write a processed/ copy)."""
    from torch_geometric import datasets as pyg
    from torch_geometric.data import download_url

    base = Path(root) / "graph" / spec.family
    try:
        if spec.family == "planetoid":
            folder = raw_dir(root, spec)
            for name in spec.raw_files:
                if not (folder / name).is_file():  # under a temporary name first: a cut download leaves no file
                    (folder / f".{name}.part").unlink(missing_ok=True)  # download_url would reuse a stale one
                    part = download_url(f"{pyg.Planetoid.url}/{name}", str(folder), log=False,
                                        filename=f".{name}.part")
                    os.replace(part, folder / name)
        elif spec.family == "amazon":
            pyg.Amazon(str(base), spec.folder)
        else:
            pyg.Coauthor(str(base), spec.folder)
    except Exception as e:  # noqa: BLE001 - any network or disk failure becomes one clear line
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataNotFoundError(f"Could not download {spec.title} into {base}: {type(e).__name__}: {detail}") from e


# --------------------------------------------------------------------------- Planetoid's pickles

# (module, name) as a pickle spells it -> the object it may resolve to. Python 2 pickles say __builtin__;
# numpy 2 pickles say numpy._core; scipy < 1.8 pickles say scipy.sparse.csr.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array rebuilder, wherever numpy keeps it
PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
    ("collections", "defaultdict"): collections.defaultdict,
    ("__builtin__", "list"): list,
    ("builtins", "list"): list,
}


class _Refused(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`PICKLE_ALLOWED`; any other global (``os.system``,
    ``builtins.eval``, ``subprocess.Popen``, ...) is refused before it is looked up, so nothing runs."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


def load_pickle(path: Path) -> Any:
    """Unpickle a Planetoid file with :class:`RestrictedUnpickler` (latin-1 for Python 2's byte strings)."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except _Refused as err:
        raise DataFileError(f"{path}: refused to unpickle {err}: a Planetoid file holds only numpy arrays, scipy CSR "
                            "matrices and a dict of lists") from err
    except OSError as err:
        raise DataFileError(f"Cannot read {path}: {one_line(err)}") from err
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises anything from EOFError to TypeError
        raise DataFileError(f"{path} is not a readable Planetoid pickle (truncated or corrupt?): "
                            f"{one_line(err)}") from err


def _matrix(path: Path, value: Any) -> torch.Tensor:
    """A pickled feature or one-hot label matrix (CSR or dense, two-dimensional, numeric) as a float tensor."""
    if sp.issparse(value):
        try:
            value = value.todense()
        except (ValueError, TypeError, IndexError, MemoryError) as err:  # inconsistent CSR arrays or shape
            raise DataFileError(f"{path} holds a sparse matrix that cannot be expanded: {one_line(err)}") from err
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.dtype.kind not in "biuf":
        kind = f"{value.dtype} array of {value.ndim} dimensions" if isinstance(value, np.ndarray) else (
            type(value).__name__)
        raise DataFileError(f"{path} holds a {kind}, expected a two-dimensional numeric matrix")
    return torch.from_numpy(np.asarray(value)).to(torch.float)


def _adjacency(path: Path, value: Any) -> dict[int, list[int]]:
    if not isinstance(value, dict) or not all(
            isinstance(k, int) and isinstance(v, list) and all(isinstance(j, int) for j in v)
            for k, v in value.items()):
        raise DataFileError(f"{path} holds a {type(value).__name__}, expected a dict of node id -> list of node ids")
    return value


def _test_index(path: Path) -> torch.Tensor:
    try:
        lines = path.read_text().split("\n")[:-1]  # as torch_geometric's read_txt_array
        return torch.tensor([int(line) for line in lines], dtype=torch.long)
    except OSError as err:
        raise DataFileError(f"Cannot read {path}: {one_line(err)}") from err
    except ValueError as err:
        raise DataFileError(f"{path} is not a list of node indices, one a line: {one_line(err)}") from err


def _agree(folder: Path, a: str, n_a: int, b: str, n_b: int, what: str) -> None:
    if n_a != n_b:
        raise DataFileError(f"{folder / a} has {n_a} {what} but {b} has {n_b}: Planetoid's files disagree")


def read_planetoid(folder: Path, prefix: str):
    """Cora, CiteSeer or PubMed from ``ind.<prefix>.*`` in ``folder``: the ``Data`` (x, edge_index, y and the
    public split's masks) torch_geometric's ``read_planetoid_data`` builds, from checked, safely unpickled
    files."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, index_to_mask, remove_self_loops

    name = {p: f"ind.{prefix}.{p}" for p in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")}
    m = {p: _matrix(folder / name[p], load_pickle(folder / name[p])) for p in ("x", "tx", "allx", "y", "ty", "ally")}
    graph = _adjacency(folder / name["graph"], load_pickle(folder / name["graph"]))
    test_index = _test_index(folder / name["test.index"])
    x, tx, allx, y, ty, ally = (m[p] for p in ("x", "tx", "allx", "y", "ty", "ally"))
    for feat, lab in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        _agree(folder, name[lab], m[lab].shape[0], name[feat], m[feat].shape[0], "rows")
    for p in ("tx", "allx"):
        _agree(folder, name[p], m[p].shape[1], name["x"], x.shape[1], "feature columns")
    for p in ("ty", "ally"):
        _agree(folder, name[p], m[p].shape[1], name["y"], y.shape[1], "label columns")
    if y.shape[1] == 0:
        raise DataFileError(f"{folder / name['y']} has no label columns")
    if test_index.dim() != 1 or test_index.numel() == 0:
        raise DataFileError(f"{folder / name['test.index']} holds no node indices")
    _agree(folder, name["test.index"], test_index.numel(), name["tx"], tx.shape[0], "rows")
    if int(test_index.unique().numel()) != test_index.numel():
        raise DataFileError(f"{folder / name['test.index']} repeats a node index")
    sorted_test_index = test_index.sort()[0]
    n_all = allx.shape[0]
    if prefix == "citeseer":  # isolated test nodes: zero rows where the test index skips a number (as torch_geometric)
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext = torch.zeros(span, tx.size(1), dtype=tx.dtype)
        tx_ext[sorted_test_index - test_index.min(), :] = tx
        ty_ext = torch.zeros(span, ty.size(1), dtype=ty.dtype)
        ty_ext[sorted_test_index - test_index.min(), :] = ty
        tx, ty = tx_ext, ty_ext
    n = n_all + tx.shape[0]
    if int(test_index.min()) < n_all or int(test_index.max()) >= n:
        raise DataFileError(f"{folder / name['test.index']} holds node {int(test_index.min())}..{int(test_index.max())}"
                            f", but the test nodes are {n_all}..{n - 1} ({name['allx']} has {n_all} rows, "
                            f"{name['tx']} {tx.shape[0]})")
    if y.shape[0] + 500 > n:
        raise DataFileError(f"{folder / name['y']} has {y.shape[0]} rows: the public split's 500 validation nodes "
                            f"after them do not fit in the {n} nodes")
    nodes = [k for k in graph] + [j for v in graph.values() for j in v]
    if nodes and (min(nodes) < 0 or max(nodes) >= n):
        raise DataFileError(f"{folder / name['graph']} refers to node {max(nodes) if max(nodes) >= n else min(nodes)}"
                            f", but the features ({name['allx']} + {name['tx']}) have {n} rows")

    x = torch.cat([allx, tx], dim=0)
    x[test_index] = x[sorted_test_index]
    labels = torch.cat([ally, ty], dim=0).max(dim=1)[1]
    labels[test_index] = labels[sorted_test_index]
    rows: list[int] = []
    cols: list[int] = []
    for key, value in graph.items():
        rows += repeat(key, len(value))
        cols += value
    edge_index = torch.stack([torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)], dim=0)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(edge_index, num_nodes=n, sort_by_row=False)
    data = Data(x=x, edge_index=edge_index, y=labels)
    data.train_mask = index_to_mask(torch.arange(y.shape[0], dtype=torch.long), size=n)
    data.val_mask = index_to_mask(torch.arange(y.shape[0], y.shape[0] + 500, dtype=torch.long), size=n)
    data.test_mask = index_to_mask(test_index, size=n)
    return data


# --------------------------------------------------------------------------- Amazon / Coauthor npz

NPZ_KEYS = ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "attr_data", "attr_indices", "attr_indptr",
            "attr_shape", "labels")


def read_graph_npz(path: Path):
    """An Amazon / Coauthor npz (the gnn-benchmark layout) through torch_geometric's ``parse_npz``, after
    checking that its keys are there and its shapes agree; ``allow_pickle`` stays off."""
    from torch_geometric.io.npz import parse_npz

    errors = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    with open_npz(path) as z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise DataFileError(f"{path} has no array {', '.join(missing)} (expected {', '.join(NPZ_KEYS)})")
        try:
            f = {k: z[k] for k in NPZ_KEYS}
        except errors as err:
            raise DataFileError(f"{path}: an array cannot be read (truncated or corrupt?): {one_line(err)}") from err
    try:
        attr_shape = tuple(int(v) for v in f["attr_shape"])
        adj_shape = tuple(int(v) for v in f["adj_shape"])
    except (TypeError, ValueError) as err:
        raise DataFileError(f"{path}: attr_shape and adj_shape must be pairs of integers") from err
    if len(attr_shape) != 2 or len(adj_shape) != 2:
        raise DataFileError(f"{path}: attr_shape {attr_shape} and adj_shape {adj_shape} must be pairs")
    n = attr_shape[0]
    if adj_shape != (n, n):
        raise DataFileError(f"{path}: adj_shape is {adj_shape} but the features (attr_shape) have {n} rows")
    labels = f["labels"]
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n:
        raise DataFileError(f"{path}: labels is {labels.dtype} {labels.shape}, expected {n} integer labels")
    if n and int(labels.min()) < 0:
        raise DataFileError(f"{path}: labels holds {int(labels.min())}, expected labels from 0")
    try:
        return parse_npz(f, to_undirected=True)
    except (ValueError, IndexError, TypeError) as err:  # scipy's checks of the CSR arrays
        raise DataFileError(f"{path}: its sparse arrays do not form a matrix: {one_line(err)}") from err


def _read(folder: Path, spec: GraphSpec):
    if spec.family == "planetoid":
        return read_planetoid(folder, spec.raw_files[0].split(".")[1])
    return read_graph_npz(folder / spec.raw_files[0])


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
