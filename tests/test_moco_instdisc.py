"""MoCo and InstDisc: losses against naive transcriptions of the papers, momentum update, queue and bank,
views, checkpoint round-trip, and CLI smoke runs on the real digits data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from torch import nn

from sslbench.components.losses import info_nce
from sslbench.components.memory import KeyQueue, MemoryBank, momentum_update
from sslbench.data.base import DataInfo
from sslbench.method import Batch
from sslbench.plugins import load_method_class
from sslbench.suites import build_run_config
from sslbench.views.image import BatchedImageViews, ImageViewConfig

# through the registry (importing the modules before discovery would register them twice)
MoCo = load_method_class("moco")
InstDisc = load_method_class("instdisc")

TOY = DataInfo(name="toy", modality="image", num_classes=2, classes=["a", "b"], channels=3, image_size=4)


def linear_encoder() -> tuple[nn.Module, int]:
    """No BN: a sample's features do not depend on the rest of the batch (exact comparisons)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16)), 16


def bn_encoder() -> tuple[nn.Module, int]:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten()), 8


def make_moco(encoder=linear_encoder, seed: int = 0, **cfg) -> MoCo:
    torch.manual_seed(seed)
    enc, dim = encoder()
    c = MoCo.Config(**{"queue_size": 10, "proj_hidden_dim": 12, "proj_dim": 8, **cfg})
    return MoCo(c, enc, dim, TOY, train_size=100)


def make_instdisc(train_size: int = 50, seed: int = 0, **cfg) -> InstDisc:
    torch.manual_seed(seed)
    enc, dim = linear_encoder()
    c = InstDisc.Config(**{"num_negatives": 16, "proj_dim": 8, **cfg})
    return InstDisc(c, enc, dim, TOY, train_size=train_size)


def batch(n: int = 6, views: int = 2, seed: int = 1, dtype=torch.float32) -> Batch:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, 3, 4, 4, generator=g, dtype=dtype) for _ in range(views)]
    return Batch(views=xs, index=torch.randperm(50, generator=g)[:n])


# ---------------------------------------------------------------- MoCo

def naive_moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """MoCo Alg. 1 per query: logits = cat(l_pos, l_neg) / t, cross-entropy with label 0 (q, k, queue unit)."""
    total = 0.0
    for i in range(q.shape[0]):
        logits = [float(q[i] @ k[i]) / t] + [float(q[i] @ key) / t for key in queue]
        total += -(logits[0] - math.log(sum(math.exp(v) for v in logits)))
    return total / q.shape[0]


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_moco_loss_with_queue_matches_info_nce_and_alg1(variant):
    m = make_moco(**MoCo.variants[variant]).double()
    m.queue.keys.copy_(F.normalize(m.queue.keys, dim=1))  # unit in float64, not only in float32
    m.train()
    m.training_step(batch(seed=5, dtype=torch.float64))  # fill part of the queue with real keys
    m.after_step(1, 1)
    b = batch(dtype=torch.float64)
    out = m.training_step(b)
    x1, x2 = b.views
    with torch.no_grad():
        q = F.normalize(m.head(m.encoder(x1)), dim=1)
        k = F.normalize(m.key_head(m.key_encoder(x2)), dim=1)
    assert torch.allclose(m._pending[0], k, atol=1e-12)  # the keys kept for the queue
    negs = m.queue.keys.clone()
    t = m.cfg.temperature
    assert out.loss.item() == pytest.approx(info_nce(q, k, negs, temperature=t, in_batch=False).item(), rel=1e-9)
    assert out.loss.item() == pytest.approx(naive_moco_loss(q, k, negs, t), rel=1e-9)
    assert m.num_negatives(6) == 10 and m.negatives_memory_bytes(6) > 0


