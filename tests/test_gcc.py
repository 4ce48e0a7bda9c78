"""GCC (Qiu et al. 2020) and graph-level data: RWR subgraph views, positional embeddings against an independent
eigendecomposition, the MoCo loss against a naive transcription, the TUDataset reader against torch_geometric's,
bad files as one line, and GCC beating its random-init GIN on a small TUDataset-format set through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from scipy.sparse.csgraph import connected_components

from sslbench.data import load_dataset
from sslbench.data.base import DataFileError, DataInfo
from sslbench.errors import ConfigError, DataNotFoundError
from sslbench.method import Batch
from sslbench.plugins import DATASETS, ENCODERS, MODALITIES, get_modality, load_method_class

for _registry in (DATASETS, ENCODERS, MODALITIES):  # discover the built-ins first (they register on import)
    _registry.names()

from sslbench.components.encoders.gin import GIN  # noqa: E402
from sslbench.data.graphset import Graph  # noqa: E402
from sslbench.views import graphs as gv  # noqa: E402

GCC = load_method_class("gcc")


# --------------------------------------------------------------------------- a TUDataset-format set in tmp

def _tree(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    return [(i, int(rng.integers(i))) for i in range(1, n)]


def toy_graphs(count: int = 200, seed: int = 0) -> tuple[list[tuple[int, list[tuple[int, int]]]], list[int]]:
    """Two classes of random trees (12-24 nodes) with 5 extra edges each: class 0's close triangles (node to its
    grandparent), class 1's join random pairs. The degree sequences are alike; the local structure is not."""
    rng = np.random.default_rng(seed)
    graphs, labels = [], []
    for i in range(count):
        cls, n = i % 2, int(rng.integers(12, 25))
        tree = _tree(n, rng)
        parent = dict(tree)
        edges = {tuple(sorted(e)) for e in tree}
        while len(edges) < len(tree) + 5:
            if cls == 0:
                a = int(rng.integers(2, n))
                if parent[a] == 0:
                    continue
                b = parent[parent[a]]
            else:
                a, b = (int(v) for v in rng.integers(n, size=2))
            if a != b:
                edges.add((min(a, b), max(a, b)))
        graphs.append((n, sorted(edges)))
        labels.append(cls)
    return graphs, labels


def write_tu(root: Path, name: str, graphs, labels, node_labels=None, node_attributes=None) -> Path:
    """The TU Dortmund files: both directions of each edge in _A.txt (as the real sets list them), 1-based ids."""
    folder = root / "graph" / "TUDataset" / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    lines, indicator, offset = [], [], 0
    for g, (n, edges) in enumerate(graphs):
        for a, b in edges:
            lines += [f"{a + offset + 1}, {b + offset + 1}", f"{b + offset + 1}, {a + offset + 1}"]
        indicator += [str(g + 1)] * n
        offset += n
    (folder / f"{name}_A.txt").write_text("\n".join(lines) + "\n")
    (folder / f"{name}_graph_indicator.txt").write_text("\n".join(indicator) + "\n")
    (folder / f"{name}_graph_labels.txt").write_text("\n".join(str(v) for v in labels) + "\n")
    if node_labels is not None:
        (folder / f"{name}_node_labels.txt").write_text("\n".join(str(v) for v in node_labels) + "\n")
    if node_attributes is not None:
        (folder / f"{name}_node_attributes.txt").write_text(
            "\n".join(", ".join(f"{v:.3f}" for v in row) for row in node_attributes) + "\n")
    return folder


