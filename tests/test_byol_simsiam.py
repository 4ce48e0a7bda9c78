"""BYOL and SimSiam: losses against naive transcriptions of the papers' equations, BYOL's EMA target (no gradient,
cosine tau schedule), SimSiam's stop-gradient and fixed predictor lr, lightly's losses and heads where installed,
and short runs on the real digits data (loss falls, probe above the random-init floor, no collapse)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslbench.data.base import DataInfo
from sslbench.engine import lr_factor
from sslbench.errors import ConfigError
from sslbench.method import Batch
from sslbench.plugins import load_method_class

# through the registry (importing the modules before discovery would register them twice)
BYOL = load_method_class("byol")
SimSiam = load_method_class("simsiam")
target_tau = importlib.import_module(BYOL.__module__).target_tau

TOY = DataInfo(name="toy", modality="image", num_classes=2, classes=["a", "b"], channels=3, image_size=4)


def bn_encoder() -> tuple[nn.Module, int]:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten()), 8


def make(cls, seed: int = 0, **cfg):
    torch.manual_seed(seed)
    enc, dim = bn_encoder()
    sizes = {"proj_hidden_dim": 16, "proj_dim": 6, "pred_hidden_dim": 5}
    m = cls(cls.Config(**{**sizes, **cfg}), enc, dim, TOY, train_size=100)
    return m.train()


def batch(n: int = 7, seed: int = 1, dtype=torch.float32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(views=[torch.randn(n, 3, 4, 4, generator=g, dtype=dtype) for _ in range(2)], index=torch.arange(n))


def grads(params) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in params]


# ---------------------------------------------------------------- BYOL

def naive_byol_direction(q: torch.Tensor, zt: torch.Tensor) -> float:
    """BYOL Eq. 2 as written: || q/|q| - z'/|z'| ||_2^2, mean over the batch, in plain floats."""
    total = 0.0
    for qi, zi in zip(q.tolist(), zt.tolist(), strict=True):
        nq, nz = math.sqrt(sum(v * v for v in qi)), math.sqrt(sum(v * v for v in zi))
        total += sum((a / nq - b / nz) ** 2 for a, b in zip(qi, zi, strict=True))
    return total / len(q)


def test_byol_loss_matches_eq2_symmetrised():
    m = make(BYOL).double()
    b = batch(dtype=torch.float64)
    loss = m.training_step(b).loss
    x1, x2 = b.views
    with torch.no_grad():  # the same modules in the same (training) mode: batch statistics, deterministic
        q1, q2 = m.predictor(m.projector(m.encoder(x1))), m.predictor(m.projector(m.encoder(x2)))
        t1 = m.target_projector(m.target_encoder(x1))
        t2 = m.target_projector(m.target_encoder(x2))
    want = naive_byol_direction(q1, t2) + naive_byol_direction(q2, t1)
    assert loss.item() == pytest.approx(want, rel=1e-10)
    assert 0 < loss.item() < 8  # each direction lies in [0, 4]


def naive_tau(k: int, total: int, base: float) -> float:
    """BYOL Sec. 3.2: tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2."""
    return 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2


def test_byol_target_gets_no_gradient_and_follows_the_ema_schedule():
    m = make(BYOL, tau_base=0.9)
    target = [*m.target_encoder.parameters(), *m.target_projector.parameters()]
    online = [*m.encoder.parameters(), *m.projector.parameters()]
    opt = torch.optim.SGD(m.parameter_groups(), lr=0.5)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert target and all(not p.requires_grad and id(p) not in in_opt for p in target)
    assert {id(p) for p in [*online, *m.predictor.parameters()]} == in_opt
    assert all(torch.equal(a, b) for a, b in zip(online, target, strict=True))  # the target starts as a copy

    total = 10
    for step in (1, 6):  # tau_0 = tau_base; tau_5 = 1 - 0.1 * (cos(pi / 2) + 1) / 2 = 0.95
        out = m.training_step(batch(seed=step))
        opt.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in target)
        assert all(p.grad is not None for p in online)
        opt.step()
        before = [p.detach().clone() for p in target]
        m.after_step(step, total)
        tau = naive_tau(step - 1, total, 0.9)
        assert m.tau == pytest.approx(tau, abs=1e-15)
        for b, q, k in zip(before, online, target, strict=True):
            assert torch.allclose(k, tau * b + (1 - tau) * q.detach(), atol=1e-7, rtol=0)
        assert any(not torch.equal(q, k) for q, k in zip(online, target, strict=True))
    assert naive_tau(5, 10, 0.9) == pytest.approx(0.95)
    assert naive_tau(10, 10, 0.9) == pytest.approx(1.0)  # tau_K = 1 at the run's end


def test_byol_gradient_is_that_of_a_constant_target():
    """The gradient of the step's loss equals that of Eq. 2 with z' detached, and z' carries no graph."""
    m = make(BYOL).double()
    b = batch(dtype=torch.float64)
    online = [p for p in m.parameters() if p.requires_grad]
    m.training_step(b).loss.backward()
    got = grads(online)
    m.zero_grad()
    x1, x2 = b.views
    t1, t2 = m.target(x1), m.target(x2)
    assert not t1.requires_grad and t1.grad_fn is None
    q1, q2 = m.predictor(m.projector(m.encoder(x1))), m.predictor(m.projector(m.encoder(x2)))
    cos = F.cosine_similarity
    (2 - 2 * cos(q1, t2, dim=1)).mean().add((2 - 2 * cos(q2, t1, dim=1)).mean()).backward()
    assert all(torch.allclose(a, e, atol=1e-12) for a, e in zip(got, grads(online), strict=True))


