"""Audio encoders: CPC's strided 1-D convolutions on raw 16 kHz waveforms and its autoregressive context network.

``cpc-conv`` (van den Oord, Li, Vinyals 2018, arXiv 1807.03748, Sec. 3.1)::

    g_enc: x (B x 1 x T samples) -> z (B x T' x channels)
           five Conv1d, strides 5, 4, 2, 2, 2, kernels 10, 8, 4, 4, 4, ``channels`` (512) filters, each followed
           by an optional normalisation and a ReLU; total stride 160: one latent per 10 ms at 16 kHz
    g_ar:  z -> c (B x T' x context_dim), a one-layer GRU of 256 units (causal: c_t sees z_1..z_t)

Padding 3, 2, 1, 1, 1 (facebookresearch/CPC_audio ``cpc/model.py``; the paper gives none) makes the frame
count exactly::

    T' = floor((T + 1) / 160)          16000 samples -> 100 frames, 20480 -> 128

Frame j (0-based) reads samples [160 j - 153, 160 j + 311] (the composed kernels, strides and padding).
The convolutions' zero padding at the end of a clip pads every layer's *output* with zeros, whereas in
a batch padded to a longer clip those positions hold the layer's response to the padding (ReLU of the
bias): so with ``lengths`` given, every layer's output is zeroed beyond that layer's valid length
(floor((L + 2p - k) / s) + 1 for a layer of kernel k, stride s, padding p). A clip of L samples then
gives the same floor((L + 1) / 160) frames (``frame_lengths``), and the same causal context over them,
alone or padded in any batch: its features do not depend on its batch companions.

Inputs: a float tensor B x 1 x T (or B x T) of training crops, every sample valid; or the evaluation
batch of whole clips padded to the longest, any object with ``x`` (B x 1 x T) and ``lengths`` (int64 B,
valid samples per clip): the audio modality's ``Waveforms``.

Outputs (:class:`CPCEncoder`):

- ``frames(x) -> z``: B x T' x channels, the latents g_enc
- ``context(z) -> c``: B x T' x context_dim, the context g_ar
- ``forward(inputs) -> B x context_dim``: the utterance-level feature of frozen-feature protocols (linear,
  kNN, few-shot, the random-init floor): ``pooling: mean`` (default) the mean of c_t over the clip's valid
  frames; ``pooling: last`` c at the last valid frame, the context of the whole clip (what
  CPC_audio's speaker probe ``SpeakerCriterion`` reads, on 20480-sample windows). The paper does not say how
  its speaker probe pooled (we could not check its text beyond Table 1); the mean is our choice.
- ``frame_features(inputs) -> (c, frame_lengths)``: B x T' x context_dim and int64 B, for frame-level probes
  (phone labels at 10 ms).

Options (``encoder.options``): ``channels`` (512), ``norm: none|layer|batch`` (none, as the paper; ``layer``
is CPC_audio's ChannelNorm: per frame, over the channels, with a per-channel scale and shift;
``batch`` BatchNorm1d), ``context: gru|lstm`` (gru), ``context_dim`` (256), ``context_layers`` (1),
``pooling: mean|last`` (mean). ``num_features`` = context_dim.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...data.base import DataInfo
from ...errors import ConfigError, UnknownNameError
from ...plugins import register_encoder

STRIDES = (5, 4, 2, 2, 2)
KERNELS = (10, 8, 4, 4, 4)
PADDING = (3, 2, 1, 1, 1)  # CPC_audio's: T' = floor((T + 1) / 160) exactly
DOWNSAMPLING = 160  # product of the strides: 10 ms per latent at 16 kHz
NORMS = ("none", "layer", "batch")
CONTEXTS = ("gru", "lstm")
POOLINGS = ("mean", "last")
OPTIONS = ("channels", "norm", "context", "context_dim", "context_layers", "pooling")


def frame_lengths(lengths: torch.Tensor | int) -> torch.Tensor | int:
    """Valid latent frames of clips of ``lengths`` samples: floor((L + 1) / 160), at least 1."""
    if isinstance(lengths, int):
        return max(1, (lengths + 1) // DOWNSAMPLING)
    return ((lengths + 1) // DOWNSAMPLING).clamp_min(1)


class ChannelNorm(nn.Module):
    """CPC_audio's "layerNorm": each frame normalised over its channels (unbiased variance, as theirs), then a
    per-channel scale and shift. B x C x T -> B x C x T; frames never mix, so padding changes no valid frame."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "layer":
        return ChannelNorm(channels)
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    return nn.Identity()


def conv_stack(channels: int, norm: str) -> nn.ModuleList:
    """g_enc: the five strided convolutions, each followed by ``norm`` and a ReLU (one block per layer)."""
    blocks, c_in = nn.ModuleList(), 1
    for k, s, p in zip(KERNELS, STRIDES, PADDING, strict=True):
        blocks.append(nn.Sequential(nn.Conv1d(c_in, channels, k, stride=s, padding=p), _norm(norm, channels),
                                    nn.ReLU(inplace=True)))
        c_in = channels
    return blocks