def random_graph(n: int, extra: int, seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    edges = _tree(n, rng) + [tuple(int(v) for v in rng.integers(n, size=2)) for _ in range(extra)]
    return Graph.from_edges(np.asarray(edges).T, n)


# --------------------------------------------------------------------------- views

@pytest.mark.parametrize("seed", range(6))
def test_rwr_subgraphs_are_connected_contain_the_start_and_respect_the_max_size(seed):
    g = random_graph(60, 40, seed)
    rng = np.random.default_rng(seed)
    for max_nodes in (2, 5, 16, 200):
        start = int(rng.integers(60))
        nodes = gv.rwr_nodes(g.indptr, g.indices, start, 0.8, 256, max_nodes, rng)
        assert nodes[0] == start and len(set(nodes.tolist())) == len(nodes) <= max_nodes
        ei = gv.induced_subgraph(g.indptr, g.indices, nodes)
        # the induced subgraph holds exactly the original edges among the nodes
        original = {(a, b) for a, b in g.edge_index.T.tolist()}
        members = set(nodes.tolist())
        expected = {(a, b) for a, b in original if a in members and b in members}
        assert {(int(nodes[a]), int(nodes[b])) for a, b in ei.T.tolist()} == expected
        adj = np.zeros((len(nodes), len(nodes)))
        adj[ei[0], ei[1]] = 1
        assert connected_components(adj, directed=False)[0] == 1
    # a long walk with no size cap covers the whole (connected) graph
    all_nodes = gv.rwr_nodes(g.indptr, g.indices, 0, 0.3, 20000, 1000, np.random.default_rng(seed))
    assert sorted(all_nodes.tolist()) == list(range(60))


def test_an_isolated_start_node_is_a_one_node_view():
    g = Graph.from_edges(np.array([[1], [2]]), 3)
    nodes = gv.rwr_nodes(g.indptr, g.indices, 0, 0.8, 256, 16, np.random.default_rng(0))
    assert nodes.tolist() == [0]


def _eigen_reference(g: Graph, k: int) -> np.ndarray:
    """networkx's normalised Laplacian I - D^-1/2 A D^-1/2, its k smallest eigenvectors, rows L2-normalised."""
    nxg = nx.Graph()
    nxg.add_nodes_from(range(g.num_nodes))
    nxg.add_edges_from(g.edge_index.T.tolist())
    lap = nx.normalized_laplacian_matrix(nxg, nodelist=range(g.num_nodes)).toarray()
    vals, vecs = np.linalg.eigh(lap)
    assert np.min(np.diff(vals[:k + 1])) > 1e-6  # a simple spectrum: eigenvectors defined up to sign
    u = vecs[:, :k]
    return u / np.linalg.norm(u, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positional_encoding_equals_the_eigenvectors_up_to_sign(seed):
    g = random_graph(14, 12, seed)
    ref = _eigen_reference(g, 6)  # rows normalised over the same k = min(n, pos_dim) = 6 columns
    pe = gv.positional_encoding(g.edge_index, g.num_nodes, 6)
    for j in range(6):
        assert np.allclose(pe[:, j], ref[:, j], atol=1e-5) or np.allclose(pe[:, j], -ref[:, j], atol=1e-5)
    # more columns than the k = min(n, pos_dim) eigenvectors: zero padding; fewer nodes than pos_dim: k = n
    small = random_graph(5, 2, seed)
    pe_small = gv.positional_encoding(small.edge_index, 5, 8)
    assert np.all(pe_small[:, 5:] == 0) and np.allclose(np.linalg.norm(pe_small, axis=1), 1, atol=1e-5)


def test_the_sparse_eigensolver_agrees_with_the_dense_one(monkeypatch):
    g = random_graph(80, 60, 3)
    dense = gv.positional_encoding(g.edge_index, 80, 6)
    monkeypatch.setattr(gv, "DENSE_MAX", 10)
    sparse = gv.positional_encoding(g.edge_index, 80, 6)
    assert np.allclose(dense, sparse, atol=1e-4)


def test_features_hold_degree_one_hot_and_the_ego_flag():
    g = random_graph(10, 4, 0)
    spec = gv.GraphFeatures(pos_dim=4, max_degree=3, node_dim=0)
    x = gv.featurize(g.edge_index, 10, 7, spec).numpy()
    assert x.shape == (10, spec.dim) == (10, 4 + 4 + 1)
    assert np.array_equal(x[:, 4:8].argmax(axis=1), np.minimum(g.degrees, 3)) and np.all(x[:, 4:8].sum(1) == 1)
    assert x[:, 8].tolist() == [float(i == 7) for i in range(10)]


def _toy_split(tmp_path: Path, count: int = 40, ids: bool = False, **options):
    """The toy set in tmp; with ``ids`` every node's attribute is its 1-based node id (traceable in views)."""
    graphs, labels = toy_graphs(count)
    total = sum(n for n, _ in graphs)
    attributes = [[float(i + 1)] for i in range(total)] if ids else None
    write_tu(tmp_path, "TOYSET", graphs, labels, node_attributes=attributes)
    return load_dataset("tudataset", ["train", "test", "all"], tmp_path, set="TOYSET", node_features=ids, **options)


class _TwoViews:
    needs_labels = False

    def views(self, base):
        return [base, base]


def test_views_are_seeded_per_graph_and_epoch_and_share_the_ego_node(tmp_path: Path):
    info, splits = _toy_split(tmp_path, ids=True, pos_dim=4, max_degree=4)
    assert info.num_features == 4 + 5 + 1 + 1  # positional, degree one-hot, ego flag, the node id attribute
    cfg = type("P", (), {"batch_size": 4})()
    views = gv.GraphsViewConfig(max_nodes=6, walk_length=64)
    src = get_modality("graphs").batch_source(splits["train"], info, _TwoViews(), views, cfg, 0, torch.device("cpu"))
    rows = lambda gb, i: gb.x[gb.batch == i]  # noqa: E731
    b1 = src.make_batch(torch.tensor([3, 5, 8, 13]))
    b2 = src.make_batch(torch.tensor([5]))
    assert torch.equal(rows(b1.views[0], 1), rows(b2.views[0], 0))  # a graph's views ignore their batch
    for i in range(4):
        q, k = rows(b1.views[0], i), rows(b1.views[1], i)
        assert q[:, -2].sum() == 1 and q[0, -2] == 1 and k[0, -2] == 1  # one ego flag, on the first node
        assert q[0, -1] == k[0, -1]  # both views around the same ego node (its id attribute)
        assert len(q) <= 6 and len(k) <= 6
    assert any(not torch.equal(rows(b1.views[0], i), rows(b1.views[1], i)) for i in range(4))  # two draws
    src._epoch = 1
    b3 = src.make_batch(torch.tensor([3, 5, 8, 13]))
    assert not torch.equal(b1.views[0].x, b3.views[0].x)  # another epoch, other subgraphs


def test_eval_view_is_the_whole_graph_flagged_at_its_highest_degree_node(tmp_path: Path):
    info, splits = _toy_split(tmp_path, pos_dim=6, max_degree=0)
    test = splits["test"]
    batch = next(get_modality("graphs").eval_inputs(test, info, torch.device("cpu"), 3))
    g = test.samples[1]
    rows = batch.x[batch.batch == 1]
    assert rows.shape == (g.num_nodes, 6 + 1)
    assert int(rows[:, -1].argmax()) == int(np.argmax(g.degrees)) and rows[:, -1].sum() == 1
    assert np.allclose(rows[:, :6].numpy(), gv.positional_encoding(g.edge_index, g.num_nodes, 6))


# --------------------------------------------------------------------------- the encoder

def test_gin_embeds_each_graph_alone_and_ignores_node_order():
    torch.manual_seed(0)
    enc = GIN(5, hidden=8, out_dim=6, layers=3).eval()
    graphs = [random_graph(n, 3, s) for s, n in enumerate((7, 9, 5))]
    items = [(torch.randn(g.num_nodes, 5), g.edge_index) for g in graphs]
    together = enc(gv.GraphBatch.collate(items))
    assert together.shape == (3, 6)
    for i, item in enumerate(items):
        assert torch.allclose(enc(gv.GraphBatch.collate([item])), together[i:i + 1], atol=1e-5)
    x, ei = items[0]
    perm = torch.randperm(x.shape[0])
    inv = torch.argsort(perm)
    permuted = (x[perm], inv[torch.as_tensor(ei)])  # node perm[j] of the original is node j here
    assert torch.allclose(enc(gv.GraphBatch.collate([permuted])), together[:1], atol=1e-5)


# --------------------------------------------------------------------------- the method

TOY_INFO = DataInfo(name="toy", modality="graphs", num_classes=2, classes=["0", "1"], num_features=5)


def make_gcc(dropout: float = 0.0, **cfg):
    torch.manual_seed(0)
    enc = GIN(5, hidden=8, out_dim=6, layers=3, dropout=dropout)
    return GCC(GCC.Config(**{"queue_size": 7, "momentum": 0.9, "temperature": 0.07, **cfg}), enc, 6, TOY_INFO, 10)


def toy_batch(seed: int, dtype=torch.float32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    views = []
    for v in range(2):
        items = [(torch.randn(n, 5, generator=g, dtype=dtype), random_graph(n, 2, seed * 10 + v * 3 + n).edge_index)
                 for n in (6, 8, 5, 7)]
        views.append(gv.GraphBatch.collate(items))
    return Batch(views=views, index=torch.arange(4))


def naive_gcc_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """GCC Eq. 1 per query: -log exp(q.k+/t) / (exp(q.k+/t) + sum_j exp(q.k_j/t)), queue keys as negatives."""
    total = 0.0
    for i in range(q.shape[0]):
        pos = math.exp(float(q[i] @ k[i]) / t)
        negs = sum(math.exp(float(q[i] @ key) / t) for key in queue)
        total += -math.log(pos / (pos + negs))
    return total / q.shape[0]


def test_gcc_loss_equals_a_naive_transcription_and_the_queue_and_momentum_follow_moco():
    m = make_gcc().double()
    m.queue.keys.copy_(F.normalize(m.queue.keys, dim=1))  # unit in float64
    m.train()
    opt = torch.optim.Adam(m.parameter_groups(), lr=0.05)
    in_opt = {id(p) for grp in opt.param_groups for p in grp["params"]}
    assert all(not p.requires_grad and id(p) not in in_opt for p in m.key_encoder.parameters())
    assert {id(p) for p in m.encoder.parameters()} <= in_opt

    b = toy_batch(1, torch.float64)
    negs = m.queue.keys.clone()
    out = m.training_step(b)
    with torch.no_grad():  # train mode, no dropout: the step's q and k again (BN on the batch's statistics)
        q = F.normalize(m.encoder(b.views[0]), dim=1)
        k = F.normalize(m.key_encoder(b.views[1]), dim=1)
    assert torch.allclose(m._pending, k, atol=1e-12)
    assert out.loss.item() == pytest.approx(naive_gcc_loss(q, k, negs, m.cfg.temperature), rel=1e-9)

    opt.zero_grad()
    out.loss.backward()
    assert all(p.grad is None for p in m.key_encoder.parameters())
    opt.step()
    q_params = [p.detach().clone() for p in m.encoder.parameters()]
    k_before = [p.detach().clone() for p in m.key_encoder.parameters()]
    ptr = int(m.queue.ptr)
    m.after_step(1, 1)
    for kb, qp, kp in zip(k_before, q_params, m.key_encoder.parameters(), strict=True):
        assert torch.allclose(kp, 0.9 * kb + 0.1 * qp, atol=1e-12)  # theta_k <- m theta_k + (1 - m) theta_q
    assert torch.allclose(m.queue.keys[[(ptr + i) % 7 for i in range(4)]], k)  # this step's keys enqueued
    assert m.num_negatives(32) == 7 and GCC.negatives_key == "method.queue_size"
    assert m.negatives_memory_bytes(32) > m.negatives_memory_bytes(8) > 0


def test_the_key_encoder_uses_batch_statistics_without_dropout():
    m = make_gcc(dropout=0.5)
    m.train()
    b = toy_batch(2)
    m.training_step(b)
    k1 = m._pending.clone()
    m.training_step(b)
    assert torch.equal(m._pending, k1)  # no dropout in f_k: the same keys twice
    kinds = {type(mod).__name__: mod.training for mod in m.key_encoder.modules()
             if isinstance(mod, (torch.nn.Dropout, torch.nn.BatchNorm1d))}
    assert kinds == {"Dropout": False, "BatchNorm1d": True}


# --------------------------------------------------------------------------- the TUDataset reader

def test_the_reader_matches_torch_geometric_read_tu_data(tmp_path: Path):
    from torch_geometric.io import read_tu_data

    graphs, labels = toy_graphs(30, seed=3)
    labels = [-1 if v == 0 else 1 for v in labels]  # raw labels as MUTAG spells them
    total = sum(n for n, _ in graphs)
    rng = np.random.default_rng(0)
    folder = write_tu(tmp_path, "TOYSET", graphs, labels, node_labels=rng.integers(1, 4, total).tolist(),
                      node_attributes=rng.random((total, 2)).round(3).tolist())
    with open(folder / "TOYSET_A.txt", "a") as f:
        f.write("1, 1\n1, 2\n")  # a self-loop and a repeated edge, as real files sometimes hold
    info, splits = load_dataset("tudataset", ["all"], tmp_path, set="TOYSET", node_features=True, pos_dim=4,
                                max_degree=0)
    data, slices, _ = read_tu_data(str(folder), "TOYSET")
    assert info.classes == ["-1", "1"] and torch.equal(splits["all"].labels, data.y)
    assert info.num_features == 4 + 1 + data.x.shape[1] and info.fingerprint.startswith("sha256:")
    for g, ours in enumerate(splits["all"].samples):
        lo, hi = int(slices["edge_index"][g]), int(slices["edge_index"][g + 1])
        theirs = data.edge_index[:, lo:hi].T.tolist()
        assert {tuple(e) for e in ours.edge_index.T.tolist()} == {tuple(e) for e in theirs} | {(b, a) for a, b in theirs}
        x_lo, x_hi = int(slices["x"][g]), int(slices["x"][g + 1])
        assert ours.num_nodes == x_hi - x_lo and np.allclose(ours.x, data.x[x_lo:x_hi].numpy())


def test_splits_are_stratified_disjoint_and_folds_cover_every_graph(tmp_path: Path):
    info, splits = _toy_split(tmp_path, count=60, test_fraction=0.25, split_seed=3)
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 60 and len(test) == 16  # round(0.25 x 30) per class
    assert torch.bincount(test.labels).tolist() == [8, 8]
    ids = lambda split: {id(g) for g in split.samples}  # noqa: E731
    assert not ids(train) & ids(test) and ids(train) | ids(test) == ids(splits["all"])
    seen = []
    for fold in range(5):
        _, s = load_dataset("tudataset", ["train", "test", "all"], tmp_path, set="TOYSET", folds=5, fold=fold)
        order = {id(g): i for i, g in enumerate(s["all"].samples)}
        seen += [order[id(g)] for g in s["test"].samples]
        assert torch.bincount(s["test"].labels).tolist() == [6, 6] and len(s["train"]) == 48
    assert sorted(seen) == list(range(60))  # every graph in exactly one test fold


BAD_FILES = [
    ("A", "1, 2\n2, x\n", "TOYSET_A.txt is not a table of int64 numbers"),
    ("A", "1, 2, 3\n", "TOYSET_A.txt has 3 columns"),
    ("A", "1, 2\n2, 999\n", "TOYSET_A.txt line 2: edge 2, 999 names a node outside 1..12"),
    ("A", "1, 2\n6, 7\n", "TOYSET_A.txt line 2: edge 6, 7 joins graph 1 to graph 2"),
    ("graph_labels", "0\n", "TOYSET_graph_labels.txt has 1 lines but TOYSET_graph_indicator.txt numbers 3 graphs"),
    ("graph_labels", "1\n1\n1\n", "holds one label (1) only"),
    ("graph_labels", "", "TOYSET_graph_labels.txt"),
    ("graph_indicator", "1\n1\n1\n1\n1\n1\n2\n2\n2\n2\n3\n3\n3\n1\n", "line 14: graph ids must start at 1"),
    ("graph_indicator", "1\n1\n1\n1\n1\n1\n3\n3\n3\n3\n3\n3\n", "graph 2 has no nodes"),
]


@pytest.mark.parametrize("part,content,message", BAD_FILES, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD_FILES)])
def test_bad_files_are_one_line_naming_the_file(tmp_path: Path, part, content, message):
    graphs = [(6, [(0, 1), (1, 2)]), (4, [(0, 1)]), (2, [(0, 1)])]
    folder = write_tu(tmp_path, "TOYSET", graphs, [0, 1, 0])
    (folder / f"TOYSET_{part}.txt").write_text(content)
    with pytest.raises(DataFileError) as err:
        load_dataset("tudataset", ["train"], tmp_path, set="TOYSET")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_files_and_bad_options_are_one_line(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match=r"TOYSET not found: .*TUDataset/TOYSET/raw/TOYSET_A.txt is missing.*"
                                                r"--download"):
        load_dataset("tudataset", ["train"], tmp_path, set="TOYSET")
    with pytest.raises(ConfigError, match="Unknown dataset option 'sett'"):
        load_dataset("tudataset", ["train"], tmp_path, sett="TOYSET")
    with pytest.raises(ConfigError, match="'dataset.options.fold': 10; must be an integer in 0..9"):
        _toy_split(tmp_path, fold=10)
    suite = tmp_path / "toy.yaml"
    suite.write_text("suite: toy\nversion: 1\ndataset: {name: imdb-binary, train: train, test: test}\n"
                     "encoder: {name: gin}\nprotocols:\n  - linear: {}\n")
    p = run_cli("run", "gcc", "--suite", str(suite), "--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "IMDB-BINARY_A.txt is missing" in lines[0] and str(tmp_path / "graph" / "TUDataset" / "IMDB-BINARY") in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.json"))


