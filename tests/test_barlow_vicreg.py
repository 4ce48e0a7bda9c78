"""Barlow Twins and VICReg: the losses against naive transcriptions of the papers' equations, the properties
of the cross-correlation / variance / covariance terms, the data-parallel gather (2 gloo processes against one
process with the global batch), lightly's losses where installed, and learning on the real digits data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sslbench import distributed
from sslbench.build import RunOptions
from sslbench.config import parse_set
from sslbench.data.base import DataInfo
from sslbench.errors import ConfigError
from sslbench.method import Batch
from sslbench.plugins import load_method_class
from sslbench.runner import execute, run_lock
from sslbench.suites import build_run_config

# through the registry (importing the modules before discovery would register them twice)
BarlowTwins = load_method_class("barlow_twins")
VICReg = load_method_class("vicreg")
from sslbench_methods.barlow_twins import barlow_twins_loss, cross_correlation  # noqa: E402
from sslbench_methods.vicreg import covariance_term, invariance_term, variance_term, vicreg_loss  # noqa: E402

TOY = DataInfo(name="toy", modality="image", num_classes=2, classes=["a", "b"], channels=3, image_size=4)


def linear_encoder() -> nn.Module:
    """No BN: a sample's features do not depend on the rest of the batch (2 ranks x B equal one process's 2B)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU())


def make(cls, **cfg):
    torch.manual_seed(0)
    c = cls.Config(**{"proj_hidden_dim": 12, "proj_dim": 6, "proj_layers": 2, **cfg})
    return cls(c, linear_encoder(), 16, TOY, train_size=100)


def views(n: int = 8, seed: int = 1, dtype=torch.float64) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(views=[torch.randn(n, 3, 4, 4, generator=g, dtype=dtype) for _ in range(2)], index=torch.arange(n))


def rand(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64) * 3 + 1


def hadamard_columns(n: int = 8, d: int = 4) -> torch.Tensor:
    """n x d with zero-mean, unit-variance (biased), mutually orthogonal columns: rows of a Sylvester Hadamard
    matrix without the all-ones row."""
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return torch.tensor(h[1:d + 1].T.copy())


# ---------------------------------------------------------------- Barlow Twins

def naive_cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> list[list[float]]:
    """Eq. 2 as explicit sums over the batch b: each column normalised by its batch mean and (biased) variance,
    C_ij = sum_b z1n_bi z2n_bj / N (plain Python floats)."""
    n, d = z1.shape

    def normalised_columns(z: torch.Tensor) -> list[list[float]]:
        cols = []
        for i in range(d):
            col = [float(z[b, i]) for b in range(n)]
            mean = sum(col) / n
            var = sum((v - mean) ** 2 for v in col) / n
            cols.append([(v - mean) / math.sqrt(var + eps) for v in col])
        return cols

    a, b = normalised_columns(z1), normalised_columns(z2)
    return [[sum(a[i][k] * b[j][k] for k in range(n)) / n for j in range(d)] for i in range(d)]


def naive_barlow_twins_loss(c: list[list[float]], lambd: float) -> float:
    """Eq. 1 as a loop: sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2."""
    total = 0.0
    for i in range(len(c)):
        for j in range(len(c)):
            total += (1 - c[i][j]) ** 2 if i == j else lambd * c[i][j] ** 2
    return total


def test_cross_correlation_equals_its_definition_and_the_official_batchnorm():
    z1, z2 = rand(9, 5, seed=0), rand(9, 5, seed=1)
    c = cross_correlation(z1, z2)
    assert c.shape == (5, 5)
    assert torch.allclose(c, torch.tensor(naive_cross_correlation(z1, z2), dtype=torch.float64), atol=1e-12)
    bn = nn.BatchNorm1d(5, affine=False).double().train()  # the official code's normaliser
    assert torch.allclose(c, bn(z1).T @ bn(z2) / 9, atol=1e-12)
    # a correlation: |C_ij| <= 1, 1 on the diagonal of a view with itself (up to eps), and invariant to a
    # per-dimension positive scale and shift of either view (the batch normalisation removes them)
    assert float(c.abs().max()) <= 1
    self_c = cross_correlation(z1, z1, eps=0.0)
    assert torch.allclose(torch.diagonal(self_c), torch.ones(5, dtype=torch.float64), atol=1e-12)
    scaled = z1 * torch.arange(1.0, 6.0, dtype=torch.float64) * 7 - 3
    assert torch.allclose(cross_correlation(scaled, z2, eps=0.0), cross_correlation(z1, z2, eps=0.0), atol=1e-12)


