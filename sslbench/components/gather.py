"""All-gather across ranks for in-batch negatives, keeping the gradient of each rank's own rows.

With data parallelism each rank holds a shard of B/W rows of the global batch of B. A method whose
negatives are the batch (SimCLR, SimCSE, SupCon/SCL) gathers its embeddings into the global B x D, in rank
order (the global batch's own order: every rank holds a contiguous slice of it), and computes the loss
on them exactly as one process would on the whole batch.

Gradient scaling. Every rank computes the same global loss L on the gathered rows. :class:`AllGather`'s
backward sums the incoming gradients over the ranks (all-reduce) and keeps this rank's rows: rank r gets
sum_r' dL/dz_r = W dL/dz_r. The engine then averages parameter gradients over the W ranks
(:func:`sslbench.distributed.average_gradients`, DDP's mean), which divides the W back out: the step
is exactly one process's step on the global batch. Keeping only the local gradient in backward (no
all-reduce) would give each rank 1/W of the right gradient through the gathered rows it does not own:
lightly issues 1528/1531 and solo-learn 232.

One process, or collectives off (:func:`sslbench.distributed.local_only`): the identity, the same tensor.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .. import distributed


class AllGather(torch.autograd.Function):
    """B x ... on each of W ranks -> W B x ... (rank order) on every rank; backward: the all-reduced
    (summed) gradient of this rank's B rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.rows = rank, x.shape[0]
        out = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """B x ... -> W B x ... with the gradient of this rank's rows (see the module docstring); every rank must
    pass the same B. The identity on one process."""
    if not distributed.active():
        return x
    return AllGather.apply(x)


@torch.no_grad()
def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """B x ... -> W B x ... in rank order, without gradient (labels, indices). The identity on one process."""
    if not distributed.active():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


__all__ = ["AllGather", "gather_with_grad", "gather_nograd"]
