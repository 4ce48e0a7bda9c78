"""Contrastive losses. One InfoNCE serves in-batch (SimCLR), queue (MoCo) and bank (InstDisc) negatives.

InfoNCE (Oord et al. 2018, arXiv 1807.03748), in the form used by SimCLR's NT-Xent
(Chen et al. 2020, arXiv 2002.05709, Eq. 1) and MoCo (He et al. 2019, Eq. 1)::

    l_i = -log  exp(sim(a_i, p_i)/t) / ( exp(sim(a_i, p_i)/t) + sum_{n in N_i} exp(sim(a_i, n)/t) )

with sim the cosine similarity and N_i the negatives of anchor i.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """
    if normalize:
        anchors = F.normalize(anchors, dim=-1)
        positives = F.normalize(positives, dim=-1)
        if negatives is not None:
            negatives = F.normalize(negatives, dim=-1)
    n = anchors.shape[0]
    if in_batch:
        # columns: positives (0..N-1, col i is anchor i's positive), then anchors (self masked out)
        cand = torch.cat([positives, anchors], dim=0)
        logits = anchors @ cand.T
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(n), n + torch.arange(n)] = True
        logits = logits.masked_fill(self_mask, float("-inf"))
        target = torch.arange(n, device=anchors.device)
    else:
        logits = (anchors * positives).sum(-1, keepdim=True)
        target = torch.zeros(n, dtype=torch.long, device=anchors.device)
    if negatives is not None:
        if negatives.dim() == 2:
            neg = anchors @ negatives.T  # N x K
        else:
            neg = torch.einsum("nd,nkd->nk", anchors, negatives)
        logits = torch.cat([logits, neg], dim=1)
    return F.cross_entropy(logits / temperature, target, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views of N pairs (Chen et al. 2020, Alg. 1).

    z1, z2: N x D projections of the two views. Each of the 2N views is an anchor
    with one positive and 2N - 2 in-batch negatives; the loss is the mean over all 2N.
    """
    return 0.5 * (info_nce(z1, z2, temperature=temperature) + info_nce(z2, z1, temperature=temperature))


def info_nce_logit_bytes(batch: int, num_candidates: int, dtype_bytes: int = 4) -> int:
    """Analytic floor of the memory the logits need: N x (1 + candidates), forward and gradient."""
    return 2 * batch * (1 + num_candidates) * dtype_bytes
