"""Frame-level linear evaluation: a linear classifier on frozen per-frame features against per-frame labels.

CPC's phone probe (van den Oord et al. 2018, arXiv 1807.03748, Sec. 3.1, Table 1): "a linear classifier on the
context features" c_t, one per 10 ms, trained to predict each frame's phone (41 classes from a forced alignment
of LibriSpeech train-clean-100); reported as frame accuracy on the test utterances.

Features: ``Modality.frame_features`` -> one T_i x D tensor per sample (``Method.embed_frames``: the encoder's
context frames, or MFCCs every 10 ms for ``baseline.pixels``); labels: ``Split.frame_targets[target]``, one int64
T_i' per sample at the same rate. A sample's features and labels are aligned from its first frame and cut to
the shorter of the two; a difference of more than ``max_offset`` frames (a different frame rate: 20 ms labels
against 10 ms features, or audio and alignment of different utterances) is one line naming the sample. Samples
without labels (an empty sequence) are left out and counted in the metric's detail. Then as ``linear``:
standardised with the training frames' statistics, softmax regression with AdamW and a cosine schedule, on at
most ``max_train_frames`` training frames (a seeded sample; 0: all), frame accuracy (top-1, %) on every test frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.base import DataInfo
from ..errors import ConfigError
from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy
from .linear import standardize, train_linear


def aligned_frames(feats: list[torch.Tensor], labels: list[torch.Tensor], max_offset: int, names: list[str] | None
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(F x D features, F labels, samples without labels) of every labelled frame of the samples; see the module."""
    xs, ys, unlabelled = [], [], 0
    for i, (f, y) in enumerate(zip(feats, labels, strict=True)):
        if y.numel() == 0:
            unlabelled += 1
            continue
        if abs(f.shape[0] - y.shape[0]) > max_offset:
            who = names[i] if names else f"sample {i}"
            raise ConfigError(f"frame_linear: {who} has {f.shape[0]} feature frames but {y.shape[0]} frame labels "
                              f"(more than max_offset={max_offset} apart): the labels are not at the features' rate "
                              "(10 ms for cpc-conv at 16 kHz) or belong to another clip")
        n = min(f.shape[0], y.shape[0])
        xs.append(f[:n])
        ys.append(y[:n].long())
    if not xs:
        raise ConfigError("frame_linear: no sample of the split has frame labels")
    return torch.cat(xs), torch.cat(ys), unlabelled


@register_protocol("frame_linear")
class FrameLinearProbe(Protocol):
    version = 1
    per_target = False  # reads frame labels (``target``), not the label set the runner retargets

    @dataclass
    class Config:
        target: str = "phone"  # a frame-level label set of the data (Split.frame_targets)
        epochs: int = 10
        batch_size: int = 4096
        lr: float = 1e-3
        weight_decay: float = 0.0
        max_train_frames: int = 0  # a seeded sample of the training frames (0: all of them)
        max_offset: int = 2  # frames by which a sample's features and labels may differ in length

    def preflight(self, data: DataInfo, root) -> None:
        self._check(data)

    def _check(self, data: DataInfo) -> list[str]:
        names = data.frame_targets.get(self.cfg.target)
        if names is None:
            have = ", ".join(data.frame_targets) or "none"
            raise ConfigError(f"Bad value for 'frame_linear.target': {self.cfg.target!r}: data set {data.name} has no "
                              f"such frame labels (its frame label sets: {have}; LibriSpeech's phones need the CPC "
                              "alignment file, see the librispeech100 option phones)")
        for key in ("epochs", "batch_size"):
            if getattr(self.cfg, key) < 1:
                raise ConfigError(f"Bad value for 'frame_linear.{key}': {getattr(self.cfg, key)}; 1 or more")
        if self.cfg.max_train_frames < 0 or self.cfg.max_offset < 0:
            raise ConfigError("Bad value for 'frame_linear.max_train_frames' / 'max_offset': 0 or more")
        return names

    def _frames(self, ctx: EvalContext, split: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        s = ctx.splits[split]
        feats = ctx.modality.frame_features(ctx.method, s, ctx.data, ctx.device, ctx.batch_size)
        labels = s.frame_targets.get(self.cfg.target)
        if labels is None:
            raise ConfigError(f"frame_linear: the {split} split has no '{self.cfg.target}' frame labels")
        return aligned_frames(feats, labels, self.cfg.max_offset, (s.extra or {}).get("files"))

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        c = self.cfg
        classes = self._check(ctx.data)
        x_train, y_train, _ = self._frames(ctx, "train")
        x_test, y_test, _ = self._frames(ctx, "test")
        if c.max_train_frames and len(x_train) > c.max_train_frames:
            keep = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(ctx.seed))[:c.max_train_frames]
            x_train, y_train = x_train[keep], y_train[keep]
        x_train, x_test = standardize(x_train, x_test)
        head = train_linear(x_train, y_train, len(classes), c.epochs, c.batch_size, c.lr, c.weight_decay, ctx.seed)
        with torch.no_grad():
            scores = head(x_test)
        return {"top1": Metric(topk_accuracy(scores, y_test, 1), True, "%", "frame_linear")}
