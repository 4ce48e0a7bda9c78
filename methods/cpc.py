"""Contrastive Predictive Coding on raw audio (van den Oord, Li, Vinyals 2018, arXiv 1807.03748, Sec. 2, 3.1).

Model (the encoder ``cpc-conv``, ``sslbench/components/encoders/audio.py``): a window x of T samples
(``views.crop_samples``, 20480 = 1.28 s at 16 kHz) gives latents z_t = g_enc(x) (B x T' x D, D = 512
channels, one per 10 ms: T' = floor((T + 1) / 160), 128 for 20480) and contexts c_t = g_ar(z_<=t)
(B x T' x C, a GRU of C = 256). For each prediction step k = 1..K (``steps``, 12) a map W_k (``predictor:
linear``: ``Linear(C, D, bias=False)``, the paper's log-bilinear model) scores a candidate z against c_t::

    f_k(z, c_t) = exp(z^T W_k c_t / temperature)                                    (Eq. 3; temperature 1)

and the InfoNCE loss (Eq. 4) of each step k and context position t takes the true future z_{t+k} against N
negatives (``negatives``) z_j drawn from a proposal distribution (``negatives_from``)::

    l_{k,t} = -log  f_k(z_{t+k}, c_t) / ( f_k(z_{t+k}, c_t) + sum_{j=1..N} f_k(z_j, c_t) )
    L       = mean over k of ( mean over the positions t of step k of l_{k,t} )

Positions: every t with t + k inside the window's valid frames (T' - k per full window and step). Computed per
k by the shared :func:`sslbench.components.losses.info_nce` (``normalize=False``, ``in_batch=False``): anchors
W_k c_t (A_k x D, A_k = B (T' - k) positions), positives z_{t+k} (A_k x D), the batch's B T' latents as the
candidates and per-anchor negatives as A_k x N indices into them (``negative_index``: equal to the gathered
A_k x N x D negatives, values and gradients, tested, without gathering them; see below). Gradients flow into
every z, positives and negatives alike, as in the paper (one encoder, no stop-gradient).

Negatives (``negatives_from``, the paper's Table 2 ablation): ``batch``, any latent frame of the minibatch
("mixed speaker", the paper's default, Table 1); ``sequence``, frames of the anchor's own window only
("current sequence only"); ``speaker``, frames of the windows of the anchor's speaker in the batch
("same speaker", its own window included; the batches carry speaker ids as ``Batch.groups``: the method's
``group_by`` is ``"speaker"``, and the data must have a ``speaker`` target). N frames are drawn uniformly with
replacement from the pool, for each (k, t) independently, never the positive itself: the draw is uniform
over the pool's other M - 1 frames (an index r in [0, M - 2], shifted by one at and past the positive's rank).
Frames past a padded window's valid length (``views.short_clips: pad``) are neither anchors, positives nor
negatives. The draw uses a generator seeded from torch's global generator, which the engine seeds per step,
so runs replay exactly on resume. Tensor shapes: ``sample_negatives`` returns, per k, int64 B x (T' - k) x N
indices into z flattened to (B T') x D.

What differs from the paper:

- The paper gives no padding for g_enc and no number of negatives for audio; we use CPC_audio's padding
  (3, 2, 1, 1, 1: exactly 160 samples per frame) and 128 negatives (CPC_audio's ``negativeSamplingExt``).
- The paper does not say whether the negatives of a position are shared across the K steps: here each (k, t)
  draws its own N, so no step's negatives contain its positive (CPC_audio shares one draw across k and
  excludes only frame t, so a future z_{t+k} of the same window can be a negative of step k).
- The scores against the negatives are picked from the scores of every anchor against every frame of the batch
  (``info_nce(..., negative_index=...)``, equal to ``info_nce`` on the gathered A_k x N x D negatives): the gathered
  form needs sum_k B (T' - k) N D floats for backward (23 GB at the paper's 64 windows on one device, 128
  negatives, D = 512) and took about 4/5 of a CPU step in batched products and scatter-adds.
- ``temperature`` divides the scores (1.0: the paper's f_k, no temperature).

Variant ``cpc.audio``: CPC_audio's defaults (``cpc/cpc_default_config.py``, ``cpc/model.py``,
``cpc/criterion/criterion.py``): LSTM context (``context: lstm``), layer norm in g_enc (``norm: layer``,
their ChannelNorm), 256 encoder channels (``channels: 256``, their ``hiddenEncoder``), a one-layer causal
transformer predictor per step (``predictor: transformer``: d_model C, 8 heads, feed-forward 2048, dropout
0.1, post-norm, then ``Linear(C, D)`` when C != D; theirs adds a learned relative-position term to the
attention, not built here), 128 negatives from the same speaker (theirs draws same-speaker *batches*; here a
mixed batch with negatives restricted to the speaker's windows, the same proposal distribution), and scores
``(prediction * z).mean(-1)``, i.e. the dot product divided by D: ``temperature: 256``. The variant selects
the encoder's architecture through ``channels``, ``norm`` and ``context`` (None: the suite's
``encoder.options``); the method rebuilds those parts of a ``cpc-conv`` encoder in ``setup``.

Data parallel (``torchrun``, ``--nproc``; ``gather``, on by default): each rank encodes its shard of the global
batch; z and c are all-gathered with their gradients (:func:`sslbench.components.gather.gather_with_grad`), the
negatives are drawn over the global batch's frames with rank 0's seed, and every rank computes the loss of the
whole global batch: the same loss and, after the engine's gradient mean, the same step as one process with the
global batch (tested). ``gather: false`` keeps each rank's negatives within its own shard.

Frozen features (``embed``, every protocol and the floors): the encoder's pooled context (the mean of c_t
over a clip's valid frames by default; ``encoder.options.pooling``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sslbench import distributed
from sslbench.components.gather import gather_nograd, gather_with_grad
from sslbench.components.losses import info_nce
from sslbench.errors import ConfigError
from sslbench.method import Batch, Method, StepOutput
from sslbench.plugins import register_method
from sslbench.validation import at_least_one, check

NEGATIVES_FROM = ("batch", "sequence", "speaker")
PREDICTORS = ("linear", "transformer")
SAMPLES_PER_FRAME = 160  # cpc-conv's total stride: frames = floor((samples + 1) / 160)
SPEAKER = "speaker"  # the data target whose ids group windows for negatives_from: speaker


def frames_of(samples: torch.Tensor | int) -> torch.Tensor | int:
    """Latent frames of ``samples`` samples through cpc-conv: floor((samples + 1) / 160)."""
    return (samples + 1) // SAMPLES_PER_FRAME


def negative_pools(valid: torch.Tensor, num_frames: int, groups: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The pools negatives are drawn from: the valid frames of every window of the same group, contiguous.

    valid:  int64 B, valid frames per window (<= num_frames); groups: int64 B (all equal: the batch is one pool;
            arange(B): each window its own pool; speaker ids: a speaker's windows)
    returns (flat, start, size, offset): ``flat`` the flat frame indices (b * num_frames + t) of every valid frame,
            windows ordered by group (stable); for each window b its pool's first position in ``flat``
            (``start``), the pool's size (``size``) and the position of its own frame 0 in ``flat`` (``offset``)
    """
    device = valid.device
    order = torch.sort(groups, stable=True).indices  # windows grouped, batch order within a group
    v = valid[order]
    first = torch.cumsum(v, 0) - v  # position of each ordered window's frame 0 in flat
    t = torch.arange(num_frames, device=device)
    keep = t[None, :] < v[:, None]
    flat = (order[:, None] * num_frames + t[None, :])[keep]
    g = groups[order]
    new = torch.ones_like(g, dtype=torch.bool)
    new[1:] = g[1:] != g[:-1]
    seg = torch.cumsum(new.long(), 0) - 1  # segment id per ordered window
    seg_start = first[new]
    seg_size = torch.zeros(int(seg[-1]) + 1, dtype=v.dtype, device=device).index_add_(0, seg, v)
    start, size, offset = (torch.empty_like(valid) for _ in range(3))
    start[order], size[order], offset[order] = seg_start[seg], seg_size[seg], first
    return flat, start, size, offset