def test_moco_momentum_update_and_no_gradient_to_key_encoder():
    m = make_moco(bn_encoder, momentum=0.9)
    m.train()
    opt = torch.optim.AdamW(m.parameter_groups(), lr=0.1)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    key_params = [*m.key_encoder.parameters(), *m.key_head.parameters()]
    assert key_params and all(not p.requires_grad and id(p) not in in_opt for p in key_params)
    assert {id(p) for p in [*m.encoder.parameters(), *m.head.parameters()]} <= in_opt

    out = m.training_step(batch())
    opt.zero_grad()
    out.loss.backward()
    assert all(p.grad is None for p in key_params)
    opt.step()
    q_params = [p.detach().clone() for p in [*m.encoder.parameters(), *m.head.parameters()]]
    k_before = [p.detach().clone() for p in key_params]
    assert any(not torch.equal(q, k) for q, k in zip(q_params, k_before, strict=True))  # the step moved f_q
    m.after_step(1, 1)
    for kb, q, k in zip(k_before, q_params, key_params, strict=True):
        assert torch.equal(k, 0.9 * kb + (1 - 0.9) * q)
    for bq, bk in zip(m.encoder.buffers(), m.key_encoder.buffers(), strict=True):
        assert torch.equal(bq, bk)  # BN running statistics copied


def test_momentum_update_standalone_formula():
    torch.manual_seed(0)
    online, target = nn.Linear(5, 3), nn.Linear(5, 3)
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(online, target, 0.99)
    for b, q, k in zip(before, online.parameters(), target.parameters(), strict=True):
        assert torch.equal(k, 0.99 * b + (1 - 0.99) * q.detach())


def test_key_queue_holds_last_k_in_order_after_wraparound():
    queue = KeyQueue(7, 2)
    fed: list[torch.Tensor] = []
    counter = 0

    def feed(b: int) -> None:
        nonlocal counter
        keys = torch.arange(counter, counter + b, dtype=torch.float32)[:, None].repeat(1, 2)
        counter += b
        fed.extend(keys)
        queue.enqueue(keys)
        n = min(len(fed), 7)
        assert torch.equal(queue.ordered()[-n:], torch.stack(fed[-n:]))

    for _ in range(6):  # 18 keys into K=7: wraps around, 3 does not divide 7
        feed(3)
    assert torch.equal(queue.ordered(), torch.stack(fed[-7:]))
    for b in (10, 3, 7, 2, 15, 3):  # B > K, B == K, and back to small batches
        feed(b)
        assert torch.equal(queue.ordered(), torch.stack(fed[-7:]))
    assert queue.nbytes() == 7 * 2 * 4


def test_key_queue_initialised_with_unit_vectors():
    q = KeyQueue(16, 8)
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(16)) and int(q.ptr) == 0