@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_barlow_twins_loss_equals_a_loop_over_the_matrix(lambd):
    c = cross_correlation(rand(7, 6, seed=2), rand(7, 6, seed=3))
    loss, on_diag, off_diag = barlow_twins_loss(c, lambd)
    cl = c.tolist()
    assert float(loss) == pytest.approx(naive_barlow_twins_loss(cl, lambd), rel=1e-12)
    assert float(on_diag) == pytest.approx(sum((1 - cl[i][i]) ** 2 for i in range(6)), rel=1e-12)
    assert float(off_diag) == pytest.approx(sum(cl[i][j] ** 2 for i in range(6) for j in range(6) if i != j),
                                            rel=1e-12)


def test_barlow_twins_loss_vanishes_at_the_identity_only():
    """Paired, decorrelated embeddings give C = I (loss ~ 0); unpaired views (a row permutation) or redundant
    dimensions (a duplicated column) do not."""
    z = hadamard_columns(8, 4)
    c = cross_correlation(z, z.clone(), eps=0.0)
    assert torch.allclose(c, torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert float(barlow_twins_loss(c, 0.0051)[0]) < 1e-20
    unpaired = barlow_twins_loss(cross_correlation(z, z[torch.tensor([1, 0, 3, 2, 5, 4, 7, 6])], eps=0.0), 0.0051)
    assert float(unpaired[1]) > 1  # the invariance term sees the broken pairing
    redundant = z.clone()
    redundant[:, 1] = redundant[:, 0]
    _, on_diag, off_diag = barlow_twins_loss(cross_correlation(redundant, redundant, eps=0.0), 0.0051)
    assert float(on_diag) < 1e-20 and float(off_diag) == pytest.approx(2.0)  # C_01 = C_10 = 1


def test_barlow_twins_step_is_the_loss_of_each_views_projection_and_trains_the_encoder():
    m = make(BarlowTwins).double().train()
    b = views()
    out = m.training_step(b)
    z1, z2 = m.projector(m.encoder(b.views[0])), m.projector(m.encoder(b.views[1]))  # each view its own BN pass
    c = naive_cross_correlation(z1.detach(), z2.detach())
    assert out.loss.item() == pytest.approx(naive_barlow_twins_loss(c, 0.0051), rel=1e-10)
    assert out.logs["on_diag"] + 0.0051 * out.logs["off_diag"] == pytest.approx(out.loss.item(), rel=1e-10)
    out.loss.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.encoder.parameters())
    assert m.num_negatives(256) == 0 and BarlowTwins.negatives_key == "pretrain.batch_size"
    assert m.negatives_memory_bytes(4) > 2 * 6 * 6 * 4


def test_barlow_twins_defaults_are_the_papers():
    c = BarlowTwins.Config()
    assert (c.proj_hidden_dim, c.proj_dim, c.proj_layers, c.lambd) == (8192, 8192, 3, 0.0051)
    m = make(BarlowTwins, proj_layers=3)
    kinds = [type(layer).__name__ for layer in m.projector]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]


# ---------------------------------------------------------------- VICReg

def naive_vicreg_terms(z1: np.ndarray, z2: np.ndarray, gamma: float = 1.0, eps: float = 1e-4) -> dict:
    """Sec. 4 with numpy and loops: s = mean over pairs and dimensions of (z - z')^2; v(Z) = mean_j
    max(0, gamma - sqrt(Var(z_j) + eps)) (unbiased Var); c(Z) = sum_{i != j} Cov(Z)_ij^2 / d."""
    n, d = z1.shape
    s = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)

    def v(z):
        return sum(max(0.0, gamma - math.sqrt(np.var(z[:, j], ddof=1) + eps)) for j in range(d)) / d

    def c(z):
        cov = np.cov(z, rowvar=False)  # unbiased: divides by n - 1
        return sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

    return {"s": s, "v1": v(z1), "v2": v(z2), "c1": c(z1), "c2": c(z2)}


