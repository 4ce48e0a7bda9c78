"""Audio: mono waveforms held in memory (or memory-mapped) as variable-length clips.

- Splits (``data/audio.py``): ``samples`` a sequence of 1-D float32 tensors (a ``Clips``, or any list of them),
  ``labels`` int64 N, ``targets`` further label sets (FSDD: ``speaker``), ``extra["files"]`` one name per clip
  (for messages), ``extra["sample_rate"]`` in Hz.
- Every input batch is a :class:`~sslbench.views.audio.Waveforms` (``x`` float32 B x 1 x T zero-padded,
  ``lengths`` int64 B, ``sample_rate``): see :mod:`sslbench.views.audio` for the exact contract.
- Pretraining (:class:`AudioBatchSource`): batches of sample indices in an order drawn from ``(seed, epoch)``;
  each view of each sample is a random crop of ``views.crop_samples`` with the optional gain and noise, every
  draw from a generator seeded by ``(seed, epoch, sample index)`` (independent of the batch it falls in;
  the method's own randomness comes from the global generator, seeded per step). Views are B x 1 x crop,
  ``lengths`` all equal to the crop. Clips shorter than the crop (``views.short_clips``): ``error`` (the
  default; one line naming the first such file, checked before any run), ``skip`` (pretraining draws only from
  the long-enough clips; one warning with the count; the probes still see every clip whole), ``pad`` (the clip
  whole at the start of its row, zeros after, ``lengths`` its length). ``Batch.groups`` is
  ``split.targets[method.group_by]`` when the method sets ``group_by`` (CPC's same-speaker negatives).
- Evaluation: whole clips, zero-padded per batch; :meth:`AudioModality.features` batches them sorted by length
  (at most ``EVAL_BATCH_SAMPLES`` padded samples a batch) and returns features in the split's order (the
  encoder pools over each row's valid frames, so a clip's features do not depend on its batch companions).
- Fine-tuning: the evaluation inputs; ``augment: true`` gives random crops (``FINETUNE_VIEWS``, overridden
  by the protocol's ``views``; shorter clips whole, padded).
- Floor (``baseline.pixels``): MFCCs (:func:`mfcc_features`), 78 features per clip.
- Throughput in seconds of audio per second: a step processes ``batch_size x crop_samples / sample_rate``
  seconds (``BatchSource.samples_per_step`` is that float; under ``short_clips: pad`` the padding counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ..config import update_dataclass
from ..data.base import DataFileError, DataInfo, Split
from ..errors import ConfigError
from ..method import Batch
from ..plugins import register_modality
from ..registry import warn_once
from ..seeding import step_seed
from ..views.audio import AudioViewConfig, Waveforms, as_waveforms, check_audio_views, random_view
from .base import IndexedBatchSource, Modality, subset_targets

DEFAULT_SAMPLE_RATE = 16000
EVAL_BATCH_SAMPLES = 1 << 21  # padded samples per evaluation batch (B x T_max): 131 s of 16 kHz audio
FINETUNE_VIEWS = dict(crop_samples=20480, gain_db=0.0, noise_snr_db=None, short_clips="pad")

# The MFCC floor (the CPC paper's "MFCC features" row): 13 coefficients (c0 included; DCT-II, ortho) of the log
# (+1e-6) 40-band mel power spectrum, 25 ms Hann windows every 10 ms (400 / 160 samples at 16 kHz), no centring
# (frames lie inside the clip), plus deltas and delta-deltas (torchaudio.functional.compute_deltas, window 5) over
# each clip's own frames: 39 per frame, pooled over the clip's frames as mean and standard deviation = 78.
N_MFCC, N_MELS, WIN_S, HOP_S, DELTA_WIN = 13, 40, 0.025, 0.010, 5
MFCC_DIM = 2 * 3 * N_MFCC


def split_rate(split: Split, data: DataInfo | None = None) -> int:
    """The split's sample rate in Hz (``extra["sample_rate"]``, else the data's, else 16000)."""
    rate = split.extra.get("sample_rate") if split.extra else None
    return int(rate or getattr(data, "sample_rate", 0) or DEFAULT_SAMPLE_RATE)


def clip_lengths(samples: Sequence[torch.Tensor]) -> torch.Tensor:
    """int64 N: each clip's number of samples."""
    lengths = getattr(samples, "lengths", None)
    if isinstance(lengths, torch.Tensor):
        return lengths
    return torch.tensor([int(c.shape[-1]) for c in samples], dtype=torch.int64)


