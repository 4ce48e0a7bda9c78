"""Protocol base class and the evaluation context shared by every protocol.

A protocol receives an :class:`EvalContext` (the trained method, the data, the
device, the seed) and returns named :class:`~sslbench.results.records.Metric` values. The
context computes each split's frozen features once and caches them, so linear,
kNN, few-shot and noisy-label protocols of one run share one forward pass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..data.base import DataInfo, Split
from ..plugins import get_modality
from ..results.records import Metric


class Protocol:
    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    # evaluated again on each further label set of ``dataset.targets`` (False: it reads labels of its own,
    # frame_linear's frame labels, so a retargeted run would repeat it)
    per_target: ClassVar[bool] = True

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        raise NotImplementedError

    def trains_encoder(self) -> bool:
        """Whether this configuration trains the encoder (fine-tuning), which the modality must support."""
        return False

    def preflight(self, data: DataInfo, root: Path) -> None:
        """Check, before any run starts, what this protocol needs beyond the suite's data set (its own files
        under the data root ``root``, a named model): raise a one-line ConfigError/DataNotFoundError.
        Called once per run command by :func:`sslbench.build.preflight`; the default needs nothing."""


@dataclass
class EvalContext:
    method: Any  # sslbench.method.Method (its .embed gives frozen features)
    data: DataInfo
    splits: dict[str, Split]  # keys "train" and "test"
    device: torch.device
    seed: int = 0
    batch_size: int = 512
    data_root: Path | None = None  # the run's data root (protocols with their own files: sts); None: data_root()
    target: str | None = None  # the label set protocols see: None, the split's labels; else a Split.targets name
    _feats: dict[str, torch.Tensor] = field(default_factory=dict)  # split -> features, shared by retargeted copies
    _labels: dict[str, torch.Tensor] = field(default_factory=dict)
    _shared: dict = field(default_factory=dict)  # the modality's own per-run memo (a graph's one embedding)

    @property
    def modality(self) -> Any:
        """The data's :class:`~sslbench.modalities.base.Modality`."""
        return get_modality(self.data.modality)

    def features(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen features N x D (float32, on CPU) and labels N of a split, computed once per run by the
        modality (a graph's node splits share one forward pass over the whole graph)."""
        if split not in self._feats:
            s = self.splits[split]
            self._feats[split] = self.modality.features(self.method, s, self.data, self.device, self.batch_size,
                                                        self._shared)
        if split not in self._labels:
            self._labels[split] = self.splits[split].labels.clone()
        return self._feats[split], self._labels[split]

    def retarget(self, target: str) -> EvalContext:
        """This context with another label set of the same samples (``Split.targets[target]``, class names
        ``DataInfo.targets[target]``) as every split's labels; the frozen features are shared, not recomputed."""
        names = self.data.targets[target]
        splits = {k: dataclasses.replace(s, labels=s.targets[target]) for k, s in self.splits.items()}
        data = dataclasses.replace(self.data, num_classes=len(names), classes=list(names))
        return EvalContext(self.method, data, splits, self.device, self.seed, self.batch_size, self.data_root,
                           target, _feats=self._feats, _shared=self._shared)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of rows whose label is among the k highest scores: scores N x C, labels N."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return 100.0 * (top == labels[:, None]).any(dim=1).float().mean().item()
