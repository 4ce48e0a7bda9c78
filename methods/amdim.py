"""DIM's local-global objective in AMDIM's two-view form (Hjelm et al. 2018, arXiv 1808.06670, Sec. 3.1-3.2,
Eq. 5 with the infoNCE estimator; Bachman, Hjelm, Buchwalter 2019, arXiv 1906.00910, Sec. 3.2-3.3).

Two views x1, x2 of each of N images go through the encoder once (one pass over the 2N, as SimCLR). From that
pass come the global feature (the encoder's pooled output, N x F) and the local feature map of a mid layer
(N x C x H x W, read with a forward hook on the named module ``local_layer``; M = H W locations). Heads map both
to one space of ``dim`` D: the global one a two-layer MLP, the local one the same MLP as 1x1 convolutions
(applied at every location), each with a linear shortcut as DIM's and AMDIM's heads: g (N x D), l (N x M x D).

Scores and loss, from the global of view a to the locals of view b (AMDIM, Sec. 3.2, their ``costs.py``)::

    s_ijm = g^a_i . l^b_jm / sqrt(D)                        N x N x M; AMDIM's scale 1/sqrt(n_rkhs)
    s    <- c tanh(s / c)                                   (``clip`` c, 20 as AMDIM's tclip; 0: none, DIM)
    l_im = -log  exp(s_iim) / ( exp(s_iim) + sum_{j != i} sum_{m'} exp(s_ijm') )
    L^ab = mean_{i, m} l_im + lambda mean_{i,j,m} s_ijm^2   (the squared-score penalty on the raw scores,
                                                             ``score_penalty`` lambda, AMDIM's 5e-2)
    L    = (L^12 + L^21) / 2

The positive of (i, m) is image i's own local feature at m; its negatives are the local features of every other
image of the batch at every location, (N - 1) M of them; image i's own other locations are neither (tested). The
negatives' sum does not depend on m and is computed once per image: N x N M scores, not N M x N M.

``local_layer``: a module name of the encoder (``encoder.named_modules()``, e.g. ``features.5`` of
``cnn-small``, ``layer3`` of a timm ResNet) whose output is a B x C x H x W map, or ``auto``: the deepest map
larger than the smallest map of side > 1 the encoder produces, i.e. the last stage before the last (cnn-small
``[32, 64, 128]`` on 8 px digits: ``features.5``, 64 x 4 x 4; cnn-small's default widths or a CIFAR-stem
ResNet-18 on 32 px: 8 x 8, ``features.8`` / ``layer3``); an encoder with one map size only gives its deepest map.
Resolved in ``setup`` on a probe batch of the data's sample shape (eval mode, no gradient, BN untouched); the
hook is registered for the training step's forward only (``embed`` and copies of the encoder never see it).

Negatives and ``profile``: in-batch, ``negatives_key`` is ``pretrain.batch_size``; ``num_negatives`` is
(N - 1) M, with M the probe's locations. Data parallel (``gather``, on by default): g and l are all-gathered with
their gradients, so the negatives are the global batch's, as SimCLR's.

What differs from the papers at this CPU scale:

- One local-global pair (the global against one M x M map, both directions) instead of AMDIM's three (1-5, 1-7,
  5-5 over 5 x 5 and 7 x 7 maps) and its multi-scale encoder; DIM's JSD / DV estimators, its prior matching and
  its global MI term are not built (Eq. 5's infoNCE only).
- The encoder is the suite's (a small CNN or a timm ResNet with padding), not AMDIM's padding-free ResNet whose
  receptive fields keep locations from seeing each other; the local map is a mid layer's, so neighbouring
  locations overlap.
- Views are the suite's base recipe twice (AMDIM's own augmentation, with its random resized crop and colour
  jitter, is close to SimCLR's); AMDIM's ``n_rkhs`` is 1024-2560 where ``dim`` here defaults to 128.
- Heads use batch norm between their two layers (AMDIM's residual 1x1 blocks have none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sslbench.components.gather import gather_with_grad
from sslbench.components.losses import info_nce_logit_bytes, per_sample_activation_bytes
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.registry import unknown_message
from sslbench.validation import at_least_one, check, non_negative


def local_global_nce(g: torch.Tensor, local: torch.Tensor, clip: float = 20.0, score_penalty: float = 0.05,
                     reduction: str = "mean") -> torch.Tensor:
    """InfoNCE of each global feature against the local features of the batch (AMDIM's NCE, one direction).

    g:      N x D global features (one view)
    local:  N x M x D local features (the other view), M locations per image
    returns: scalar, mean over the N M (image, location) positives plus ``score_penalty`` times the mean squared
             raw score; reduction "none": N x M losses (no penalty)
    Positive of (i, m): s_iim; negatives: s_ijm' for every j != i and every m' ((N - 1) M). Scores are
    g . l / sqrt(D), soft-clipped to c tanh(s / c) when ``clip`` c > 0.
    """
    n, m, d = local.shape
    scores = torch.einsum("id,jmd->ijm", g, local) / math.sqrt(d)  # N x N x M
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # fp32 at least under AMP, as AMDIM
    penalty = score_penalty * scores.square().mean() if score_penalty else None
    if clip:
        scores = clip * torch.tanh(scores / clip)
    eye = torch.eye(n, dtype=torch.bool, device=g.device)
    pos = scores[eye]  # N x M: s_iim (boolean indexing keeps the row order i = 0..N-1)
    negs = scores.masked_fill(eye[:, :, None], float("-inf")).reshape(n, n * m)  # image i's own block removed
    neg_lse = torch.logsumexp(negs, dim=1, keepdim=True)  # N x 1: log sum over the (N - 1) M negatives
    losses = torch.logaddexp(pos, neg_lse) - pos  # N x M: -log softmax of the positive
    if reduction == "none":
        return losses
    loss = losses.mean()
    return loss + penalty if penalty is not None else loss


class ResidualHead(nn.Module):
    """DIM / AMDIM's head: a two-layer MLP (BN, ReLU between) plus a linear shortcut. ``conv``: as 1x1
    convolutions, B x C x H x W -> B x out x H x W (every location alike); else B x C -> B x out."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, conv: bool = False):
        super().__init__()
        lin = (lambda i, o, bias: nn.Conv2d(i, o, 1, bias=bias)) if conv else (lambda i, o, bias: nn.Linear(i, o, bias))
        norm = nn.BatchNorm2d if conv else nn.BatchNorm1d
        self.mlp = nn.Sequential(lin(in_dim, hidden_dim, False), norm(hidden_dim), nn.ReLU(inplace=True),
                                 lin(hidden_dim, out_dim, True))
        self.shortcut = lin(in_dim, out_dim, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.shortcut(x)


def feature_maps(encoder: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...], int]]:
    """Every module of ``encoder`` whose output on ``x`` is a B x C x H x W tensor: (name, shape, calls), in the
    order the modules finish (deepest last), each module once with the number of times it ran."""
    seen: dict[str, list[Any]] = {}
    handles = []
    for name, module in encoder.named_modules():
        if not name:
            continue

        def hook(mod, inputs, out, name=name):
            if name in seen:
                seen[name][2] += 1
            elif isinstance(out, torch.Tensor) and out.dim() == 4:
                seen[name] = [name, tuple(out.shape), 1]

        handles.append(module.register_forward_hook(hook))
    try:
        encoder(x)
    finally:
        for h in handles:
            h.remove()
    return [tuple(v) for v in seen.values()]  # dicts keep insertion (finishing) order