def _take(samples: Sequence[torch.Tensor], idx: torch.Tensor) -> Sequence[torch.Tensor]:
    if hasattr(samples, "lengths"):  # a Clips: indexed by a tensor, shares its storage
        return samples[idx]
    return [samples[i] for i in idx.tolist()]


def _file(split: Split, i: int) -> str:
    files = split.extra.get("files") if split.extra else None
    return str(files[i]) if files is not None and i < len(files) else f"clip {i}"


def short_policy(recipes: list[AudioViewConfig]) -> str:
    """The views' policy for clips shorter than the crop: error if any view says so, else skip, else pad."""
    policies = {r.short_clips for r in recipes}
    return next(p for p in ("error", "skip", "pad") if p in policies)


def usable_for_crops(split: Split, recipes: list[AudioViewConfig]) -> torch.Tensor:
    """Indices of the training clips pretraining draws from, by the views' ``short_clips`` policy (the longest
    crop of the views counts); ``error`` with a short clip raises one line naming the first."""
    crop = max(r.crop_samples for r in recipes)
    lengths = clip_lengths(split.samples)
    short = torch.nonzero(lengths < crop).flatten()
    policy = short_policy(recipes)
    if not len(short) or policy == "pad":
        return torch.arange(len(lengths))
    rate = split_rate(split)
    first = int(short[0])
    what = (f"{_file(split, first)} is {int(lengths[first])} samples long ({int(lengths[first]) / rate:.3f} s at "
            f"{rate} Hz), shorter than one window (views.crop_samples={crop})")
    if policy == "error" or len(short) == len(lengths):
        raise DataFileError(f"{what}; {len(short)} of {len(lengths)} training clips are shorter: lower views.crop_samples, "
                            "or set views.short_clips: skip (leave them out of pretraining) or pad")
    warn_once(f"{len(short)} of {len(lengths)} training clips are shorter than views.crop_samples={crop} and are left "
              f"out of pretraining (views.short_clips: skip); the first: {what}", colour="yellow")
    return torch.nonzero(lengths >= crop).flatten()


class AudioBatchSource(IndexedBatchSource):
    """Pretraining batches: ``Batch(views=[Waveforms B x 1 x crop, ...], index, labels, groups)``, one view per
    recipe; see the module docstring for the seeding and the short-clip policy."""

    def __init__(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                 device: torch.device):
        self.recipes = method.views(views_cfg if views_cfg is not None else AudioViewConfig())
        check_audio_views(self.recipes)
        self.pool = usable_for_crops(split, self.recipes)  # training-split positions pretraining draws from
        super().__init__(len(self.pool), cfg.batch_size, seed, device)
        self.split, self.rate = split, split_rate(split, data)
        self.samples_per_step = cfg.batch_size * self.recipes[0].crop_samples / self.rate  # seconds of audio
        self.labels = split.labels if method.needs_labels else None
        group_by = getattr(method, "group_by", None)
        if group_by is not None and group_by not in split.targets:
            raise ConfigError(f"{type(method).__name__} groups its batches by {group_by!r}, which this data set does "
                              f"not label; its label sets: {', '.join(split.targets) or 'none beside the labels'}")
        self.groups = split.targets[group_by] if group_by is not None else None
        self._epoch = 0

    def epoch_batches(self, epoch: int, start: int) -> Iterator[Batch]:
        self._epoch = epoch
        yield from super().epoch_batches(epoch, start)

    def make_batch(self, idx: torch.Tensor) -> Batch:
        real = self.pool[idx]
        samples = self.split.samples
        gens = [torch.Generator().manual_seed(step_seed(self.seed, self._epoch * 10_000_019 + int(i)))
                for i in real.tolist()]
        clips = [samples[int(i)] for i in real.tolist()]
        views = []
        for recipe in self.recipes:
            segs = [random_view(c, recipe, g) for c, g in zip(clips, gens, strict=True)]
            views.append(Waveforms.collate(segs, self.rate, recipe.crop_samples).to(self.device))
        dev = self.device
        return Batch(views=views, index=real.to(dev),
                     labels=self.labels[real].to(dev) if self.labels is not None else None,
                     groups=self.groups[real].to(dev) if self.groups is not None else None)