def sample_negatives(valid: torch.Tensor, num_frames: int, steps: int, negatives: int, groups: torch.Tensor,
                     generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """For each step k = 1..steps, int64 B x (num_frames - k) x N flat frame indices (into z as (B T') x D) of
    the negatives of context position t of window b: uniform with replacement over the pool of b
    (:func:`negative_pools`) without the positive (b, t + k). Entries of positions with t + k >= valid[b]
    (no positive) are arbitrary in-range indices, never used."""
    flat, start, size, offset = negative_pools(valid, num_frames, groups)
    b_count, device = valid.shape[0], valid.device
    wide = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    out = []
    for k in range(1, steps + 1):
        w = num_frames - k
        t = torch.arange(w, device=device)
        rank = (offset - start)[:, None] + t[None, :] + k  # the positive's rank in its pool: B x W
        u = torch.rand((b_count, w, negatives), generator=generator, dtype=wide, device=device)
        room = (size - 1).clamp_min(1).to(torch.float64)[:, None, None]
        r = (u * room).long()  # uniform in [0, M - 2]
        r = r + (r >= rank[..., None]).long()  # skip the positive
        out.append(flat[(start[:, None, None] + r).clamp(0, flat.numel() - 1)])
    return out


def anchor_mask(valid: torch.Tensor, num_frames: int, k: int) -> torch.Tensor:
    """bool B x (num_frames - k): context positions t whose positive t + k is a valid frame."""
    t = torch.arange(num_frames - k, device=valid.device)
    return (t[None, :] + k) < valid[:, None]


class CausalTransformerPredictor(nn.Module):
    """One causal post-norm transformer layer over the context sequence (B x T' x C), then Linear(C, D) when
    C != D: CPC_audio's per-step ``transformer`` prediction network (without its relative-position term)."""

    def __init__(self, context_dim: int, latent_dim: int, heads: int = 8, ff: int = 2048, dropout: float = 0.1):
        super().__init__()
        if context_dim % heads:
            raise ConfigError(f"cpc predictor: transformer needs the context size ({context_dim}) divisible by its "
                              f"{heads} heads")
        self.layer = nn.TransformerEncoderLayer(context_dim, heads, dim_feedforward=ff, dropout=dropout,
                                                batch_first=True)
        self.out = nn.Linear(context_dim, latent_dim, bias=False) if latent_dim != context_dim else nn.Identity()

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(c.shape[1], device=c.device, dtype=c.dtype)
        return self.out(self.layer(c, src_mask=mask, is_causal=True))


@register_method("cpc", variants={"audio": dict(context="lstm", norm="layer", channels=256, predictor="transformer",
                                                negatives=128, negatives_from=SPEAKER, temperature=256.0)})
class CPC(Method):
    modality = "audio"
    version = 1
    negatives_key = "method.negatives"

    @dataclass
    class Config(Method.Config):
        steps: int = field(default=12, metadata=check(at_least_one, "1 or more"))  # K future frames predicted
        negatives: int = field(default=128, metadata=check(at_least_one, "1 or more"))  # N per positive
        negatives_from: str = "batch"  # batch | sequence | speaker (the paper's Table 2)
        temperature: float = 1.0  # scores z^T W_k c / temperature; 1: the paper
        predictor: str = "linear"  # linear (W_k, the paper) | transformer (CPC_audio)
        # the encoder's architecture, overriding encoder.options (None: as the suite builds it); cpc.audio sets them
        channels: int | None = None
        norm: str | None = None
        context: str | None = None
        gather: bool = True  # data parallel: latents, contexts and negatives of the global batch (False: this rank's)

    def setup(self) -> None:
        cfg = self.cfg
        for key, value, valid in (("negatives_from", cfg.negatives_from, NEGATIVES_FROM),
                                  ("predictor", cfg.predictor, PREDICTORS)):
            if value not in valid:
                raise ConfigError(f"Bad value for 'method.{key}': {value!r}; valid: {', '.join(valid)}")
        enc = self.encoder
        if not all(callable(getattr(enc, m, None)) for m in ("frames", "context")):
            raise ConfigError(f"cpc needs an encoder with frames() and context() (cpc-conv), got "
                              f"{type(enc).__name__}")
        if any(v is not None for v in (cfg.channels, cfg.norm, cfg.context)):
            if not callable(getattr(enc, "configure", None)):
                raise ConfigError("method.channels / norm / context need a cpc-conv encoder (configure())")
            enc.configure(channels=cfg.channels, norm=cfg.norm, context=cfg.context)
        self.latent_dim = int(enc.channels)
        c = self.feature_dim
        if cfg.predictor == "linear":
            self.predictors = nn.ModuleList(nn.Linear(c, self.latent_dim, bias=False) for _ in range(cfg.steps))
        else:
            self.predictors = nn.ModuleList(CausalTransformerPredictor(c, self.latent_dim) for _ in range(cfg.steps))
        self.group_by = SPEAKER if cfg.negatives_from == SPEAKER else None
        if self.group_by is not None and self.group_by not in (getattr(self.data, "targets", None) or {}):
            have = ", ".join(getattr(self.data, "targets", None) or {}) or "none"
            raise ConfigError(f"method.negatives_from=speaker needs speaker ids: data set {self.data.name} has no "
                              f"'{SPEAKER}' target (its targets: {have})")
        self._crop: int | None = None

    def views(self, base: Any) -> list[Any]:
        self._crop = getattr(base, "crop_samples", None)
        return [base]  # one window per sample: CPC's task needs no second view

    # ------------------------------------------------------------ the loss

    def sample(self, valid: torch.Tensor, num_frames: int, groups: torch.Tensor, seed: int | None = None
               ) -> list[torch.Tensor]:
        """:func:`sample_negatives` with the config's K and N, from a generator seeded by ``seed`` (default: a
        draw from torch's global generator, which the engine seeds per step)."""
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
        gen = torch.Generator(device=valid.device).manual_seed(seed)
        return sample_negatives(valid, num_frames, self.cfg.steps, self.cfg.negatives, groups, gen)

    def pool_groups(self, batch_size: int, groups: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """The group of each window whose frames its negatives come from (``negatives_from``)."""
        mode = self.cfg.negatives_from
        if mode == "batch":
            return torch.zeros(batch_size, dtype=torch.long, device=device)
        if mode == "sequence":
            return torch.arange(batch_size, device=device)
        if groups is None:
            raise ConfigError("method.negatives_from=speaker: the batches carry no speaker ids (Batch.groups); the "
                              "data's batch source must fill them from its 'speaker' target")
        return torch.as_tensor(groups, device=device).long()

    def cpc_loss(self, z: torch.Tensor, c: torch.Tensor, valid: torch.Tensor,
                 negatives: list[torch.Tensor]) -> torch.Tensor:
        """The mean over k of the mean over positions of InfoNCE (module docstring). z: B x T' x D latents,
        c: B x T' x C contexts, valid: int64 B valid frames, negatives: per k B x (T' - k) x N flat indices."""
        b, t, d = z.shape
        flat = z.reshape(b * t, d)
        full = bool((valid >= t).all())  # full windows: every position an anchor, views instead of masked copies
        losses = []
        for k, (predict, neg) in enumerate(zip(self.predictors, negatives, strict=True), 1):
            pred = predict(c[:, :t - k])  # B x (T' - k) x D: W_k c_t (a causal predictor: c_<=t only)
            pos = z[:, k:]  # z_{t+k}
            if full:
                pred, pos, neg = pred.reshape(-1, d), pos.reshape(-1, d), neg.reshape(-1, neg.shape[-1])
            else:
                keep = anchor_mask(valid, t, k)
                if not bool(keep.any()):
                    continue
                pred, pos, neg = pred[keep], pos[keep], neg[keep]
            losses.append(info_nce(pred, pos, flat, self.cfg.temperature, in_batch=False, normalize=False,
                                   negative_index=neg))
        if not losses:
            raise ConfigError(f"cpc: no window of the batch has more than steps={self.cfg.steps} valid latent frames "
                              f"({SAMPLES_PER_FRAME} samples each): raise views.crop_samples or lower method.steps")
        return torch.stack(losses).mean()

    def training_step(self, batch: Batch) -> StepOutput:
        x = batch.views[0]
        samples = x.x if hasattr(x, "lengths") else x
        lengths = getattr(x, "lengths", None)
        t_frames = frames_of(int(samples.shape[-1]))
        if t_frames <= self.cfg.steps:
            raise ConfigError(f"cpc: a window of {samples.shape[-1]} samples gives {t_frames} latent frames; "
                              f"predicting steps={self.cfg.steps} needs more: raise views.crop_samples (>= "
                              f"{(self.cfg.steps + 1) * SAMPLES_PER_FRAME}) or lower method.steps")
        b = samples.shape[0]
        if lengths is None:
            valid = torch.full((b,), t_frames, dtype=torch.long, device=samples.device)
        else:
            valid = frames_of(torch.as_tensor(lengths, device=samples.device).long()).clamp(0, t_frames)
        full = lengths is None or bool((valid >= t_frames).all())
        seed = int(torch.randint(0, 2**62, (1,)))  # the negatives' draw; rank 0's on every rank (below)
        groups = self.pool_groups(b, batch.groups, samples.device)
        z = self.encoder.frames(samples, None if full else lengths)
        c = self.encoder.context(z)
        if self.cfg.gather and distributed.active():
            # data parallel: the global batch's latents are the candidates, and every rank computes the loss of
            # the whole global batch with the same negatives (components/gather.py: gradient scaling)
            z, c, valid = gather_with_grad(z), gather_with_grad(c), gather_nograd(valid)
            groups = self.pool_groups(z.shape[0], gather_nograd(batch.groups) if batch.groups is not None else None,
                                      samples.device)
            seed = distributed.broadcast_int(seed)
        negatives = self.sample(valid, t_frames, groups, seed)
        return StepOutput(loss=self.cpc_loss(z, c, valid, negatives))

    # ------------------------------------------------------------ the negatives axis (sslbench profile)

    def num_negatives(self, batch_size: int) -> int:
        return self.cfg.negatives

    def negatives_memory_bytes(self, batch_size: int) -> int:
        """Full windows of ``views.crop_samples`` (T' frames, A_k = B (T' - k) anchors of step k, M = B T' frames):
        what grows with N until backward, per step k the A_k x N int64 indices the gather keeps and the A_k x (1 + N)
        log-softmax cross-entropy keeps; at the peak of backward two more logit-sized transients of the largest
        step (as :func:`info_nce_logit_bytes` counts them) and the A_k x M scores and their gradient."""
        t = frames_of(int(self._crop or 20480))
        n, f = self.cfg.negatives, 4
        anchors = [batch_size * (t - k) for k in range(1, self.cfg.steps + 1) if t > k]
        if not anchors:
            return 0
        saved = sum(anchors) * ((1 + n) * f + n * 8)
        transient = 2 * max(anchors) * (1 + n) * f + 2 * max(anchors) * batch_size * t * f
        return saved + transient
