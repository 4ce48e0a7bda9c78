"""SupCon (Khosla et al. 2020) and SCL (Gunel et al. 2021): naive transcriptions, a peer implementation,
the gradient into the encoder and a short real fine-tune (fast, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslbench.components.losses import nt_xent, supcon
from sslbench.data.base import DataInfo

torch.set_num_threads(1)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def naive_supcon_terms(z: torch.Tensor, y: list[int], t: float) -> list[float | None]:
    """Khosla et al. Eq. 2 (L^sup_out), one anchor at a time; None for an anchor without a positive."""
    n = len(y)
    out: list[float | None] = []
    for i in range(n):
        pos = [p for p in range(n) if p != i and y[p] == y[i]]
        if not pos:
            out.append(None)
            continue
        denom = sum(math.exp(_cos(z[i], z[a]) / t) for a in range(n) if a != i)
        out.append(-sum(math.log(math.exp(_cos(z[i], z[p]) / t) / denom) for p in pos) / len(pos))
    return out


def naive_gunel_scl(z: torch.Tensor, y: list[int], t: float) -> float:
    """Gunel et al. Eq. 2: sum_i -1/(N_{y_i}-1) sum_{j != i, y_j = y_i} log(exp(s_ij/t) / sum_{k != i} exp(s_ik/t)),
    on L2-normalised embeddings; a class of one has an empty inner sum (0). Divided by N (our normalisation)."""
    n = len(y)
    zn = [z[i] / z[i].norm() for i in range(n)]
    total = 0.0
    for i in range(n):
        n_yi = sum(1 for j in range(n) if y[j] == y[i])
        inner = 0.0
        for j in range(n):
            if j == i or y[j] != y[i]:
                continue
            denom = sum(math.exp(float(zn[i] @ zn[k]) / t) for k in range(n) if k != i)
            inner += math.log(math.exp(float(zn[i] @ zn[j]) / t) / denom)
        if n_yi > 1:
            total += -inner / (n_yi - 1)
    return total / n


LABEL_SETS = [
    [0, 0, 1, 1, 2, 2],
    [0, 1, 1, 2, 2, 2, 3],  # classes 0 and 3 have one member
    [3, 3, 3, 3, 1],  # class 1 has one member
    [0, 1, 0, 2, 1, 0, 4, 2, 2, 1, 0, 5],
]


@pytest.mark.parametrize("labels", LABEL_SETS)
@pytest.mark.parametrize("t", [0.07, 0.3, 1.0])
def test_supcon_matches_khosla_eq2(labels, t):
    g = torch.Generator().manual_seed(len(labels) * 7 + int(t * 100))
    z = torch.randn(len(labels), 5, generator=g, dtype=torch.float64)
    y = torch.tensor(labels)
    terms = naive_supcon_terms(z, labels, t)
    per = supcon(z, y, temperature=t, reduction="none")
    for got, want in zip(per.tolist(), terms, strict=True):
        assert got == pytest.approx(0.0 if want is None else want, rel=1e-9, abs=1e-12)
    valid = [v for v in terms if v is not None]
    assert supcon(z, y, temperature=t).item() == pytest.approx(sum(valid) / len(valid), rel=1e-9)
    assert supcon(z, y, temperature=t, reduction="sum").item() == pytest.approx(sum(valid), rel=1e-9)


def test_supcon_with_one_positive_each_is_nt_xent():
    """Two views of N samples, labelled by sample: one positive per anchor, the single-positive InfoNCE."""
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    y = torch.arange(6).repeat(2)
    torch.testing.assert_close(supcon(torch.cat([z1, z2]), y, temperature=0.5), nt_xent(z1, z2, 0.5))


def test_supcon_without_any_positive_is_zero_and_differentiable():
    z = torch.randn(4, 3, requires_grad=True)
    loss = supcon(z, torch.arange(4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


@pytest.mark.parametrize("labels", LABEL_SETS)
@pytest.mark.parametrize("t", [0.1, 0.5])
def test_supcon_matches_pytorch_metric_learning(labels, t):
    """Peer: pytorch-metric-learning's SupConLoss (cosine similarity, so it normalises raw embeddings inside;
    temperature divides the similarities; the mean is over anchors with a non-zero loss, i.e. with a
    positive). Values and gradients with respect to the raw embeddings."""
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(len(labels) + int(10 * t))
    raw = (3 * torch.randn(len(labels), 7, generator=g, dtype=torch.float64)).requires_grad_(True)
    peer_raw = raw.detach().clone().requires_grad_(True)
    y = torch.tensor(labels)
    ours = supcon(raw, y, temperature=t)
    theirs = pml.SupConLoss(temperature=t)(peer_raw, y)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(raw.grad, peer_raw.grad)


# ---------------------------------------------------------------- SCL


def _scl(lam: float, temperature: float = 0.3, encoder: torch.nn.Module | None = None):
    from sslbench.plugins import load_method_class

    cls = load_method_class("scl")
    info = DataInfo(name="synthetic", modality="image", num_classes=3, classes=list("abc"), channels=1,
                    image_size=8, mean=(0.5,), std=(0.25,))
    encoder = encoder or torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6))
    return cls(cls.Config(lam=lam, temperature=temperature), encoder, 6, info, 100)


@pytest.mark.parametrize("labels", LABEL_SETS)
@pytest.mark.parametrize("t", [0.1, 0.3, 0.7])
def test_scl_term_matches_gunel_eq2(labels, t):
    g = torch.Generator().manual_seed(len(labels) * 11 + int(t * 10))
    feats = torch.randn(len(labels), 9, generator=g, dtype=torch.float64)
    y = torch.tensor(labels)
    logits = torch.randn(len(labels), max(labels) + 1, generator=g, dtype=torch.float64)
    want = naive_gunel_scl(feats, labels, t)
    method = _scl(1.0, t)
    assert method.finetune_loss(logits, feats, y).item() == pytest.approx(want, rel=1e-9)
    mixed = _scl(0.9, t).finetune_loss(logits, feats, y).item()
    assert mixed == pytest.approx(0.1 * F.cross_entropy(logits, y).item() + 0.9 * want, rel=1e-9)


def test_lambda_zero_is_cross_entropy_exactly():
    from sslbench.plugins import load_method_class

    cls = load_method_class("scl")
    assert cls.variants["ce"] == {"lam": 0.0}
    assert cls.Config().lam == 0.9 and cls.Config().temperature == 0.3
    g = torch.Generator().manual_seed(0)
    logits, feats, y = torch.randn(10, 3, generator=g), torch.randn(10, 6, generator=g), torch.arange(10) % 3
    assert torch.equal(_scl(0.0).finetune_loss(logits, feats, y), F.cross_entropy(logits, y))


def test_bad_config_is_refused():
    from sslbench.errors import ConfigError

    with pytest.raises(ConfigError, match="method.lam"):
        _scl(1.5)
    with pytest.raises(ConfigError, match="method.temperature"):
        _scl(0.5, temperature=0.0)


def test_scl_term_reaches_the_encoder():
    """lam = 1: cross-entropy contributes nothing, so every gradient on the encoder is the SCL term's
    (a detached SCL term, as in one public reproduction, would leave these gradients at None / zero)."""
    torch.manual_seed(0)
    method = _scl(1.0)
    head = torch.nn.Linear(6, 3)
    x = torch.rand(12, 1, 8, 8)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0])
    h = method.finetune_features(x).flatten(1)
    loss = method.finetune_loss(head(h), h, y)
    loss.backward()
    for name, p in method.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no SCL gradient on encoder.{name}"
    assert all(p.grad is None for p in head.parameters())  # lam = 1: the head's CE is weighted 0
    # the same through a detached copy of the features: nothing reaches the encoder
    method.encoder.zero_grad(set_to_none=True)
    h = method.finetune_features(x).flatten(1)
    detached = method.finetune_loss(head(h), h.detach(), y)
    assert not detached.requires_grad or all(p.grad is None for p in method.encoder.parameters())


def test_training_step_warns_and_trains_nothing():
    from sslbench.method import Batch

    method = _scl(0.9)
    x = torch.rand(4, 1, 8, 8)
    with pytest.warns(UserWarning, match="pretrain.epochs=0"):
        loss = method.training_step(Batch(views=[x, x], index=torch.arange(4))).loss
    loss.backward()
    assert all(p.grad is None for p in method.parameters())


@pytest.mark.parametrize("method_name", ["scl", "scl.ce"])
def test_few_shot_finetune_on_digits(method_name, data_root):
    """The few_shot protocol with head: finetune on the real digits data, N = 50, one subset seed."""
    from sslbench.build import RunOptions, build_method, load_run_data, train_split
    from sslbench.protocols.base import EvalContext
    from sslbench.protocols.few_shot import FewShot
    from sslbench.suites import build_run_config

    cfg, cls, _ = build_run_config(method_name, "digits-fewshot", [("pretrain.epochs", 0)], seed=0)
    info, splits = load_run_data(cfg, RunOptions(data_root=data_root))
    train = train_split(cfg, info, splits)
    torch.manual_seed(0)
    method = build_method(cfg, cls, info, train)
    assert method.cfg.lam == (0.0 if method_name == "scl.ce" else 0.9)
    ctx = EvalContext(method, info, {"train": train, "test": splits[cfg.dataset.test]}, torch.device("cpu"),
                      seed=0)
    out = FewShot(FewShot.Config(n=[50], repeats=1, head="finetune", epochs=15, batch_size=25, lr=3e-3)).run(ctx)
    acc = out["acc@n50"].value
    assert acc > 60.0, f"{method_name}: {acc:.1f}% from 50 labelled digits (chance 10%; about 85% seen)"
