"""NT-Xent / InfoNCE against a naive per-pair transcription of the papers' formulas, and against lightly (a peer)."""

from __future__ import annotations

import math

import pytest
import torch

from sslbench.components.losses import info_nce, nt_xent


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR Eq. 1 and Alg. 1, one pair at a time: l(i,j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t)."""
    z = torch.cat([z1, z2]).double()
    n2 = z.shape[0]
    n = n2 // 2

    def sim(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denom = sum(math.exp(sim(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(z[i], z[j]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (5, 8, 0.1), (8, 16, 1.0), (16, 4, 0.07), (3, 128, 0.2)])
def test_nt_xent_matches_naive_formula(n, d, t):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert nt_xent(z1, z2, t).item() == pytest.approx(naive_nt_xent(z1, z2, t), rel=1e-5, abs=1e-6)


def naive_info_nce(q, k, negs, t):
    """MoCo Eq. 1 per query: -log exp(q.k+/t) / (exp(q.k+/t) + sum_neg exp(q.n/t)), cosine similarities."""
    total = 0.0
    for i in range(q.shape[0]):
        qi = q[i] / q[i].norm()
        pos = math.exp(float(qi @ (k[i] / k[i].norm())) / t)
        rows = negs if negs.dim() == 2 else negs[i]
        neg = sum(math.exp(float(qi @ (r / r.norm())) / t) for r in rows)
        total += -math.log(pos / (pos + neg))
    return total / q.shape[0]


@pytest.mark.parametrize("shared", [True, False])
def test_info_nce_with_explicit_negatives(shared):
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(6, 10, generator=g).double(), torch.randn(6, 10, generator=g).double()
    negs = torch.randn(12, 10, generator=g).double() if shared else torch.randn(6, 5, 10, generator=g).double()
    got = info_nce(q, k, negs, temperature=0.2, in_batch=False).item()
    assert got == pytest.approx(naive_info_nce(q, k, negs, 0.2), rel=1e-9)


def test_nt_xent_gradient_pulls_positives_together():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 4, generator=g, requires_grad=True)
    z2 = (z1.detach() + 0.5 * torch.randn(8, 4, generator=g)).requires_grad_(True)
    opt = torch.optim.SGD([z1, z2], lr=0.5)
    before = nt_xent(z1, z2, 0.5).item()
    for _ in range(20):
        opt.zero_grad()
        nt_xent(z1, z2, 0.5).backward()
        opt.step()
    assert nt_xent(z1, z2, 0.5).item() < before - 0.1


# ---------------------------------------------------------------- lightly (a peer, in the test extra)


@pytest.mark.parametrize("n,t", [(4, 0.5), (16, 0.1)])
def test_nt_xent_matches_lightly_in_values_and_gradients(n, t):
    from lightly.loss import NTXentLoss

    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, 12, generator=g, dtype=torch.float64), torch.randn(n, 12, generator=g, dtype=torch.float64)
    ours_in = [z.clone().requires_grad_(True) for z in (z1, z2)]
    theirs_in = [z.clone().requires_grad_(True) for z in (z1, z2)]
    ours = nt_xent(*ours_in, temperature=t)
    theirs = NTXentLoss(temperature=t)(*theirs_in)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    for a, b in zip(ours_in, theirs_in, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_info_nce_on_a_queue_matches_lightly_with_a_memory_bank():
    """MoCo's form: lightly's NTXentLoss with a memory bank contrasts out0 against out1 and the bank's rows."""
    from lightly.loss import NTXentLoss

    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    peer = NTXentLoss(temperature=0.2, memory_bank_size=(32, 8)).double()
    _, bank = peer.memory_bank(k, update=False)  # its (random, unit) negatives: D x K
    theirs = peer(q, k)  # q without grad: the bank is not updated, the same negatives are used
    ours = info_nce(q, k, bank.T.to(q.dtype), temperature=0.2, in_batch=False)
    # lightly's random bank rows are unit vectors to float32 precision only; info_nce renormalises them, lightly
    # does not: ~1e-9 apart
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