def test_vicreg_terms_equal_naive_transcriptions():
    z1, z2 = rand(10, 6, seed=4) * 0.4, rand(10, 6, seed=5) * 0.4  # some dimensions below gamma = 1, some above
    ref = naive_vicreg_terms(z1.numpy(), z2.numpy())
    assert 0 < ref["v1"] and 0 < ref["v2"]
    assert float(invariance_term(z1, z2)) == pytest.approx(ref["s"], rel=1e-12)
    assert float(variance_term(z1)) == pytest.approx(ref["v1"], rel=1e-12)
    assert float(variance_term(z2)) == pytest.approx(ref["v2"], rel=1e-12)
    assert float(covariance_term(z1)) == pytest.approx(ref["c1"], rel=1e-12)
    assert float(covariance_term(z2)) == pytest.approx(ref["c2"], rel=1e-12)
    loss, terms = vicreg_loss(z1, z2)
    # the official code's Eq. 6: lambda s + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z')), 25 / 25 / 1
    total = 25 * ref["s"] + 25 * (ref["v1"] + ref["v2"]) / 2 + 1 * (ref["c1"] + ref["c2"])
    assert float(loss) == pytest.approx(total, rel=1e-12)
    assert float(terms["variance"]) == pytest.approx((ref["v1"] + ref["v2"]) / 2, rel=1e-12)
    loss2, _ = vicreg_loss(z1, z2, sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5, gamma=2.0, eps=1e-2)
    ref2 = naive_vicreg_terms(z1.numpy(), z2.numpy(), gamma=2.0, eps=1e-2)
    assert float(loss2) == pytest.approx(2 * ref2["s"] + 3 * (ref2["v1"] + ref2["v2"]) / 2
                                         + 0.5 * (ref2["c1"] + ref2["c2"]), rel=1e-12)


def test_vicreg_terms_vanish_where_the_paper_says():
    """s = 0 for identical views; v = 0 once every dimension's std reaches gamma (a hinge, not a target); c = 0
    for decorrelated dimensions; a collapsed batch (every row alike) pays v = gamma - sqrt(eps) per branch."""
    z = hadamard_columns(8, 4) * 3  # std 3 * sqrt(8/7) > 1, orthogonal columns
    assert float(invariance_term(z, z.clone())) == 0
    assert float(variance_term(z)) == 0
    assert float(covariance_term(z)) < 1e-25
    collapsed = torch.ones(8, 4, dtype=torch.float64)
    assert float(variance_term(collapsed)) == pytest.approx(1 - math.sqrt(1e-4), rel=1e-12)
    loss, terms = vicreg_loss(collapsed, collapsed.clone())
    assert float(loss) == pytest.approx(25 * (1 - math.sqrt(1e-4)), rel=1e-12)
    assert float(terms["invariance"]) == 0 and float(terms["covariance"]) == 0


def test_vicreg_step_is_the_loss_of_each_views_projection_and_trains_the_encoder():
    m = make(VICReg).double().train()
    b = views()
    out = m.training_step(b)
    z1, z2 = (m.projector(m.encoder(x)).detach() for x in b.views)
    ref = naive_vicreg_terms(z1.numpy(), z2.numpy())
    assert out.loss.item() == pytest.approx(25 * ref["s"] + 12.5 * (ref["v1"] + ref["v2"]) + ref["c1"] + ref["c2"],
                                            rel=1e-10)
    assert out.logs["invariance"] == pytest.approx(ref["s"], rel=1e-10)
    out.loss.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.encoder.parameters())
    assert m.num_negatives(256) == 0 and VICReg.negatives_key == "pretrain.batch_size"
    c = VICReg.Config()
    assert (c.sim_coeff, c.std_coeff, c.cov_coeff, c.gamma, c.eps) == (25.0, 25.0, 1.0, 1.0, 1e-4)
    assert (c.proj_hidden_dim, c.proj_dim, c.proj_layers) == (8192, 8192, 3)


@pytest.mark.parametrize("cls,key,value", [(BarlowTwins, "lambd", -1.0), (BarlowTwins, "proj_dim", 0),
                                           (VICReg, "eps", 0.0), (VICReg, "std_coeff", -25.0),
                                           (VICReg, "proj_layers", 0)])
def test_bad_options_are_one_config_error_naming_the_key(cls, key, value):
    with pytest.raises(ConfigError, match=rf"^Bad value for 'method\.{key}': {value}; .*"):
        make(cls, **{key: value})


# ---------------------------------------------------------------- lightly's losses (a peer, in the test extra)