def _waveforms(inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B x 1 x T samples, valid samples per clip or None when all are valid) from a tensor or a Waveforms."""
    if isinstance(inputs, torch.Tensor):
        x, lengths = inputs, None
    elif hasattr(inputs, "x") and hasattr(inputs, "lengths"):
        x, lengths = inputs.x, inputs.lengths
    else:
        raise TypeError(f"cpc-conv takes a B x 1 x T tensor or Waveforms (x, lengths), got {type(inputs).__name__}")
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"cpc-conv takes mono waveforms B x 1 x T, got {tuple(x.shape)}")
    return x, lengths


class CPCEncoder(nn.Module):
    """g_enc and g_ar of CPC; ``forward`` pools the context into one feature per clip (see the module docstring)."""

    pretrained = False  # random init: baseline.random keeps it as built

    def __init__(self, channels: int = 512, norm: str = "none", context: str = "gru", context_dim: int = 256,
                 context_layers: int = 1, pooling: str = "mean"):
        super().__init__()
        self.pooling = pooling
        self.configure(channels=channels, norm=norm, context=context, context_dim=context_dim,
                       context_layers=context_layers)

    def configure(self, channels: int | None = None, norm: str | None = None, context: str | None = None,
                  context_dim: int | None = None, context_layers: int | None = None) -> None:
        """(Re)build g_enc and g_ar with these settings (None keeps the current one); a part whose settings did
        not change keeps its weights. A method variant uses it to select the reference implementation's
        architecture (``cpc.audio``: layer norm, LSTM); it draws from torch's global generator."""
        old = (getattr(self, "channels", None), getattr(self, "norm", None))
        old_ar = (getattr(self, "context_kind", None), getattr(self, "context_dim", None),
                  getattr(self, "context_layers", None), old[0])
        self.channels = int(channels if channels is not None else self.channels)
        self.norm = str(norm if norm is not None else self.norm)
        self.context_kind = str(context if context is not None else self.context_kind)
        self.context_dim = int(context_dim if context_dim is not None else self.context_dim)
        self.context_layers = int(context_layers if context_layers is not None else self.context_layers)
        check_options(self.channels, self.norm, self.context_kind, self.context_dim, self.context_layers,
                      self.pooling)
        if (self.channels, self.norm) != old:
            self.encoder = conv_stack(self.channels, self.norm)
        if (self.context_kind, self.context_dim, self.context_layers, self.channels) != old_ar:
            rnn = nn.GRU if self.context_kind == "gru" else nn.LSTM
            self.ar = rnn(self.channels, self.context_dim, num_layers=self.context_layers, batch_first=True)
        self.num_features = self.context_dim

    def frames(self, x: Any, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """z = g_enc(x): B x 1 x T samples -> B x T' x channels, T' = floor((T + 1) / 160). With ``lengths`` (valid
        samples per clip; or ``x`` a Waveforms) each layer's output is zeroed past the clip's end (module docstring)."""
        x, own = _waveforms(x)
        lengths = own if lengths is None else lengths
        if lengths is not None:  # the samples past a clip's end are zeros, whatever the batch padded with
            lengths = torch.as_tensor(lengths, device=x.device).long()
            x = x * (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(1).to(x.dtype)
        for block, k, s, p in zip(self.encoder, KERNELS, STRIDES, PADDING, strict=True):
            x = block(x)
            if lengths is not None:
                lengths = torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1
                keep = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
                x = x * keep.unsqueeze(1).to(x.dtype)
        return x.transpose(1, 2)

    def context(self, z: torch.Tensor) -> torch.Tensor:
        """c = g_ar(z): B x T' x channels -> B x T' x context_dim (causal)."""
        return self.ar(z)[0]

    def frame_features(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level context features: (c, B x T' x context_dim; valid frames per clip, int64 B)."""
        x, lengths = _waveforms(inputs)
        c = self.context(self.frames(x, lengths))
        if lengths is None:
            valid = torch.full((c.shape[0],), c.shape[1], dtype=torch.long, device=c.device)
        else:
            valid = frame_lengths(torch.as_tensor(lengths, device=c.device).long()).clamp_max(c.shape[1])
        return c, valid

    def forward(self, inputs: Any) -> torch.Tensor:
        """One feature per clip: the context pooled over the clip's valid frames (``pooling``). -> B x context_dim"""
        c, valid = self.frame_features(inputs)
        if self.pooling == "last":
            return c[torch.arange(c.shape[0], device=c.device), valid - 1]
        mask = (torch.arange(c.shape[1], device=c.device)[None, :] < valid[:, None]).to(c.dtype)
        return (c * mask.unsqueeze(-1)).sum(1) / valid.to(c.dtype).unsqueeze(-1)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, norm={self.norm}, context={self.context_kind}({self.context_dim} x "
                f"{self.context_layers}), pooling={self.pooling}")


def check_options(channels: Any, norm: Any, context: Any, context_dim: Any, context_layers: Any,
                  pooling: Any) -> None:
    """One ConfigError line for a bad option value of ``cpc-conv``."""
    for key, value in (("channels", channels), ("context_dim", context_dim), ("context_layers", context_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"Bad value for 'encoder.options.{key}': {value!r}; must be an integer >= 1")
    for key, value, valid in (("norm", norm, NORMS), ("context", context, CONTEXTS), ("pooling", pooling, POOLINGS)):
        if value not in valid:
            raise ConfigError(f"Bad value for 'encoder.options.{key}': {value!r}; valid: {', '.join(valid)}")


@register_encoder("cpc-conv", modality="audio")
def cpc_conv(data: DataInfo, options: dict) -> nn.Module:
    """CPC's g_enc (5 strided convs, 512 ch, 10 ms per latent) + g_ar (GRU 256); pooled context per clip."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UnknownNameError(f"Unknown option '{unknown[0]}' for encoder cpc-conv. Valid: {', '.join(OPTIONS)}")
    return CPCEncoder(channels=options.get("channels", 512), norm=options.get("norm", "none"),
                      context=options.get("context", "gru"), context_dim=options.get("context_dim", 256),
                      context_layers=options.get("context_layers", 1), pooling=options.get("pooling", "mean"))


__all__ = ["CPCEncoder", "ChannelNorm", "DOWNSAMPLING", "conv_stack", "cpc_conv", "frame_lengths"]
