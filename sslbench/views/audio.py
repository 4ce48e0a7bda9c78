"""Audio views and the one input type of every audio batch.

Input type: :class:`Waveforms`, for training views and evaluation alike
-----------------------------------------------------------------------
Every batch the audio modality hands a method or an encoder, pretraining view, evaluation batch,
fine-tuning batch or memory-floor probe, is one ``Waveforms``:

    x            float32 B x 1 x T, mono, in [-1, 1] (int16 / 32768), zero past each row's length
    lengths      int64 B, on x's device: the valid samples of each row (1 <= lengths[i] <= T)
    sample_rate  int, Hz, of every row (the data set's ``sample_rate`` option; 16000 by default)

- Pretraining views: ``T = views.crop_samples`` and ``lengths == T`` for every row (full windows), except
  under ``views.short_clips: pad``, where a clip shorter than the crop is put whole at the start of its row
  and ``lengths`` is its length (the rest zeros). CPC needs full windows: the default refuses short clips
  (``short_clips: error``) or leaves them out of pretraining (``skip``).
- Evaluation and fine-tuning: whole clips (variable length), zero-padded to the longest of the batch.
- An encoder maps a ``Waveforms`` to B x D features pooled over each row's valid frames only (a frame is
  valid when its receptive field lies within ``lengths``), so a clip's features do not depend on the batch
  it was padded into. Encoders should also take a bare B x 1 x T tensor as full-length rows
  (:func:`as_waveforms`; the traced memory floors draw such tensors of ``Modality.sample_shape``).

View recipe: :class:`AudioViewConfig` (the suite's ``views:`` section): a random crop of ``crop_samples``,
then an optional random gain (uniform in [-gain_db, +gain_db] dB) and optional additive white Gaussian
noise at ``noise_snr_db`` dB signal-to-noise ratio (measured on the crop after the gain), all drawn per
(seed, epoch, sample, view) (:func:`random_view`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..validation import at_least_one, check, non_negative, optional

SHORT_CLIPS = ("error", "skip", "pad")


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class AudioViewConfig:
    """The suite's ``views:`` section for audio (one recipe per view; CPC uses one view)."""

    # samples per training crop at the data's sample rate (CPC: 20480 = 1.28 s at 16 kHz, 128 latents of 10 ms)
    crop_samples: int = field(default=20480, metadata=check(lambda v: _is_int(v) and at_least_one(v),
                                                            "an integer >= 1"))
    # random gain, uniform in [-gain_db, +gain_db] dB per sample and view; 0: none
    gain_db: float = field(default=0.0, metadata=check(non_negative))
    # additive white Gaussian noise at this SNR in dB (may be negative); null: none
    noise_snr_db: float | None = field(default=None, metadata=check(optional(_num), "a number (dB) or null"))
    # training clips shorter than crop_samples: error (one line naming the first), skip (left out of pretraining,
    # one warning with the count), pad (whole clip, zeros after, Waveforms.lengths marks it)
    short_clips: str = field(default="error", metadata=check(lambda v: v in SHORT_CLIPS, "error, skip or pad"))


@dataclass
class Waveforms:
    """A batch of mono waveforms: float32 ``x`` B x 1 x T (zero past each row's length), int64 ``lengths`` B
    (valid samples per row, on ``x``'s device), ``sample_rate`` in Hz. See the module docstring."""

    x: torch.Tensor
    lengths: torch.Tensor
    sample_rate: int = 16000

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: Any, non_blocking: bool = False) -> Waveforms:
        return Waveforms(self.x.to(device, non_blocking=non_blocking),
                         self.lengths.to(device, non_blocking=non_blocking), self.sample_rate)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def mask(self) -> torch.Tensor:
        """bool B x T: True on valid samples."""
        return torch.arange(self.x.shape[-1], device=self.x.device)[None, :] < self.lengths[:, None]

    def clip(self, i: int) -> torch.Tensor:
        """Row ``i``'s valid samples, 1-D."""
        return self.x[i, 0, :int(self.lengths[i])]

    @staticmethod
    def collate(clips: list[torch.Tensor], sample_rate: int, length: int | None = None) -> Waveforms:
        """1-D clips zero-padded to the longest (or to ``length``, which must hold every clip)."""
        lengths = torch.tensor([int(c.shape[-1]) for c in clips], dtype=torch.int64)
        t = int(lengths.max()) if length is None else int(length)
        x = torch.zeros(len(clips), 1, max(t, 1), dtype=torch.float32)
        for i, c in enumerate(clips):
            x[i, 0, :c.shape[-1]] = c
        return Waveforms(x, lengths, int(sample_rate))