# --------------------------------------------------------------------------- learning, through the CLI

SUITE = """suite: toyset-gcc
version: 1
modality: graphs
dataset: {name: tudataset, train: train, test: test,
          options: {set: TOYSET, test_fraction: 0.3, pos_dim: 8, max_degree: 8}}
encoder: {name: gin, options: {hidden: 32, out_dim: 32, layers: 3, dropout: 0.0}}
pretrain: {epochs: 60, batch_size: 32, optimizer: adam, lr: 0.005, weight_decay: 1.0e-5, warmup_epochs: 1, threads: 1}
views: {restart_prob: 0.8, walk_length: 32, max_nodes: 24}
methods:
  gcc: {queue_size: 64, momentum: 0.9, temperature: 0.07}
protocols:
  - linear: {epochs: 100}
  - knn: {k: 10, temperature: 0.1}
seeds: [0, 1]
"""


def _records(out: Path, method: str) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    recs = [r for r in recs if r["method"]["name"] == method]
    assert sorted(r["seed"] for r in recs) == [0, 1] and all(r["status"] == "ok" for r in recs)
    return recs


def _mean(records: list[dict], metric: str) -> float:
    return float(np.mean([r["metrics"][metric]["value"] for r in records]))


def test_gcc_trains_and_beats_its_random_init_encoder_on_graph_classification(tmp_path: Path):
    """The issue's requirement: 200 toy graphs (140 train, 60 test) in TUDataset files written here; GCC's
    frozen GIN against the same GIN at random initialisation, linear and kNN probes on whole graphs, two seeds
    each (one test graph is 1.7 points: single seeds are noisy). Measured here: GCC 74.6, random init 65.4
    (the mean of linear and kNN top-1 over seeds 0 and 1)."""
    graphs, labels = toy_graphs(200)
    write_tu(tmp_path / "data", "TOYSET", graphs, labels)
    suite = tmp_path / "toyset-gcc.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "runs"
    common = ["--suite", str(suite), "--data-dir", str(tmp_path / "data"), "--out", str(out), "--quiet"]
    for method, sets in (("gcc", []), ("baseline.random", ["--set", "pretrain.epochs=0"])):
        p = run_cli("run", method, *common, *sets)
        assert p.returncode == 0, p.stderr
    gcc, floor = _records(out, "gcc"), _records(out, "baseline")
    assert all(r["suite"]["data_fingerprint"].startswith("sha256:") for r in gcc)
    for r in gcc:
        losses = [loss for _, loss in r["train"]["loss_history"]]
        assert np.mean(losses[-5:]) < np.mean(losses[1:6]) - 0.3, losses  # entry 0: the queue still random
    score = lambda recs: (_mean(recs, "linear.top1") + _mean(recs, "knn.top1")) / 2  # noqa: E731
    assert score(gcc) >= score(floor) + 4.0, (score(gcc), score(floor))
    assert _mean(gcc, "knn.top1") > _mean(floor, "knn.top1") and _mean(gcc, "linear.top1") > _mean(floor, "linear.top1")