_mfcc_cache: dict[tuple[int, str, bool], torch.nn.Module] = {}


def _mfcc(rate: int, device: torch.device, center: bool = False) -> torch.nn.Module:
    """torchaudio's MFCC at ``rate`` (25 ms windows every 10 ms); ``center``: windows centred on the frame starts."""
    key = (rate, str(device), center)
    if key not in _mfcc_cache:
        import torchaudio

        n_fft, hop = round(WIN_S * rate), round(HOP_S * rate)
        _mfcc_cache[key] = torchaudio.transforms.MFCC(
            sample_rate=rate, n_mfcc=N_MFCC, log_mels=True,
            melkwargs=dict(n_fft=n_fft, win_length=n_fft, hop_length=hop, n_mels=N_MELS, center=center),
        ).to(device)
    return _mfcc_cache[key]


@torch.no_grad()
def mfcc_features(w: Waveforms) -> torch.Tensor:
    """The MFCC floor: B x 78 (mean and std over each clip's valid frames of 13 MFCCs, deltas, delta-deltas).

    Only frames lying wholly inside a clip count (no centring; a clip shorter than one window gives one frame
    over the clip and zeros), so the features do not depend on the padding of the batch."""
    import torchaudio.functional as AF

    rate = int(w.sample_rate)
    n_fft, hop = round(WIN_S * rate), round(HOP_S * rate)
    x = w.x[:, 0].float()
    if x.shape[-1] < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    coeffs = _mfcc(rate, x.device)(x)  # B x 13 x F
    frames = ((w.lengths - n_fft).clamp(min=0) // hop + 1).tolist()
    out = []
    for i, f in enumerate(frames):
        c = coeffs[i, :, :f]
        d1 = AF.compute_deltas(c, win_length=DELTA_WIN)
        d2 = AF.compute_deltas(d1, win_length=DELTA_WIN)
        feats = torch.cat([c, d1, d2])  # 39 x f
        out.append(torch.cat([feats.mean(dim=1), feats.std(dim=1, unbiased=False)]))
    return torch.stack(out)


@torch.no_grad()
def mfcc_frames(w: Waveforms) -> tuple[torch.Tensor, torch.Tensor]:
    """The MFCC floor of frame probes: (B x T' x 39, int64 B valid frames): 13 MFCCs with deltas and
    delta-deltas every 10 ms (25 ms windows centred on the frame starts, as a 10 ms alignment labels them: frame
    t covers samples [t hop, (t + 1) hop)), T' = length // hop per clip, deltas over each clip's own frames."""
    import torchaudio.functional as AF

    rate = int(w.sample_rate)
    n_fft, hop = round(WIN_S * rate), round(HOP_S * rate)
    mfcc = _mfcc(rate, w.x.device, center=True)
    valid = (w.lengths // hop).clamp(min=1)
    t_max = int(valid.max()) if len(valid) else 0
    out = torch.zeros(w.x.shape[0], t_max, 3 * N_MFCC, device=w.x.device)
    for i, (n, f) in enumerate(zip(w.lengths.tolist(), valid.tolist(), strict=True)):
        x = w.x[i, 0, :max(int(n), 1)].float()
        c = mfcc(torch.nn.functional.pad(x, (0, max(0, n_fft - x.shape[-1]))))[:, :f]  # 13 x f
        d1 = AF.compute_deltas(c, win_length=DELTA_WIN)
        d2 = AF.compute_deltas(d1, win_length=DELTA_WIN)
        out[i, :c.shape[1]] = torch.cat([c, d1, d2]).T
    return out, valid


@register_modality("audio")
class AudioModality(Modality):
    unit = "seconds"  # of audio: throughput is seconds of audio per second
    check_suite = "fsdd-cpc"  # the smallest real-data suite: smoke runs, benchmarks/gpu_check.py
    view_config = AudioViewConfig
    supports_finetune = True

    def sample_shape(self, data: DataInfo) -> tuple[int, ...]:
        """One default training window: 1 x 20480 (the traced memory floors; encoders take bare tensors as
        full-length rows)."""
        return (1, AudioViewConfig().crop_samples)

    def probe_batch(self, data: DataInfo, batch: int, view: Any, generator: torch.Generator) -> Waveforms:
        """``batch`` full windows of the view's ``crop_samples`` of uniform noise in [-1, 1)."""
        crop = int(getattr(view, "crop_samples", None) or AudioViewConfig().crop_samples)
        x = torch.rand(batch, 1, crop, generator=generator) * 2 - 1
        rate = int(getattr(data, "sample_rate", 0) or DEFAULT_SAMPLE_RATE)
        return Waveforms(x, torch.full((batch,), crop, dtype=torch.int64), rate)

    def raw_features(self, x: Any) -> torch.Tensor:
        return mfcc_features(as_waveforms(x))

    def raw_feature_dim(self, data: DataInfo) -> int:
        return MFCC_DIM

    def check_views(self, views_cfg: Any, recipes: list[Any], split: Split) -> None:
        check_audio_views(recipes)
        usable_for_crops(split, recipes)

    def batch_source(self, split: Split, data: DataInfo, method: Any, views_cfg: Any, cfg: Any, seed: int,
                     device: torch.device) -> AudioBatchSource:
        return AudioBatchSource(split, data, method, views_cfg, cfg, seed, device)

    def subset(self, split: Split, idx: torch.Tensor) -> Split:
        idx = torch.as_tensor(idx, dtype=torch.int64)
        extra = dict(split.extra or {})
        if extra.get("files") is not None:
            extra["files"] = [extra["files"][i] for i in idx.tolist()]
        frames = {k: [v[i] for i in idx.tolist()] for k, v in split.frame_targets.items()}
        return Split(labels=split.labels[idx], samples=_take(split.samples, idx), extra=extra,
                     targets=subset_targets(split, idx), frame_targets=frames)

    def eval_inputs(self, split: Split, data: DataInfo, device: torch.device, batch_size: int,
                    indices: torch.Tensor | None = None) -> Iterator[Waveforms]:
        """Whole clips of the split (or of ``indices``) in order, ``batch_size`` a batch, zero-padded to the
        batch's longest: Waveforms on ``device``."""
        idx = torch.arange(len(split)) if indices is None else torch.as_tensor(indices).long()
        rate = split_rate(split, data)
        for i in range(0, len(idx), batch_size):
            yield Waveforms.collate([split.samples[int(j)] for j in idx[i:i + batch_size]], rate).to(device)

    def eval_batches(self, split: Split, data: DataInfo, device: torch.device, batch_size: int
                     ) -> Iterator[tuple[torch.Tensor, Waveforms]]:
        """Whole clips sorted by length, at most ``batch_size`` clips and ``EVAL_BATCH_SAMPLES`` padded samples a
        batch. A clip's features do not depend on its batch (the encoder pools over its valid frames, and its
        frames are zeroed past the clip's end), so the sorting changes only the time."""
        lengths = clip_lengths(split.samples)
        order = torch.argsort(lengths, stable=True)
        rate = split_rate(split, data)
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and j - i < batch_size and int(lengths[order[j]]) * (j - i + 1) <= EVAL_BATCH_SAMPLES:
                j += 1
            yield order[i:j], Waveforms.collate([split.samples[int(k)] for k in order[i:j]], rate).to(device)
            i = j

    def raw_frame_features(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return mfcc_frames(as_waveforms(x))

    def finetune_inputs(self, split: Split, data: DataInfo, device: torch.device, augment: bool,
                        views: dict) -> Callable[[torch.Tensor], Waveforms]:
        """Whole clips (the evaluation inputs); with ``augment`` random crops of ``FINETUNE_VIEWS`` (the protocol's
        ``views`` override it), each sample's draws from a generator seeded by torch's global generator."""
        if not augment:
            return super().finetune_inputs(split, data, device, False, views)
        recipe = AudioViewConfig(**FINETUNE_VIEWS)
        update_dataclass(recipe, dict(views or {}), "finetune.views")
        check_audio_views([recipe])
        rate = split_rate(split, data)

        def inputs(idx: torch.Tensor) -> Waveforms:
            segs = []
            for i in torch.as_tensor(idx).tolist():
                g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
                segs.append(random_view(split.samples[int(i)], recipe, g))
            return Waveforms.collate(segs, rate).to(device)

        return inputs


__all__ = ["AudioModality", "AudioBatchSource", "mfcc_features", "MFCC_DIM", "split_rate", "clip_lengths"]
