"""Contrastive losses. One InfoNCE serves in-batch (SimCLR), queue (MoCo) and bank (InstDisc) negatives;
its many-positive form (:func:`supcon`) serves labels (SupCon, SCL); :func:`triplet_margin_loss` is the margin
alternative on the same in-batch negatives (SimCLR's ``loss: triplet``).

InfoNCE (Oord et al. 2018, arXiv 1807.03748), in the form used by SimCLR's NT-Xent
(Chen et al. 2020, arXiv 2002.05709, Eq. 1) and MoCo (He et al. 2019, Eq. 1)::

    l_i = -log  exp(sim(a_i, p_i)/t) / ( exp(sim(a_i, p_i)/t) + sum_{n in N_i} exp(sim(a_i, n)/t) )

with sim the cosine similarity and N_i the negatives of anchor i.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = 0.1,
    in_batch: bool | str = True,
    normalize: bool = True,
    reduction: str = "mean",
    negative_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE of each anchor against its positive.

    anchors:   N x D
    positives: N x D, row i is the positive of anchor i
    negatives: K x D shared by every anchor (a queue), or N x K x D per anchor (bank samples), or None
    in_batch:  also use the batch as negatives: True, every other anchor and every other positive
               (2N - 2 per anchor, SimCLR's NT-Xent when averaged over both directions); "positives",
               every other anchor's positive only (N - 1 per anchor: SimCSE, Gao et al. 2021, Eq. 1)
    negative_index: int64 N x K, with 2-D ``negatives`` (M x D candidates): anchor i's negatives are the rows
               ``negative_index[i]`` of the candidates (sampled per anchor, CPC's draws from the batch's frames).
               Equal to passing the gathered N x K x D ``negatives[negative_index]`` (tested, values and
               gradients) without gathering them: the N x M scores are one product and the K columns of each
               row are picked from it (N x M transient, against N x K x D gathered floats)
    returns:   scalar (reduction "mean") or N losses ("none")

    Memory: the logits are built once (N x C, C candidates): 1/t is folded into the N x D
    anchors instead of scaling a copy of the logits, the negatives are not copied to normalise
    them (their similarities are divided by their norms), and the N x K block is released once
    concatenated. What stays is counted by :func:`info_nce_logit_bytes`.
    """
    if normalize:
        anchors = F.normalize(anchors, dim=-1)
        positives = F.normalize(positives, dim=-1)
    n = anchors.shape[0]
    scaled = anchors / temperature  # (a / t) . b == (a . b) / t, on N x D rather than N x C
    if in_batch not in (True, False, "positives"):
        raise ValueError(f"info_nce: in_batch must be True, False or 'positives', got {in_batch!r}")
    if in_batch == "positives":  # columns: the positives, col i is anchor i's own
        logits = scaled @ positives.T
        target = torch.arange(n, device=anchors.device)
    elif in_batch:
        # columns: positives (0..N-1, col i is anchor i's positive), then anchors (self masked out)
        logits = scaled @ torch.cat([positives, anchors], dim=0).T
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(n), n + torch.arange(n)] = True
        logits = logits.masked_fill_(self_mask, float("-inf"))  # in place: mm keeps no copy of its output
        target = torch.arange(n, device=anchors.device)
    else:
        logits = (scaled * positives).sum(-1, keepdim=True)
        target = torch.zeros(n, dtype=torch.long, device=anchors.device)
    if negative_index is not None and (negatives is None or negatives.dim() != 2):
        raise ValueError("info_nce: negative_index needs 2-D negatives (the M x D candidates it indexes)")
    if negatives is not None:
        norms = torch.linalg.vector_norm(negatives, dim=-1).clamp_min(1e-12) if normalize else None
        if negative_index is not None:
            neg = (scaled @ negatives.T).gather(1, negative_index)  # N x M scores -> the N x K sampled columns
            norms = None if norms is None else norms[negative_index]
        elif negatives.dim() == 2:
            neg = scaled @ negatives.T  # N x K
        else:
            neg = torch.einsum("nd,nkd->nk", scaled, negatives)
        if norms is not None:  # cosine similarity without an F.normalize copy of the (K or N x K) x D negatives
            neg = neg / norms
        logits = torch.cat([logits, neg], dim=1)
        del neg
    return F.cross_entropy(logits, target, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views of N pairs (Chen et al. 2020, Alg. 1).

    z1, z2: N x D projections of the two views. Each of the 2N views is an anchor
    with one positive and 2N - 2 in-batch negatives; the loss is the mean over all 2N.
    """
    return 0.5 * (info_nce(z1, z2, temperature=temperature) + info_nce(z2, z1, temperature=temperature))


# ---------------------------------------------------------------- margin losses on the same in-batch negatives

TRIPLET_MINING = ("all", "hardest")


def triplet_margin_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    margin: float = 0.1,
    mining: str = "all",
    soft: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Triplet margin loss over :func:`info_nce`'s in-batch candidates (FaceNet, Schroff et al. 2015, arXiv
    1503.03832, Eq. 1), with the cosine distance d(x, y) = 1 - cos(x, y).

    anchors:   N x D
    positives: N x D, row i is the positive of anchor i
    negatives: of anchor i, every other anchor and every other positive (2N - 2), as ``info_nce(in_batch=True)``
    mining:    "all": every (i, n) pair, l_i = mean_n relu(d(a_i, p_i) - d(a_i, n) + margin);
               "hardest": the closest negative only, l_i = relu(d(a_i, p_i) - min_n d(a_i, n) + margin)
               ("batch hard", Hermans et al. 2017, arXiv 1703.07737, Eq. 5, with one positive per anchor)
    soft:      softplus instead of relu (Hermans et al. 2017, Sec. 2 "soft-margin"; pytorch-metric-learning's
               ``smooth_loss``, which keeps the margin inside: softplus(d_ap - d_an + margin))
    returns:   scalar (reduction "mean": the plain mean over anchors of l_i, i.e. over all N (2N - 2) triplets
               under "all", zero-loss triplets included) or N losses ("none")

    Averaged over both directions (``0.5 * (f(z1, z2) + f(z2, z1))``) this is the mean over the 2N views of
    NT-Xent's batch (:func:`nt_xent`) with the same 2N - 2 negatives each: pytorch-metric-learning's
    ``TripletMarginLoss(distance=CosineSimilarity(), reducer=MeanReducer())`` on the 2N views labelled by
    sample (tested; its default reducer, ``AvgNonZeroReducer``, averages over the non-zero triplets only).
    Memory: N x 2N similarities, as :func:`info_nce`'s logits.
    """
    if mining not in TRIPLET_MINING:
        raise ValueError(f"triplet_margin_loss: mining must be one of {', '.join(TRIPLET_MINING)}, got {mining!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"triplet_margin_loss: reduction must be mean or none, got {reduction!r}")
    n = anchors.shape[0]
    if n < 2:
        raise ValueError(f"triplet_margin_loss: needs at least 2 anchors (in-batch negatives), got {n}")
    a, p = F.normalize(anchors, dim=-1), F.normalize(positives, dim=-1)
    dtype = torch.promote_types(a.dtype, torch.float32)  # fp32 at least under autocast, as cross-entropy
    pos_sim = (a * p).sum(-1).to(dtype)  # N: cos(a_i, p_i)
    sim = (a @ torch.cat([p, a], dim=0).T).to(dtype)  # N x 2N: columns as info_nce's in-batch logits
    keep = torch.ones_like(sim, dtype=torch.bool)
    rows = torch.arange(n, device=a.device)
    keep[rows, rows] = False  # anchor i's own positive
    keep[rows, n + rows] = False  # anchor i itself
    neg_sim = sim[keep].view(n, 2 * n - 2)  # N x (2N - 2)
    # d(a, p) - d(a, n) = cos(a, n) - cos(a, p)
    if mining == "hardest":
        violation = neg_sim.max(dim=1).values - pos_sim + margin  # N
    else:
        violation = neg_sim - pos_sim[:, None] + margin  # N x (2N - 2)
    losses = F.softplus(violation) if soft else F.relu(violation)
    if mining == "all":
        losses = losses.mean(dim=1)
    return losses.mean() if reduction == "mean" else losses


# ---------------------------------------------------------------- many positives per anchor (SupCon, SCL)


def multi_positive_nll(logits: torch.Tensor, pos_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with any number of positives per anchor: the mean over an anchor's positives of -log softmax.

    logits:   N x C similarities already divided by the temperature; candidates an anchor must not be
              compared with (itself) hold -inf and are out of every denominator
    pos_mask: N x C bool, True where column c is a positive of anchor i (never a -inf column)
    returns:  (N losses, N bool ``has_pos``); an anchor without a positive has loss 0 and has_pos False

    With exactly one positive per row this is ``F.cross_entropy(logits, target, reduction="none")``, the
    single-positive form :func:`info_nce` uses.
    """
    log_prob = torch.log_softmax(logits, dim=1)
    # where(), not pos_mask * log_prob: 0 * -inf on the masked self column would be nan
    picked = torch.where(pos_mask, log_prob, torch.zeros((), dtype=log_prob.dtype, device=log_prob.device))
    count = pos_mask.sum(1)
    has_pos = count > 0
    return -picked.sum(1) / count.clamp_min(1).to(log_prob.dtype), has_pos


def supcon(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """Supervised contrastive loss, L^sup_out (Khosla et al. 2020, arXiv 2004.11362, Eq. 2).

    z:       N x D embeddings (every view of every sample as its own row; normalised here unless
             ``normalize`` is False, then they must already be unit length)
    labels:  int N; the positives of anchor i are all j != i with labels[j] == labels[i]
    returns: reduction "mean": scalar, the mean over anchors that have at least one positive;
             "sum": scalar, the sum over all anchors; "none": N losses (0 for anchors without a positive)

    Per anchor i, with P(i) its positives and A(i) every other row (the anchor is in neither)::

        l_i = -1/|P(i)| sum_{p in P(i)} log  exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t)

    Eq. 2 sums l_i over all anchors and leaves |P(i)| = 0 undefined; here such an anchor contributes
    0 and, under "mean", is left out of the count as well (pytorch-metric-learning's ``SupConLoss``
    does the same through its non-zero average), so a class of one in the batch changes nothing.
    If no anchor has a positive the mean is 0 (connected to z, so backward still works).

    The logits are built as :func:`info_nce` builds its in-batch ones (1/t folded into the N x D
    anchors, the self column masked with -inf); with two views of N samples labelled 0..N-1 each
    anchor has one positive and this is NT-Xent (:func:`nt_xent`).
    """
    if z.dim() != 2 or labels.dim() != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(f"supcon: z must be N x D and labels N, got {tuple(z.shape)} and {tuple(labels.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"supcon: reduction must be mean, sum or none, got {reduction!r}")
    if normalize:
        z = F.normalize(z, dim=-1)
    n = z.shape[0]
    logits = (z / temperature) @ z.T
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    pos_mask = (labels[:, None] == labels[None, :]) & ~eye
    losses, has_pos = multi_positive_nll(logits, pos_mask)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / has_pos.sum().clamp_min(1).to(losses.dtype)


def info_nce_logit_bytes(batch: int, num_candidates: int, dtype_bytes: int = 4, calls: int = 1) -> int:
    """Peak bytes the logits of :func:`info_nce` hold: N x (1 + candidates) values per tensor.

    During the backward pass of one call three such tensors are alive at once: the
    log-softmax output that cross-entropy saves, the gradient nll_loss writes into it (dense
    N x C) and the gradient log_softmax_backward returns (the forward peak is two: the logits
    and their log-softmax). Each further call before the backward pass (``calls``, e.g. 2 for
    NT-Xent's two directions) adds its saved log-softmax output. Not counted: the negatives
    themselves (a queue, a bank, gathered samples or, for in-batch negatives, the views'
    activations), which the method adds.
    """
    copies = 3 + max(0, calls - 1)
    return copies * batch * (1 + num_candidates) * dtype_bytes


# ---------------------------------------------------------------- memory floors of in-batch negatives


def saved_activation_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for backward in ``module(x)``, each storage once, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(seen.values())


def per_sample_activation_bytes(module: nn.Module, input_shape: Sequence[int] | Callable[[int, torch.Generator], Any]) -> int:
    """Activation bytes autograd keeps per input sample of ``module`` in training mode (float32, CPU).

    ``input_shape``: one sample's shape (random inputs are drawn), or a function ``(batch, generator) ->
    inputs`` for inputs that are not tensors of a fixed shape (a modality's ``probe_batch``: sentences).
    Traced on a copy (the module's BN statistics are untouched) at batch 2 and 4; the
    difference halved leaves out what does not grow with the batch.
    """
    net = copy.deepcopy(module).float().cpu().train()
    g = torch.Generator().manual_seed(0)
    make = input_shape if callable(input_shape) else (lambda b, gen: torch.rand(b, *input_shape, generator=gen))
    sizes = [saved_activation_bytes(net, make(b, g)) for b in (2, 4)]
    return max(0, (sizes[1] - sizes[0]) // 2)