def test_byol_state_dict_round_trip_and_profile_hooks(tmp_path: Path):
    a = make(BYOL, seed=0)
    for s in (1, 2):
        a.training_step(batch(seed=s))
        a.after_step(s, 5)
    torch.save(a.state_dict(), tmp_path / "ckpt.pt")
    b = make(BYOL, seed=123)
    b.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    assert any(k.startswith("target_encoder.") for k in a.state_dict())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert a.training_step(batch(seed=9)).loss.item() == b.training_step(batch(seed=9)).loss.item()
    assert a.num_negatives(64) == 0 and BYOL.negatives_key == "pretrain.batch_size"
    assert a.negatives_memory_bytes(64) == 2 * a.negatives_memory_bytes(32) > 0  # grows with the batch only


def test_byol_tau_base_is_checked_before_the_run():
    from sslbench.suites import build_run_config

    with pytest.raises(ConfigError, match=r"'method.tau_base': 1.5; valid: a rate in \[0, 1\]"):
        build_run_config("byol", "digits-linear", [("method.tau_base", 1.5)])
    build_run_config("byol", "digits-linear", [("method.tau_base", 1.0)])  # 1: a frozen target, allowed


# ---------------------------------------------------------------- SimSiam

def naive_simsiam(p1, z1, p2, z2) -> float:
    """SimSiam Alg. 1: L = D(p1, z2)/2 + D(p2, z1)/2, D(p, z) = - (p/|p|) . (z/|z|) averaged over the batch."""
    def d(p, z):
        total = 0.0
        for pi, zi in zip(p.tolist(), z.tolist(), strict=True):
            dot = sum(a * b for a, b in zip(pi, zi, strict=True))
            total += -dot / (math.sqrt(sum(a * a for a in pi)) * math.sqrt(sum(b * b for b in zi)))
        return total / len(p)
    return d(p1, z2) / 2 + d(p2, z1) / 2


def simsiam_outputs(m, b: Batch):
    x1, x2 = b.views
    z1, z2 = m.projector(m.encoder(x1)), m.projector(m.encoder(x2))
    return m.predictor(z1), z1, m.predictor(z2), z2


def test_simsiam_loss_matches_alg1():
    m = make(SimSiam).double()
    b = batch(dtype=torch.float64)
    loss = m.training_step(b).loss
    with torch.no_grad():
        p1, z1, p2, z2 = simsiam_outputs(m, b)
    assert loss.item() == pytest.approx(naive_simsiam(p1, z1, p2, z2), rel=1e-10)
    assert -1 <= loss.item() <= 1


