"""AMDIM's local-global InfoNCE (methods/amdim.py) and the triplet margin loss on SimCLR's in-batch negatives
(sslbench.components.losses.triplet_margin_loss, ``simclr --set method.loss=triplet``): both against naive
transcriptions of the papers' equations, their structure, pytorch-metric-learning, and learning on real digits."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sslbench.components.encoders.image import SmallCNN
from sslbench.components.losses import nt_xent, triplet_margin_loss
from sslbench.config import config_hash
from sslbench.data.base import DataInfo
from sslbench.errors import ConfigError
from sslbench.method import Batch
from sslbench.plugins import ENCODERS, load_method_class
from sslbench.suites import build_run_config

AMDIM = load_method_class("amdim")
SimCLR = load_method_class("simclr")
local_global_nce = importlib.import_module(AMDIM.__module__).local_global_nce

DIGITS = DataInfo(name="digits", modality="image", num_classes=10, classes=[str(i) for i in range(10)], channels=1,
                  image_size=8)
REPO = Path(__file__).resolve().parents[1]


def randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- AMDIM: the loss

def naive_local_global(g: torch.Tensor, local: torch.Tensor, clip: float, penalty: float) -> float:
    """DIM Eq. 5 (infoNCE) in AMDIM's form, one direction, in plain Python: for every image i and location m,
    -log exp(s_iim) / (exp(s_iim) + sum over the other images j and all their locations m' of exp(s_ijm')),
    s = c tanh(raw / c), raw = g_i . l_jm / sqrt(D); plus penalty * mean(raw^2)."""
    gl, ll = g.tolist(), local.tolist()
    n, m, d = len(ll), len(ll[0]), len(gl[0])
    raw = [[[sum(a * b for a, b in zip(gl[i], ll[j][k], strict=True)) / math.sqrt(d) for k in range(m)]
            for j in range(n)] for i in range(n)]
    s = [[[clip * math.tanh(v / clip) if clip else v for v in row] for row in block] for block in raw]
    total = 0.0
    for i in range(n):
        for k in range(m):
            pos = s[i][i][k]
            negatives = [s[i][j][k2] for j in range(n) if j != i for k2 in range(m)]
            total += -(pos - math.log(math.exp(pos) + sum(math.exp(v) for v in negatives)))
    mean_sq = sum(v * v for block in raw for row in block for v in row) / (n * n * m)
    return total / (n * m) + penalty * mean_sq


@pytest.mark.parametrize("clip,penalty", [(20.0, 0.05), (0.0, 0.0), (3.0, 0.0), (0.0, 0.1)])
def test_local_global_nce_matches_a_naive_loop(clip, penalty):
    g, local = randn(5, 6, seed=0, scale=3.0), randn(5, 4, 6, seed=1, scale=3.0)  # scores of several units
    got = local_global_nce(g, local, clip=clip, score_penalty=penalty)
    assert float(got) == pytest.approx(naive_local_global(g, local, clip, penalty), rel=1e-10)


def test_the_positive_and_the_own_image_are_never_negatives():
    n, m, d = 4, 5, 3
    g, local = randn(n, d, seed=2), randn(n, m, d, seed=3).requires_grad_(True)
    losses = local_global_nce(g, local, clip=0.0, score_penalty=0.0, reduction="none")  # N x M
    assert losses.shape == (n, m)
    for i in range(n):
        for k in range(m):
            (grad,) = torch.autograd.grad(losses[i, k], local, retain_graph=True)
            own = grad[i].abs().sum(-1)  # M: the loss of (i, k) against image i's own locations
            assert own[k] > 0  # the positive
            assert torch.all(own[torch.arange(m) != k] == 0)  # image i's other locations: neither
            others = grad[torch.arange(n) != i].abs().sum(-1)  # (N - 1) x M: every one a negative
            assert torch.all(others > 0)
    # every location of image i far along g_i: if any of them (the positive itself, or i's other locations)
    # were a negative the loss would stay >= log 2; with only the other images as negatives it goes to 0
    aligned = local.detach().clone()
    aligned[0] = 1000.0 * g[0]
    assert float(local_global_nce(g, aligned, clip=0.0, score_penalty=0.0, reduction="none")[0].max()) < 1e-6


# ---------------------------------------------------------------- AMDIM: the method

def make_amdim(seed: int = 0, **cfg) -> AMDIM:
    torch.manual_seed(seed)
    return AMDIM(AMDIM.Config(**{"dim": 8, "hidden_dim": 16, **cfg}), SmallCNN(1, (8, 16, 32)), 32, DIGITS, 100)


def test_auto_local_layer_is_the_stage_before_the_last():
    m = make_amdim()  # 8 px digits: 8 x 8, 4 x 4, 2 x 2 maps
    assert (m.local_layer, m.local_shape, m.locations) == ("features.5", (16, 4, 4), 16)
    assert m.num_negatives(64) == 63 * 16
    cifar = DataInfo(name="c", modality="image", num_classes=10, classes=[str(i) for i in range(10)], channels=3,
                     image_size=32)
    for name, layer, shape in [("cnn-small", "features.8", (128, 8, 8)), ("resnet18-cifar", "layer3", (256, 8, 8))]:
        enc = ENCODERS.get(name)(cifar, {})
        m = AMDIM(AMDIM.Config(dim=8, hidden_dim=16), enc, enc.num_features, cifar, 100)
        assert (m.local_layer, m.local_shape) == (layer, shape), name
        assert not any(mod._forward_hooks for mod in enc.modules())  # the probe left no hook behind


def test_local_layer_by_name_and_a_bad_name():
    assert make_amdim(local_layer="features.2").local_shape == (8, 8, 8)
    with pytest.raises(ConfigError, match=r"Unknown method.local_layer .*'features.55'. Did you mean"):
        make_amdim(local_layer="features.55")


def test_training_step_is_both_directions_of_the_naive_loss():
    m = make_amdim().double()
    m.train()
    x1, x2 = randn(6, 1, 8, 8, seed=4), randn(6, 1, 8, 8, seed=5)
    loss = m.training_step(Batch(views=[x1, x2], index=torch.arange(6))).loss
    # independently: features.5's output by running the encoder's first six modules by hand
    x = torch.cat([x1, x2])
    with torch.no_grad():
        fmap = m.encoder.features[:6](x)
        g = m.global_head(m.encoder(x))
        local = m.local_head(fmap).flatten(2).transpose(1, 2)
    c = m.cfg
    want = 0.5 * (naive_local_global(g[:6], local[6:], c.clip, c.score_penalty)
                  + naive_local_global(g[6:], local[:6], c.clip, c.score_penalty))
    assert loss.item() == pytest.approx(want, rel=1e-9)
    loss.backward()
    assert all(p.grad is not None for p in m.local_head.parameters())
    assert not any(mod._forward_hooks for mod in m.encoder.modules())
    assert m.embed(x1).shape == (6, 32)  # frozen features: the encoder's pooled output


def test_amdim_options_are_checked_before_the_run():
    with pytest.raises(ConfigError, match=r"'method.clip': -1.0; valid: a number >= 0"):
        build_run_config("amdim", "digits-linear", [("method.clip", -1)])
    with pytest.raises(ConfigError, match=r"'method.dim': 0; valid: 1 or more"):
        build_run_config("amdim", "digits-linear", [("method.dim", 0)])


def fit_digits(method: str, sets: list[tuple[str, object]], data_root: Path) -> tuple[list[float], int]:
    """Pretrain on the real digits as `sslbench run` does (build_run + the engine, no protocols): the loss history
    and the steps per epoch."""
    from sslbench.build import RunOptions, build_run

    cfg, cls, _ = build_run_config(method, "digits-linear", [("pretrain.threads", 1), *sets], seed=0)
    run = build_run(cfg, cls, RunOptions(data_root=data_root, progress=False))
    result = run.trainer.fit()
    assert result.status == "ok", result.error
    return [loss for _, loss in result.loss_history], round(result.total_steps / result.epochs)


@pytest.mark.slow
def test_amdim_loss_falls_on_digits(data_root: Path):
    losses, spe = fit_digits("amdim", [("pretrain.epochs", 3), ("method.hidden_dim", 64), ("method.dim", 64)],
                             data_root)
    first, last = sum(losses[:spe]) / spe, sum(losses[-spe:]) / spe
    print(f"amdim: loss {first:.3f} -> {last:.3f} (chance log(1 + 127 * 16) = {math.log(1 + 127 * 16):.3f})")
    assert last < first - 0.1, losses


# ---------------------------------------------------------------- triplet margin loss

def naive_triplet(a: torch.Tensor, p: torch.Tensor, margin: float, mining: str, soft: bool) -> float:
    """FaceNet Eq. 1 with d = 1 - cos, per anchor a_i: positive p_i, negatives every other a_j and p_j."""
    al, pl = a.tolist(), p.tolist()

    def cos(u, v):
        return sum(x * y for x, y in zip(u, v, strict=True)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    def hinge(v):
        return math.log1p(math.exp(v)) if soft else max(v, 0.0)

    total = 0.0
    for i in range(len(al)):
        d_ap = 1 - cos(al[i], pl[i])
        d_an = [1 - cos(al[i], other) for j in range(len(al)) if j != i for other in (al[j], pl[j])]
        if mining == "hardest":
            total += hinge(d_ap - min(d_an) + margin)
        else:
            total += sum(hinge(d_ap - d + margin) for d in d_an) / len(d_an)
    return total / len(al)


@pytest.mark.parametrize("mining", ["all", "hardest"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("margin", [0.0, 0.1, 0.5])
def test_triplet_matches_a_naive_loop(mining, soft, margin):
    a, p = randn(7, 5, seed=6), randn(7, 5, seed=7)
    got = triplet_margin_loss(a, p, margin=margin, mining=mining, soft=soft)
    assert float(got) == pytest.approx(naive_triplet(a, p, margin, mining, soft), rel=1e-10)
    assert 0 < float(got)  # random vectors violate some margins: the comparison is not of zeros


def test_triplet_bad_arguments():
    a = randn(3, 4, seed=0)
    with pytest.raises(ValueError, match="mining must be one of all, hardest"):
        triplet_margin_loss(a, a, mining="semihard")
    with pytest.raises(ValueError, match="at least 2 anchors"):
        triplet_margin_loss(a[:1], a[:1])


@pytest.mark.parametrize("margin", [0.05, 0.3])
def test_triplet_matches_pytorch_metric_learning(margin):
    """Both directions of ours on (z1, z2) = PML on the 2N views labelled by sample, cosine similarity, all
    triplets: with MeanReducer (the plain mean, ours), and PML's default AvgNonZeroReducer = the sum over the
    non-zero triplets only; ``triplet-hard`` = BatchHardMiner; ``soft`` = ``smooth_loss``."""
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    n = 6
    z1, z2 = randn(n, 5, seed=8), randn(n, 5, seed=9)
    emb, labels = torch.cat([z1, z2]), torch.arange(n).repeat(2)

    def ours(**kw):
        return float(0.5 * (triplet_margin_loss(z1, z2, margin=margin, **kw)
                            + triplet_margin_loss(z2, z1, margin=margin, **kw)))

    def theirs(miner=None, **kw):
        loss = pml_losses.TripletMarginLoss(margin=margin, distance=CosineSimilarity(), **kw)
        return float(loss(emb, labels, miner(emb, labels) if miner else None))

    plain = ours()
    assert plain == pytest.approx(theirs(reducer=MeanReducer()), rel=1e-10)
    assert ours(soft=True) == pytest.approx(theirs(reducer=MeanReducer(), smooth_loss=True), rel=1e-10)
    hard_miner = BatchHardMiner(distance=CosineSimilarity())
    assert ours(mining="hardest") == pytest.approx(theirs(hard_miner, reducer=MeanReducer()), rel=1e-10)
    # PML's default reducer averages over the non-zero triplets only: the same sum, a smaller count
    cos = F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T
    total = 2 * n * (2 * n - 2)
    nonzero = sum(1 for i in range(2 * n) for j in range(2 * n)
                  if labels[j] != labels[i] and cos[i, j] - cos[i, (i + n) % (2 * n)] + margin > 0)
    assert 0 < nonzero < total
    assert theirs() * nonzero == pytest.approx(plain * total, rel=1e-10)


# ---------------------------------------------------------------- SimCLR's loss option

def make_simclr(**cfg) -> SimCLR:
    torch.manual_seed(0)
    return SimCLR(SimCLR.Config(proj_hidden_dim=16, proj_dim=8, **cfg), SmallCNN(1, (8, 16)), 16, DIGITS, 100)


@pytest.mark.parametrize("loss,mining", [("infonce", None), ("triplet", "all"), ("triplet-hard", "hardest")])
def test_simclr_loss_option(loss, mining):
    m = make_simclr(loss=loss, margin=0.2).double()
    x1, x2 = randn(6, 1, 8, 8, seed=10), randn(6, 1, 8, 8, seed=11)
    got = m.training_step(Batch(views=[x1, x2], index=torch.arange(6))).loss.item()
    with torch.no_grad():
        z = m.projector(m.encoder(torch.cat([x1, x2])))
    z1, z2 = z[:6], z[6:]
    if mining is None:  # the default is NT-Xent, as before the option
        want = float(nt_xent(z1, z2, temperature=m.cfg.temperature))
    else:
        want = 0.5 * (naive_triplet(z1, z2, 0.2, mining, False) + naive_triplet(z2, z1, 0.2, mining, False))
    assert got == pytest.approx(want, rel=1e-9)


def test_simclr_loss_option_keeps_the_config_hash_at_its_default():
    """The recorded digits-linear SimCLR baseline keeps its config hash; a triplet run or another margin gets
    its own; a bad loss is one line before the run."""
    baseline = json.loads((REPO / "results" / "baselines" / "cpu-2core.json").read_text())
    (recorded,) = {e["config_hash"] for e in baseline["entries"]
                   if e["method"] == "simclr" and e["suite"] == "digits-linear"}
    hashes = {}
    for sets in ([], [("method.loss", "infonce"), ("method.margin", 0.1)], [("method.loss", "triplet")],
                 [("method.margin", 0.3)]):
        cfg, _, _ = build_run_config("simclr", "digits-linear", sets)
        hashes[str(sets)] = config_hash(cfg)
    first, explicit, triplet, margin = hashes.values()
    assert first == explicit == recorded
    assert len({first, triplet, margin}) == 3
    with pytest.raises(ConfigError, match=r"'method.loss': 'hinge'; valid: infonce, triplet, triplet-hard"):
        build_run_config("simclr", "digits-linear", [("method.loss", "hinge")])


@pytest.mark.slow
def test_simclr_triplet_loss_falls_on_digits(data_root: Path):
    losses, spe = fit_digits("simclr", [("pretrain.epochs", 3), ("method.loss", "triplet")], data_root)
    first, last = sum(losses[:spe]) / spe, sum(losses[-spe:]) / spe
    print(f"simclr triplet: loss {first:.4f} -> {last:.4f}")
    assert last < 0.8 * first, losses