def test_moco_state_dict_round_trip_resumes_exactly(tmp_path: Path):
    a = make_moco(bn_encoder, momentum=0.9, seed=0)
    a.train()
    for s in range(3):
        a.training_step(batch(seed=s))
        a.after_step(1, 1)
    assert int(a.queue.ptr) == 18 % 10
    torch.save(a.state_dict(), tmp_path / "ckpt.pt")
    b = make_moco(bn_encoder, momentum=0.9, seed=123)
    b.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    b.train()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and any(k.startswith("queue.") for k in sa) \
        and any(k.startswith("key_encoder.") for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # the next step is the same on both
    losses = []
    for m in (a, b):
        torch.manual_seed(7)
        losses.append(m.training_step(batch(seed=9)).loss.item())
        m.after_step(1, 1)
    assert losses[0] == losses[1]
    assert torch.equal(a.queue.keys, b.queue.keys) and torch.equal(a.queue.ptr, b.queue.ptr)


def test_moco_symmetric_uses_two_queues():
    m = make_moco(symmetric=True)
    out = m.training_step(batch())
    assert torch.isfinite(out.loss)
    m.after_step(1, 1)
    assert int(m.queue.ptr) == 6 and int(m.queue_sym.ptr) == 6
    assert not torch.equal(m.queue.ordered()[-6:], m.queue_sym.ordered()[-6:])


def test_shuffle_bn_groups_change_key_statistics():
    """With BN, keys encoded in shuffled sub-batches differ from one full-batch pass; one group equals it."""
    b = batch(n=8)
    keys = {}
    for g in (1, 2):
        m = make_moco(bn_encoder, shuffle_bn_groups=g)
        m.train()
        keys[g] = m._keys(b.views[1])
        full = F.normalize(m.key_head(m.key_encoder(b.views[1])), dim=1)
    assert torch.allclose(keys[1], full, atol=1e-6)
    assert not torch.allclose(keys[2], full, atol=1e-4)


# ---------------------------------------------------------------- InstDisc

def test_memory_bank_update_formula():
    bank = MemoryBank(20, 4)
    assert torch.allclose(bank.memory.norm(dim=1), torch.ones(20))
    before = bank.memory.clone()
    idx = torch.tensor([3, 7, 0])
    f = torch.randn(3, 4)
    bank.update(idx, f, momentum=0.5)
    assert torch.equal(bank.get(idx), F.normalize(0.5 * before[idx] + (1 - 0.5) * f, dim=1))
    rest = torch.ones(20, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(bank.memory[rest], before[rest])
    assert bank.nbytes() == 20 * 4 * 4


def test_instdisc_after_step_updates_bank_with_momentum():
    m = make_instdisc(bank_momentum=0.3)
    b = batch(views=1)
    before = m.bank.memory.clone()
    m.training_step(b)
    v = F.normalize(m.head(m.encoder(b.views[0])), dim=1).detach()
    m.after_step(1, 1)
    assert torch.allclose(m.bank.get(b.index), F.normalize(0.3 * before[b.index] + 0.7 * v, dim=1), atol=1e-7)


def test_instdisc_negative_sampling_in_range_deterministic_and_varies():
    m = make_instdisc(train_size=50)
    torch.manual_seed(3)
    a, b = m.sample_negatives(5), m.sample_negatives(5)
    assert a.shape == (5, 16) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 50 and int(b.min()) >= 0 and int(b.max()) < 50
    assert not torch.equal(a, b)
    torch.manual_seed(3)
    assert torch.equal(m.sample_negatives(5), a)  # seeded by the global RNG: resumable


def test_instdisc_loss_matches_naive_softmax():
    m = make_instdisc().double()
    m.bank.update(torch.arange(50), torch.randn(50, 8, dtype=torch.float64))  # a non-random bank
    b = batch(views=1, dtype=torch.float64)
    torch.manual_seed(11)
    loss = m.training_step(b).loss.item()
    torch.manual_seed(11)
    neg_idx = m.sample_negatives(6)
    t = m.cfg.temperature
    with torch.no_grad():
        v = F.normalize(m.head(m.encoder(b.views[0])), dim=1)
    mem = m.bank.memory
    total = 0.0
    for i in range(6):
        pos = math.exp(float(v[i] @ mem[b.index[i]]) / t)
        neg = sum(math.exp(float(v[i] @ mem[j]) / t) for j in neg_idx[i])
        total += -math.log(pos / (pos + neg))
    assert loss == pytest.approx(total / 6, rel=1e-9)
    assert m.views("base") == ["base"]
    assert m.num_negatives(6) == 16
    # bank + gathered negatives + the logits the loss keeps at its peak (info_nce_logit_bytes: 3 x N x (1+K))
    assert m.negatives_memory_bytes(6) == 50 * 8 * 4 + 6 * 16 * 8 * 4 + 3 * 6 * 17 * 4


# ---------------------------------------------------------------- torch.distributed (2 CPU processes, gloo)

def _ddp_worker(rank: int, world: int, port: int) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(100 + rank)
        x = torch.randn(4, 3, 4, 4)
        xs = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(xs, x)
        # BN-free: the cross-rank shuffle and un-shuffle give back this rank's own keys
        m = make_moco(seed=0)
        assert torch.allclose(m._keys(x), F.normalize(m.key_head(m.key_encoder(x)), dim=1), atol=1e-6)
        # with BN: each rank encodes its slice of the permuted global batch (MoCo's _batch_shuffle_ddp)
        mb = make_moco(bn_encoder, seed=0)
        torch.manual_seed(5)
        k = mb._keys(x)
        torch.manual_seed(5)
        perm = torch.randperm(4 * world)
        xall = torch.cat(xs)
        enc = torch.cat([mb._key_net(xall[perm.view(world, -1)[r]]) for r in range(world)])
        full = torch.empty_like(enc)
        full[perm] = enc
        assert torch.allclose(k, F.normalize(full, dim=1)[4 * rank:4 * rank + 4], atol=1e-5)
        # the queue and the bank store what every rank produced, identically on every rank
        m.training_step(Batch(views=[x, x], index=torch.arange(4)))
        keys = m._pending[0]
        m.after_step(1, 1)
        gathered = [torch.empty_like(keys) for _ in range(world)]
        dist.all_gather(gathered, keys)
        assert int(m.queue.ptr) == 4 * world
        assert torch.allclose(m.queue.ordered()[-4 * world:], torch.cat(gathered))
        d = make_instdisc(train_size=50)
        d.training_step(Batch(views=[x], index=torch.arange(4) + 4 * rank))
        d.after_step(1, 1)
        for buf in (m.queue.keys, d.bank.memory):
            copies = [torch.empty_like(buf) for _ in range(world)]
            dist.all_gather(copies, buf)
            assert torch.equal(copies[0], copies[1])
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_distributed_key_shuffle_and_gathered_queue_and_bank():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port), nprocs=2)