def test_simsiam_stop_gradient():
    """The step's gradient equals Alg. 1's with z detached and differs from the same loss without the detach."""
    m = make(SimSiam).double()
    b = batch(dtype=torch.float64)
    params = [p for p in m.parameters() if p.requires_grad]
    enc = list(m.encoder.parameters())
    m.training_step(b).loss.backward()
    got = grads(params)

    def grad_of(detach: bool) -> list[torch.Tensor]:
        m.zero_grad()
        p1, z1, p2, z2 = simsiam_outputs(m, b)
        if detach:
            z1, z2 = z1.detach(), z2.detach()
        cos = F.cosine_similarity
        (-cos(p1, z2, dim=1).mean() / 2 - cos(p2, z1, dim=1).mean() / 2).backward()
        return grads(params)

    with_sg, without_sg = grad_of(True), grad_of(False)
    assert all(torch.allclose(a, e, atol=1e-12) for a, e in zip(got, with_sg, strict=True))
    diff = max(float((a - e).abs().max()) for a, e in zip(got[:len(enc)], without_sg[:len(enc)], strict=True))
    assert diff > 1e-6  # the encoder's gradient changes when z is not a constant
    # the predictor only ever sees the online branch: its gradient is the same either way
    k = len(list(m.predictor.parameters()))
    assert all(torch.allclose(a, e, atol=1e-12) for a, e in zip(got[-k:], without_sg[-k:], strict=True))


def test_simsiam_heads_and_predictor_group():
    m = make(SimSiam)
    last = m.projector[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine  # the paper's output BN without affine
    assert sum(isinstance(x, nn.Linear) for x in m.projector) == 3
    assert sum(isinstance(x, nn.Linear) for x in make(SimSiam, proj_layers=2).projector) == 2
    groups = m.parameter_groups()
    assert len(groups) == 2 and groups[1]["fix_lr"] is True and not groups[0].get("fix_lr")
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in m.predictor.parameters()}
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in m.parameters()}
    one = make(SimSiam, fix_pred_lr=False).parameter_groups()
    assert len(one) == 1 and len(one[0]["params"]) == len(list(m.parameters()))
    assert m.num_negatives(64) == 0 and m.negatives_memory_bytes(64) == 2 * m.negatives_memory_bytes(32) > 0


# ---------------------------------------------------------------- lightly (a peer, in the test extra)

def test_losses_heads_and_schedule_match_lightly():
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules.heads import SimSiamProjectionHead
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    ncs = NegativeCosineSimilarity()
    s = make(SimSiam).double()
    b = batch(dtype=torch.float64)
    loss = s.training_step(b).loss
    with torch.no_grad():
        p1, z1, p2, z2 = simsiam_outputs(s, b)
    assert loss.item() == pytest.approx(0.5 * (ncs(p1, z2) + ncs(p2, z1)).item(), rel=1e-12)

    m = make(BYOL).double()
    loss = m.training_step(b).loss
    with torch.no_grad():
        q1, q2 = m.predictor(m.project(b.views[0])), m.predictor(m.project(b.views[1]))
        t1, t2 = m.target(b.views[0]), m.target(b.views[1])
    # 2 - 2 cos per direction, summed: 4 + 2 (ncs + ncs)
    assert loss.item() == pytest.approx(4 + 2 * (ncs(q1, t2) + ncs(q2, t1)).item(), rel=1e-12)

    # lightly's cosine_schedule reaches its end value at max_steps - 1: ours at K is theirs at K + 1
    for k in range(10):
        assert target_tau(k, 10, 0.996) == pytest.approx(cosine_schedule(k, 11, 0.996, 1.0), abs=1e-15)

    # the EMA update is lightly's update_momentum
    ref = make(BYOL)
    m2 = make(BYOL)
    with torch.no_grad():
        for p in m2.encoder.parameters():
            p.add_(0.1)
        for p in ref.encoder.parameters():
            p.add_(0.1)
    m2.after_step(3, 10)
    update_momentum(ref.encoder, ref.target_encoder, target_tau(2, 10, ref.cfg.tau_base))
    assert all(torch.allclose(a, c, atol=1e-7) for a, c in
               zip(m2.target_encoder.parameters(), ref.target_encoder.parameters(), strict=True))

    # SimSiam's projector computes lightly's (its last Linear has no bias; ours has one that the BN removes)
    torch.manual_seed(0)
    theirs = SimSiamProjectionHead(8, 16, 6).train()
    ours = make(SimSiam).projector
    src = [x for x in theirs.layers if isinstance(x, (nn.Linear, nn.BatchNorm1d))]
    dst = [x for x in ours if isinstance(x, (nn.Linear, nn.BatchNorm1d))]
    with torch.no_grad():
        for a, c in zip(src, dst, strict=True):
            if a.weight is not None:
                c.weight.copy_(a.weight)
            if c.bias is not None:
                c.bias.copy_(a.bias if a.bias is not None else torch.randn_like(c.bias))
    h = torch.randn(9, 8)
    assert torch.allclose(ours(h), theirs(h), atol=1e-5)


