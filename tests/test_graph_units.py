"""Graph modality, unit level: Cora's loader, the views and corruption, DGI's discriminator and loss and
GRACE's loss against naive transcriptions of the papers' equations, early stopping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA

from sslbench.data import load_dataset
from sslbench.errors import ConfigError, DataNotFoundError
from sslbench.views.graph import drop_edges, mask_features, shuffle_rows

CORA = SHARED_DATA / "graph" / "planetoid" / "Cora" / "raw"
needs_cora = pytest.mark.skipif(not CORA.is_dir(), reason=f"Cora not found at {CORA}")


# ------------------------------------------------------------------ data

@needs_cora
def test_cora_public_split():
    info, splits = load_dataset("cora", ["train", "val", "test", "all"], SHARED_DATA)
    assert (info.modality, info.num_classes, info.num_features, info.num_nodes) == ("graph", 7, 1433, 2708)
    assert [len(splits[s]) for s in ("train", "val", "test", "all")] == [140, 500, 1000, 2708]
    g = splits["train"].graph
    assert all(splits[s].graph is g for s in splits)  # one transductive graph behind every split
    assert tuple(g.edge_index.shape) == (2, 10556)
    assert torch.equal(splits["test"].labels, g.y[splits["test"].nodes])
    assert torch.bincount(splits["train"].labels, minlength=7).tolist() == [20] * 7  # 20 per class
    assert set(splits["train"].nodes.tolist()).isdisjoint(splits["test"].nodes.tolist())
    sums = g.x.sum(1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())))  # rows normalised
    assert info.fingerprint.startswith("sha256:")


@needs_cora
def test_cora_random_split_is_seeded_and_disjoint():
    _, a = load_dataset("cora", ["train", "val", "test"], SHARED_DATA, split="random", split_seed=3)
    _, b = load_dataset("cora", ["train", "val", "test"], SHARED_DATA, split="random", split_seed=3)
    _, c = load_dataset("cora", ["train"], SHARED_DATA, split="random", split_seed=4)
    assert [len(a[s]) for s in ("train", "val", "test")] == [271, 271, 2166]  # 10 / 10 / 80 of 2708
    assert torch.equal(a["train"].nodes, b["train"].nodes) and not torch.equal(a["train"].nodes, c["train"].nodes)
    nodes = torch.cat([a[s].nodes for s in ("train", "val", "test")])
    assert sorted(nodes.tolist()) == list(range(2708))


def test_graph_loader_errors(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match="Cora not found: .*ind.cora.x is missing"):
        load_dataset("cora", ["train"], tmp_path)
    with pytest.raises(ConfigError, match="options.split': 'public' for amazon-photo. Valid: random"):
        load_dataset("amazon-photo", ["train"], tmp_path, split="public")
    with pytest.raises(ConfigError, match="Unknown dataset option 'seed' for cora"):
        load_dataset("cora", ["train"], tmp_path, seed=1)
    with pytest.raises(ConfigError, match="Unknown split 'dev' for dataset 'cora'"):
        load_dataset("cora", ["dev"], tmp_path)


# ------------------------------------------------------------------ views

def test_shuffle_rows_permutes_features_only():
    torch.manual_seed(0)
    x = torch.randn(50, 7)
    xc, perm = shuffle_rows(x)
    assert sorted(perm.tolist()) == list(range(50)) and not torch.equal(perm, torch.arange(50))
    assert torch.equal(xc, x[perm])


def test_drop_edges_and_mask_features():
    torch.manual_seed(0)
    ei = torch.randint(0, 100, (2, 20000))
    kept = drop_edges(ei, 0.3)
    assert abs(kept.shape[1] / 20000 - 0.7) < 0.02
    assert set(map(tuple, kept.T.tolist())) <= set(map(tuple, ei.T.tolist()))
    x = torch.rand(30, 1000) + 0.1
    xm = mask_features(x, 0.4)
    zero_cols = (xm == 0).all(0)
    assert abs(zero_cols.float().mean().item() - 0.4) < 0.06  # whole feature dimensions, the same for all nodes
    assert torch.equal(xm[:, ~zero_cols], x[:, ~zero_cols])
    assert drop_edges(ei, 0.0) is ei and mask_features(x, 0.0) is x


@needs_cora
def test_dgi_corruption_keeps_the_graph_and_permutes_features():
    """In a DGI step the negative encoder call sees the same edges and a row permutation of X."""
    from sslbench_methods.dgi import DGI

    from sslbench.components.encoders.graph import GCN
    from sslbench.method import Batch

    info, splits = load_dataset("cora", ["all"], SHARED_DATA)
    g = splits["all"].graph
    calls = []

    class Spy(GCN):
        def forward(self, x, edge_index):
            calls.append((x, edge_index))
            return super().forward(x, edge_index)

    enc = Spy(info.num_features, (16,))
    m = DGI(DGI.Config(), enc, 16, info, 140)
    torch.manual_seed(0)
    m.training_step(Batch(views=[g], index=torch.arange(g.num_nodes)))
    (x_pos, e_pos), (x_neg, e_neg) = calls
    assert x_pos is g.x and e_pos is g.edge_index and e_neg is g.edge_index
    assert not torch.equal(x_neg, x_pos)
    from collections import Counter

    assert Counter(map(tuple, x_neg.tolist())) == Counter(map(tuple, x_pos.tolist()))  # the same multiset of rows


# ------------------------------------------------------------------ DGI: discriminator and loss

def _naive_dgi(h, h_neg, W, b):
    """DGI Eqs. 1 and 5 term by term: s = sigmoid(mean h); D(h_i, s) = sigmoid(h_i^T W s + b);
    L = -1/(N+M) (sum_i log D(h_i, s) + sum_j log(1 - D(h~_j, s)))."""
    n, d = len(h), len(h[0])
    s = [1 / (1 + math.exp(-sum(h[i][k] for i in range(n)) / n)) for k in range(d)]

    def disc(v):
        z = sum(v[a] * W[a][c] * s[c] for a in range(d) for c in range(d)) + b
        return 1 / (1 + math.exp(-z))

    total = sum(math.log(disc(h[i])) for i in range(n)) + sum(math.log(1 - disc(h_neg[j])) for j in range(len(h_neg)))
    return -total / (n + len(h_neg)), s


@pytest.mark.parametrize("n,d", [(5, 3), (8, 4), (3, 6)])
def test_dgi_discriminator_and_loss_match_the_paper(n, d):
    from sslbench_methods.dgi import BilinearDiscriminator, dgi_loss, readout

    torch.manual_seed(n * 10 + d)
    h, h_neg = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    disc = BilinearDiscriminator(d).double()
    with torch.no_grad():
        disc.bilinear.bias.fill_(0.3)
    s = readout(h)
    loss = dgi_loss(disc(h, s), disc(h_neg, s))
    W, b = disc.bilinear.weight[0].tolist(), 0.3
    expected, s_naive = _naive_dgi(h.tolist(), h_neg.tolist(), W, b)
    assert torch.allclose(s, torch.tensor(s_naive, dtype=torch.float64))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    # the fast h (W s) form equals torch's own bilinear layer on the expanded summary
    assert torch.allclose(disc(h, s), disc.bilinear(h, s.expand_as(h)).squeeze(-1))


# ------------------------------------------------------------------ GRACE loss

def _naive_grace(u, v, t):
    """GRACE Eq. 1 and 2 with loops: theta = cosine similarity; J = 1/2N sum_i [l(u_i, v_i) + l(v_i, u_i)]."""
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    def ell(a, b, i):
        pos = math.exp(cos(a[i], b[i]) / t)
        inter = sum(math.exp(cos(a[i], b[k]) / t) for k in range(len(a)) if k != i)
        intra = sum(math.exp(cos(a[i], a[k]) / t) for k in range(len(a)) if k != i)
        return -math.log(pos / (pos + inter + intra))

    n = len(u)
    return sum(ell(u, v, i) + ell(v, u, i) for i in range(n)) / (2 * n)


@pytest.mark.parametrize("n,d,t", [(4, 3, 0.4), (7, 5, 0.5), (10, 2, 1.0)])
def test_grace_loss_matches_the_paper(n, d, t):
    from sslbench.components.losses import nt_xent

    torch.manual_seed(n + d)
    u, v = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    assert nt_xent(u, v, temperature=t).item() == pytest.approx(_naive_grace(u.tolist(), v.tolist(), t), rel=1e-10)


# ------------------------------------------------------------------ early stopping

def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    from sslbench.engine import EarlyStopping

    net = torch.nn.Linear(2, 1)
    es = EarlyStopping(3)
    losses = [5.0, 4.0, 2.0, 2.5, 3.0, 1.9, 2.1, 2.2, 2.3, 0.1]
    best_weight = None
    for epoch, loss in enumerate(losses, 1):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        es.add(loss)
        es.end_epoch(epoch, net)
        if epoch == 6:
            best_weight = net.weight.clone()
        if es.stopped:
            break
    assert (es.best_epoch, es.stopped_at) == (6, 9)  # 1.9 at epoch 6, then three epochs without improvement
    es.restore(net)
    assert torch.equal(net.weight, best_weight)
    with pytest.raises(ConfigError, match="early_stop_patience"):
        EarlyStopping(-1)


def test_new_keys_leave_existing_config_hashes_unchanged():
    """Adding ``pretrain.early_stop_patience`` (at its default) keeps the hashes the baselines were written with."""
    import json

    from sslbench.config import config_hash
    from sslbench.suites import build_run_config

    base = json.loads((Path(__file__).resolve().parents[1] / "results/baselines/cpu-2core.json").read_text())
    recorded = {(e["suite"], e["method"]): e["config_hash"] for e in base["entries"]}
    cfg, _, _ = build_run_config("simclr", "digits-linear")
    assert config_hash(cfg) == recorded[("digits-linear", "simclr")]
    cfg2, _, _ = build_run_config("simclr", "digits-linear", [("pretrain.early_stop_patience", 5)])
    assert config_hash(cfg2) != config_hash(cfg)


def test_amazon_npz_through_the_same_loader(tmp_path: Path):
    """A file in the gnn-benchmark npz layout torch_geometric's Amazon and Coauthor download: read offline,
    random 10/10/80 split by default (no public split exists), features binarised then row-normalised."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, f = 60, 12
    adj = sp.random(n, n, density=0.1, format="csr", random_state=1)
    attr = sp.random(n, f, density=0.3, format="csr", random_state=2)
    folder = tmp_path / "graph" / "amazon" / "Photo" / "raw"
    folder.mkdir(parents=True)
    np.savez(folder / "amazon_electronics_photo.npz", adj_data=adj.data, adj_indices=adj.indices,
             adj_indptr=adj.indptr, adj_shape=adj.shape, attr_data=attr.data, attr_indices=attr.indices,
             attr_indptr=attr.indptr, attr_shape=attr.shape, labels=rng.integers(0, 3, n))
    info, splits = load_dataset("amazon-photo", ["train", "val", "test"], tmp_path)
    assert (info.num_nodes, info.num_features, info.modality) == (n, f, "graph")
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 6, 48]
    assert splits["train"].extra["split"] == "random"
    g = splits["train"].graph
    row_sums = g.x.sum(1)
    assert torch.allclose(row_sums[row_sums > 0], torch.ones(int((row_sums > 0).sum())))
    ei = g.edge_index
    assert set(map(tuple, ei.T.tolist())) == set(map(tuple, ei.flip(0).T.tolist()))  # made undirected


