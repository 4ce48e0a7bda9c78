"""Contrastive losses. One InfoNCE serves in-batch (SimCLR), queue (MoCo) and bank (InstDisc) negatives.

InfoNCE (Oord et al. 2018, arXiv 1807.03748), in the form used by SimCLR's NT-Xent
(Chen et al. 2020, arXiv 2002.05709, Eq. 1) and MoCo (He et al. 2019, Eq. 1)::

    l_i = -log  exp(sim(a_i, p_i)/t) / ( exp(sim(a_i, p_i)/t) + sum_{n in N_i} exp(sim(a_i, n)/t) )

with sim the cosine similarity and N_i the negatives of anchor i.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = 0.1,
    in_batch: bool = True,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE of each anchor against its positive.

    anchors:   N x D
    positives: N x D, row i is the positive of anchor i
    negatives: K x D shared by every anchor (a queue), or N x K x D per anchor (bank samples), or None
    in_batch:  also use the batch as negatives: every other anchor and every other positive
               (2N - 2 per anchor, SimCLR's NT-Xent when averaged over both directions)
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
    if in_batch:
        # columns: positives (0..N-1, col i is anchor i's positive), then anchors (self masked out)
        logits = scaled @ torch.cat([positives, anchors], dim=0).T
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(n), n + torch.arange(n)] = True
        logits = logits.masked_fill_(self_mask, float("-inf"))  # in place: mm keeps no copy of its output
        target = torch.arange(n, device=anchors.device)
    else:
        logits = (scaled * positives).sum(-1, keepdim=True)
        target = torch.zeros(n, dtype=torch.long, device=anchors.device)
    if negatives is not None:
        if negatives.dim() == 2:
            neg = scaled @ negatives.T  # N x K
        else:
            neg = torch.einsum("nd,nkd->nk", scaled, negatives)
        if normalize:  # cosine similarity without an F.normalize copy of the (K or N x K) x D negatives
            neg = neg / torch.linalg.vector_norm(negatives, dim=-1).clamp_min(1e-12)
        logits = torch.cat([logits, neg], dim=1)
        del neg
    return F.cross_entropy(logits, target, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views of N pairs (Chen et al. 2020, Alg. 1).

    z1, z2: N x D projections of the two views. Each of the 2N views is an anchor
    with one positive and 2N - 2 in-batch negatives; the loss is the mean over all 2N.
    """
    return 0.5 * (info_nce(z1, z2, temperature=temperature) + info_nce(z2, z1, temperature=temperature))


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


def per_sample_activation_bytes(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Activation bytes autograd keeps per input sample of ``module`` in training mode (float32, CPU).

    Traced on a copy (the module's BN statistics are untouched) at batch 2 and 4; the
    difference halved leaves out what does not grow with the batch.
    """
    net = copy.deepcopy(module).float().cpu().train()
    g = torch.Generator().manual_seed(0)
    sizes = [saved_activation_bytes(net, torch.rand(b, *input_shape, generator=g)) for b in (2, 4)]
    return max(0, (sizes[1] - sizes[0]) // 2)