# ---------------------------------------------------------------- real data: digits

RUNS = {  # short runs that clear the floor by 3 points or more on seeds 0 and 1 (measured; seed 0 tested)
    "byol": [("pretrain.epochs", 10), ("method.proj_hidden_dim", 512), ("method.proj_dim", 128),
             ("method.pred_hidden_dim", 512)],
    "simsiam": [("pretrain.epochs", 8), ("method.proj_hidden_dim", 256), ("method.proj_dim", 256),
                ("method.pred_hidden_dim", 64)],
}


def linear_probe(run):
    """The suite's linear probe on the method's current encoder: (top-1, the context with its cached features)."""
    from sslbench.plugins import PROTOCOLS
    from sslbench.protocols.base import EvalContext

    ctx = EvalContext(run.method, run.info, {"train": run.train, "test": run.test}, run.device, seed=run.cfg.seed)
    return PROTOCOLS.get("linear")(run.cfg.protocols["linear"]).run(ctx)["top1"].value, ctx


def normalized_std(x: torch.Tensor) -> float:
    """SimSiam Fig. 2: the per-channel std over samples of x / |x|, averaged over channels (0: collapsed)."""
    return float(F.normalize(x, dim=1).std(dim=0).mean())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["byol", "simsiam"])
def test_digits_loss_falls_probe_beats_random_init_no_collapse(data_root: Path, method: str):
    """A short run on the real digits (build_run + the engine, as `sslbench run`): the loss falls, the linear probe
    beats the same encoder at its random initialisation (baseline.random's encoder: same seed, built first), and
    the l2-normalised outputs keep their spread over the test images (SimSiam Fig. 2: 0 is collapse)."""
    from sslbench.build import RunOptions, build_run
    from sslbench.suites import build_run_config

    cfg, cls, _ = build_run_config(method, "digits-linear", [("pretrain.threads", 1), *RUNS[method]], seed=0)
    run = build_run(cfg, cls, RunOptions(data_root=data_root, progress=False))
    floor, ctx0 = linear_probe(run)  # the encoder as initialised: the random-init floor
    h0, _ = ctx0.features("test")
    result = run.trainer.fit()
    assert result.status == "ok", result.error
    losses = [loss for _, loss in result.loss_history]
    spe = round(result.total_steps / result.epochs)
    first, last = sum(losses[:spe]) / spe, sum(losses[-spe:]) / spe
    assert last < first - 0.2, losses  # BYOL starts near 4 (2 + 2 per direction), SimSiam near 0
    got, ctx = linear_probe(run)
    assert got >= floor + 1.5, (got, floor)

    h, _ = ctx.features("test")  # encoder features, evaluation mode
    with torch.no_grad():
        z = run.method.eval().projector(h.to(run.device))
    d = z.shape[1]
    print(f"{method}: loss {first:.3f} -> {last:.3f}, linear {floor:.2f} -> {got:.2f}, std(z/|z|) "
          f"{normalized_std(z):.4f} (1/sqrt({d}) = {d ** -0.5:.4f}), std(h/|h|) {normalized_std(h0):.4f} -> "
          f"{normalized_std(h):.4f}")
    assert normalized_std(z) > 0.5 / math.sqrt(d)  # collapsed outputs give 0; well spread about 1/sqrt(d)
    assert normalized_std(h) > 0.5 * normalized_std(h0)  # the representation kept (at least half) its spread

    if method == "simsiam":  # the predictor's lr stayed at the base lr; the rest followed the cosine schedule
        opt, tr = run.trainer.optimizer, run.trainer
        factor = lr_factor(tr.step - 1, tr.total_steps, tr.warmup, tr.cfg.schedule)
        assert opt.param_groups[1]["fix_lr"] and opt.param_groups[1]["lr"] == tr.base_lrs[1]
        assert opt.param_groups[0]["lr"] == pytest.approx(tr.base_lrs[0] * factor) and factor < 0.01