@needs_cora
def test_graph_training_resumes_exactly_with_early_stopping_state(tmp_path: Path):
    """GRACE's views and DGI-style early stopping replay exactly after an interruption: the resumed run ends
    on the same step, best epoch and weights as an uninterrupted one."""
    from sslbench.components.encoders import build_encoder
    from sslbench.engine import Trainer
    from sslbench.seeding import seed_everything
    from sslbench.suites import build_run_config

    cfg, cls, _ = build_run_config("grace", "cora-grace", [
        ("pretrain.epochs", 40), ("pretrain.early_stop_patience", 3), ("pretrain.checkpoint_every", 1),
        ("encoder.options.dims", [32, 16]), ("method.proj_hidden_dim", 16), ("pretrain.lr", 0.05)])
    info, splits = load_dataset("cora", ["train"], SHARED_DATA, split="random")

    def trainer(ckpt: Path) -> Trainer:
        seed_everything(0)
        enc, dim = build_encoder(cfg.encoder, info)
        method = cls(cfg.method_config, enc, dim, info, len(splits["train"]))
        return Trainer(method, splits["train"], info, cfg.views, cfg.pretrain, 0, torch.device("cpu"),
                       checkpoint=ckpt, progress=False, config_hash="h")

    ref = trainer(tmp_path / "ref.pt")
    ref_result = ref.fit()
    # interrupted right after the best epoch: its weights can only come back through the checkpoint
    cut = ref_result.early_stopping["best_epoch"]
    assert 1 <= cut < ref_result.steps, ref_result

    class Interrupted(Trainer):
        def train_step(self, batch):
            if self.step == cut:
                raise KeyboardInterrupt
            return super().train_step(batch)

    seed_everything(0)
    first = trainer(tmp_path / "cut.pt")
    first.__class__ = Interrupted
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = trainer(tmp_path / "cut.pt")
    assert resumed.resume() == cut  # the checkpoint written after step `cut`
    result = resumed.fit()
    assert result.early_stopping == ref_result.early_stopping
    assert result.early_stopping["stopped_at_epoch"] is not None  # the high lr makes it stop early
    assert result.steps == ref_result.steps < 40
    for (k, a), b in zip(ref.method.state_dict().items(), resumed.method.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