def auto_local_layer(maps: list[tuple[str, tuple[int, ...], int]]) -> str | None:
    """The deepest map larger than the smallest map of side > 1 (the stage before the last); with one map size,
    the deepest map; None without a map of side > 1. Modules that run more than once are skipped."""
    spatial = [(name, shape) for name, shape, calls in maps if calls == 1 and min(shape[2:]) > 1]
    if not spatial:
        return None
    smallest = min(min(shape[2:]) for _, shape in spatial)
    larger = [name for name, shape in spatial if min(shape[2:]) > smallest]
    return (larger or [name for name, _ in spatial])[-1]


@register_method("amdim")
class AMDIM(Method):
    modality = "image"
    version = 1

    @dataclass
    class Config(Method.Config):
        dim: int = field(default=128, metadata=check(at_least_one))  # D, global and local (AMDIM's n_rkhs)
        hidden_dim: int = field(default=256, metadata=check(at_least_one))  # hidden width of both heads
        local_layer: str = "auto"  # the encoder module whose output is the local map, or auto (see above)
        clip: float = field(default=20.0, metadata=check(non_negative))  # tanh clip c (AMDIM's tclip); 0: none
        # weight of the mean squared raw score (AMDIM's 5e-2); 0: none
        score_penalty: float = field(default=0.05, metadata=check(non_negative))
        gather: bool = True  # data parallel: negatives from every rank's shard (False: this rank's only)

    def setup(self) -> None:
        c = self.cfg
        maps = self._probe_maps()
        by_name = {name: (shape, calls) for name, shape, calls in maps}
        if c.local_layer == "auto":
            name = auto_local_layer(maps)
            if name is None:
                raise ConfigError(f"amdim needs an encoder with a spatial feature map (B x C x H x W, H and W > 1); "
                                  f"{type(self.encoder).__name__} has none on {self.data.name}'s inputs")
        else:
            name = c.local_layer
            if name not in by_name:
                raise ConfigError(unknown_message("method.local_layer (an encoder module with a B x C x H x W "
                                                  "output)", name, by_name) + " (or auto)")
            if by_name[name][1] != 1:
                raise ConfigError(f"Bad value for 'method.local_layer': {name!r} runs {by_name[name][1]} times in "
                                  "one forward pass; name a module that runs once")
        shape = by_name[name][0]
        self.local_layer = name
        self.local_shape = shape[1:]  # C x H x W at the data's image size
        self.locations = shape[2] * shape[3]
        self.global_head = ResidualHead(self.feature_dim, c.hidden_dim, c.dim)
        self.local_head = ResidualHead(shape[1], c.hidden_dim, c.dim, conv=True)

    @torch.no_grad()
    def _probe_maps(self) -> list[tuple[str, tuple[int, ...], int]]:
        enc = self.encoder
        was_training = enc.training
        enc.eval()  # BN running statistics stay as they are
        try:
            param = next(enc.parameters(), None)
            x = torch.rand(2, *self.modality_plugin.sample_shape(self.data), generator=torch.Generator().manual_seed(0))
            if param is not None:
                x = x.to(param.device, param.dtype)
            return feature_maps(enc, x)
        finally:
            enc.train(was_training)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x C x H x W images -> (g: B x D global, l: B x M x D local) through one encoder pass."""
        out: dict[str, torch.Tensor] = {}
        handle = self.encoder.get_submodule(self.local_layer).register_forward_hook(
            lambda mod, inputs, o: out.__setitem__("map", o))
        try:
            h = self.encoder(x)
        finally:
            handle.remove()
        g = self.global_head(h)  # B x D
        local = self.local_head(out["map"])  # B x D x H x W
        return g, local.flatten(2).transpose(1, 2)  # B x M x D

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views
        n = x1.shape[0]
        g, local = self.encode(torch.cat([x1, x2]))  # one pass: BN statistics over both views
        g1, g2, l1, l2 = g[:n], g[n:], local[:n], local[n:]
        if self.cfg.gather:  # the global batch from every rank (identity on one process)
            g1, g2, l1, l2 = (gather_with_grad(t) for t in (g1, g2, l1, l2))
        kw = dict(clip=self.cfg.clip, score_penalty=self.cfg.score_penalty)
        loss = 0.5 * (local_global_nce(g1, l2, **kw) + local_global_nce(g2, l1, **kw))
        return StepOutput(loss=loss)

    def num_negatives(self, batch_size: int) -> int:
        return (batch_size - 1) * self.locations  # every other image's locations

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Floor, float32: the 2N views' activations through the encoder and both heads (traced once on random
        inputs of the data's sample shape) plus the scores of both directions, N x N M each, counted as
        InfoNCE logits (``info_nce_logit_bytes(calls=2)``) plus one more copy per direction when clipped (tanh
        keeps its output). Not counted: workspaces, transient gradients, allocator slack."""
        if getattr(self, "_view_bytes", None) is None:
            shape = self.modality_plugin.sample_shape(self.data)
            self._view_bytes = per_sample_activation_bytes(_Encode(self), shape)
        n, m = batch_size, self.locations
        scores = info_nce_logit_bytes(n, n * m - 1, calls=2) + (2 * n * n * m * 4 if self.cfg.clip else 0)
        return 2 * n * self._view_bytes + scores


class _Encode(nn.Module):
    """``AMDIM.encode`` as a module (for tracing its activations)."""

    def __init__(self, method: AMDIM):
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.method.encode(x)