def as_waveforms(x: Waveforms | torch.Tensor, sample_rate: int = 16000) -> Waveforms:
    """``x`` as Waveforms: a bare B x 1 x T (or B x T) tensor is B full-length rows at ``sample_rate``."""
    if isinstance(x, Waveforms):
        return x
    if x.dim() == 2:
        x = x[:, None]
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"audio inputs are B x 1 x T waveforms, got a tensor of shape {tuple(x.shape)}")
    return Waveforms(x, torch.full((x.shape[0],), x.shape[-1], dtype=torch.int64, device=x.device), sample_rate)


def check_audio_views(recipes: list[Any]) -> None:
    """One-line ConfigError for a recipe that is not a valid audio view."""
    for r in recipes:
        if not isinstance(r, AudioViewConfig):
            raise ConfigError(f"audio views must be AudioViewConfig (views: {{crop_samples: N, gain_db: G, "
                              f"noise_snr_db: S}}), got {type(r).__name__}")
        if not (_is_int(r.crop_samples) and r.crop_samples >= 1):
            raise ConfigError(f"Bad value for 'views.crop_samples': {r.crop_samples!r}; must be an integer >= 1")
        if not (_num(r.gain_db) and math.isfinite(r.gain_db) and r.gain_db >= 0):
            raise ConfigError(f"Bad value for 'views.gain_db': {r.gain_db!r}; must be a number >= 0")
        if r.noise_snr_db is not None and not (_num(r.noise_snr_db) and math.isfinite(r.noise_snr_db)):
            raise ConfigError(f"Bad value for 'views.noise_snr_db': {r.noise_snr_db!r}; must be a number (dB) or null")
        if r.short_clips not in SHORT_CLIPS:
            raise ConfigError(f"Bad value for 'views.short_clips': {r.short_clips!r}; valid: {', '.join(SHORT_CLIPS)}")


def random_view(clip: torch.Tensor, recipe: AudioViewConfig, generator: torch.Generator) -> torch.Tensor:
    """One training view of a 1-D clip: a random crop of ``recipe.crop_samples`` (a clip not longer than the crop is
    taken whole), then the recipe's gain and white noise. Every draw comes from ``generator`` (the batch source seeds
    one per (seed, epoch, sample)), in this order: the crop start and the gain (one uniform pair), then the noise.
    Returns a new float32 tensor of min(len(clip), crop_samples) samples.

    gain: uniform in [-gain_db, +gain_db] dB, x * 10^(g/20). noise: N(0, s^2) with s = rms(gained crop) /
    10^(noise_snr_db/20), so the crop's SNR is noise_snr_db in expectation; a silent crop gets no noise."""
    n, crop = int(clip.shape[-1]), int(recipe.crop_samples)
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    if n > crop:
        start = min(int(u[0] * (n - crop + 1)), n - crop)
        seg = clip[start:start + crop].float().clone()
    else:
        seg = clip.float().clone()
    if recipe.gain_db:
        seg.mul_(10 ** ((2 * u[1] - 1) * float(recipe.gain_db) / 20))
    if recipe.noise_snr_db is not None:
        noise = torch.randn(seg.shape, generator=generator)
        rms = float(seg.pow(2).mean().sqrt())
        seg.add_(noise, alpha=rms / 10 ** (float(recipe.noise_snr_db) / 20))
    return seg


__all__ = ["AudioViewConfig", "Waveforms", "as_waveforms", "check_audio_views", "random_view", "SHORT_CLIPS"]