def test_losses_match_lightly():
    import lightly.loss as loss_mod  # in the test extra: a missing peer fails, it does not skip
    z1, z2 = rand(16, 8, seed=6), rand(16, 8, seed=7)
    # lightly normalises with F.batch_norm (biased variance, eps 1e-5), as the official code and we do
    ours = barlow_twins_loss(cross_correlation(z1, z2), 0.0051)[0]
    assert float(ours) == pytest.approx(float(loss_mod.BarlowTwinsLoss(lambda_param=0.0051)(z1, z2)), rel=1e-10)
    # lightly follows the official code: the variance terms averaged over the branches, the covariances summed
    ours_v, _ = vicreg_loss(z1 * 0.3, z2 * 0.3)
    assert float(ours_v) == pytest.approx(float(loss_mod.VICRegLoss()(z1 * 0.3, z2 * 0.3)), rel=1e-10)


# ---------------------------------------------------------------- data parallel: 2 gloo processes

WORLD, B = 2, 4


def _loss_and_grads(cls, rows: slice, **cfg) -> tuple[float, dict[str, torch.Tensor]]:
    """One step on the rows ``rows`` of a fixed global batch of 2B, the gradients averaged over the ranks as
    the engine does (a BN-free encoder and linear projector: the projections of 2 x B rows equal those of 2B)."""
    m = make(cls, proj_layers=1, **cfg).double()
    g = views(WORLD * B, seed=3)
    loss = m.training_step(Batch(views=[v[rows] for v in g.views], index=g.index[rows])).loss
    loss.backward()
    distributed.average_gradients([p for p in m.parameters() if p.requires_grad])
    value = distributed.all_reduce_sum([float(loss.detach())])[0] / distributed.world_size()
    return value, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    try:
        rows = slice(rank * B, (rank + 1) * B)
        result = {(name, gather): _loss_and_grads(cls, rows, gather=gather)
                  for name, cls in (("barlow_twins", BarlowTwins), ("vicreg", VICReg)) for gather in (True, False)}
        torch.save(result, f"{out}/rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_gathered_loss_and_gradients_equal_one_process_with_the_global_batch(tmp_path: Path):
    mp.spawn(_worker, args=(WORLD, str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for name, cls in (("barlow_twins", BarlowTwins), ("vicreg", VICReg)):
        ref_loss, ref_grads = _loss_and_grads(cls, slice(0, WORLD * B))  # one process, the global batch
        for got in ranks:
            loss, grads = got[(name, True)]
            # the logged loss is the mean over ranks (VICReg's invariance is each rank's own mean, as official)
            assert loss == pytest.approx(ref_loss, rel=1e-10), name
            assert grads.keys() == ref_grads.keys()
            for key, g in ref_grads.items():
                torch.testing.assert_close(grads[key], g, rtol=1e-9, atol=1e-12, msg=f"{name} {key}")
        # gather: false, each rank's own statistics (an ablation): not the global batch's gradient
        _, local = ranks[0][(name, False)]
        assert any(not torch.allclose(local[k], g, rtol=1e-6) for k, g in ref_grads.items()), name


# ---------------------------------------------------------------- learning on real digits

def _run(tmp_path: Path, method: str, *sets: str):
    cfg, cls, _ = build_run_config(method, "digits-linear", parse_set(["linear.epochs=30", "pretrain.threads=1",
                                                                       *sets]), 0)
    opts = RunOptions(out_dir=tmp_path / method, progress=False)
    with run_lock(opts, cfg):
        rec = execute(cfg, cls, opts)
    assert rec.status == "ok", rec.error
    return rec


@pytest.mark.slow
def test_loss_falls_and_the_probe_beats_random_init_on_digits(tmp_path: Path):
    """8 epochs on sklearn's digits (about 80 steps): each method's last-epoch loss is well below its first
    epoch's, and its linear probe beats the same encoder at random initialisation (pretrain.epochs=0)."""
    floor = _run(tmp_path, "baseline.random", "pretrain.epochs=0").metrics["linear.top1"]["value"]
    for method in ("barlow_twins", "vicreg"):
        rec = _run(tmp_path, method, "pretrain.epochs=8")
        hist = [loss for _, loss in rec.train["loss_history"]]
        spe = round(rec.train["total_steps"] / rec.train["epochs"])
        first, last = np.mean(hist[:spe]), np.mean(hist[-spe:])
        print(method, 'first/last epoch loss', first, last, 'linear', rec.metrics['linear.top1']['value'], 'floor', floor)
        assert last < 0.85 * first, (method, hist)
        assert rec.metrics["linear.top1"]["value"] >= floor + 2.0, (method, rec.metrics, floor)