# ---------------------------------------------------------------- views

def _method_views(name: str, **views) -> list[ImageViewConfig]:
    cfg, cls, _ = build_run_config(name, "digits-linear")
    for k, v in views.items():
        setattr(cfg.views, k, v)
    enc, dim = linear_encoder()
    return cls(cfg.method_config, enc, dim, TOY, 100).views(cfg.views)


def _has_blur(recipe: ImageViewConfig) -> bool:
    import kornia.augmentation as K

    data = DataInfo(name="t", modality="image", num_classes=2, classes=["a", "b"], channels=3, image_size=32)
    return any(isinstance(a, K.RandomGaussianBlur) for a in BatchedImageViews(recipe, data).modules())


def test_moco_views_blur_by_variant():
    v1, v2 = _method_views("moco.v1"), _method_views("moco.v2")
    assert len(v1) == len(v2) == 2
    assert all(r.blur_p == 0 and not _has_blur(r) for r in v1)
    assert all(r.blur_p == 0.5 and _has_blur(r) for r in v2)  # digits-linear sets no blur: the paper's 0.5
    assert all(r.blur_p == 0.3 for r in _method_views("moco.v2", blur_p=0.3))  # the suite's blur is kept
    assert all(r.blur_p == 0 for r in _method_views("moco.v1", blur_p=0.3))


def test_batched_views_draw_per_sample_crops():
    data = DataInfo(name="t", modality="image", num_classes=2, classes=["a", "b"], channels=3, image_size=32)
    x = torch.rand(1, 3, 32, 32).repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    out = BatchedImageViews(ImageViewConfig(), data)(x)
    assert out.shape == (8, 3, 32, 32)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.allclose(out[i], out[j]), f"samples {i} and {j} got the same view"


# ---------------------------------------------------------------- CLI on real data

def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [
    ("moco.v2", ["--set", "pretrain.epochs=4", "--set", "method.queue_size=512"]),
    ("instdisc", ["--set", "pretrain.epochs=5", "--set", "method.num_negatives=1024"]),
])
def test_cli_smoke_run_learns(tmp_path: Path, data_root: Path, method: str, extra: list[str]):
    p = run_cli("run", method, "--suite", "digits-linear", "--quiet", "--out", str(tmp_path), *extra,
                "--set", "linear.epochs=5", "--set", "pretrain.threads=1", timeout=120)
    assert p.returncode == 0, p.stderr
    (path,) = tmp_path.glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "ok", rec.get("error")
    assert {"linear.top1", "knn.top1"} <= set(rec["metrics"])
    # The first losses are against random unit vectors (an empty queue, an untouched bank) and are the
    # lowest of the run; compare the last epoch with the first epoch whose negatives are all real keys.
    hist = rec["train"]["loss_history"]
    spe = round(rec["train"]["total_steps"] / rec["train"]["epochs"])
    warm = math.ceil(512 / 128) if method.startswith("moco") else spe  # steps to fill the queue / bank
    warm_window = [loss for step, loss in hist if warm < step <= warm + spe]
    last_window = [loss for step, loss in hist[-spe:]]
    assert _mean(last_window) < _mean(warm_window), hist
