"""Noisy-label evaluation: a classifier trained on corrupted training labels, tested on clean test labels.

For each mode and rate r (default 0, 0.1, 0.2, 0.4, 0.6) and each noise seed
0..repeats-1, :func:`~sslbench.protocols.subsets.noisy_labels` corrupts a copy of the
training labels:

- ``symmetric``: exactly round(r N) labels replaced by a uniformly drawn other class;
- ``asymmetric``: class-dependent flips with the fixed confusion map of Patrini et
  al. 2017 (arXiv 1609.03683; CIFAR-10 truck->automobile, bird->airplane,
  deer->horse, cat<->dog; MNIST 2->7, 3->8, 5<->6, 7->1; other data sets
  c -> (c+1) mod C), round(r N_src) labels of the source classes.

The noise depends only on the labels, the mode, the rate and the noise seed (not on
the method or the run seed), so every method sees the same corrupted labels.
``head: linear`` trains :func:`~sslbench.protocols.linear.train_linear` on the cached
frozen features (standardised with the training split's statistics, as ``linear``);
``head: finetune`` fine-tunes a copy of the encoder
(:func:`~sslbench.protocols.finetune.finetune_and_test`).

Metrics: ``acc@sym0.2``, ``acc@asym0.4``, ... (top-1 % on the clean test labels: mean
over the noise seeds, per_seed, std, n, ci95) and ``noise@sym0.2`` = the measured noise
rate (changed / labels the noise could touch; ``detail.fraction_of_all_labels`` gives
changed / N). Rate 0 is computed once and reported under every mode. The test labels
are never touched; the protocol checks their digest before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy
from .few_shot import HEADS, probe_seed
from .finetune import finetune_and_test
from .linear import standardize, train_linear
from .subsets import NOISE_MODES, labels_digest, noisy_labels, repeated_metric

MODE_TAGS = {"symmetric": "sym", "asymmetric": "asym"}


def point_label(mode: str, rate: float) -> str:
    """``sym0.2``, ``asym0.4``, ``sym0``."""
    return f"{MODE_TAGS[mode]}{float(rate):g}"


@register_protocol("noisy_label")
class NoisyLabel(Protocol):
    version = 1

    @dataclass
    class Config:
        rates: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.4, 0.6])
        modes: list[str] = field(default_factory=lambda: ["symmetric"])  # symmetric | asymmetric
        repeats: int = 5  # noise seeds 0..repeats-1
        head: str = "linear"  # linear (frozen features) | finetune (the encoder too)
        epochs: int = 50
        batch_size: int = 1024
        lr: float = 1e-3
        weight_decay: float = 1e-4
        augment: bool = False  # finetune head only
        views: dict = field(default_factory=dict)  # finetune head only

    def _check(self) -> None:
        c = self.cfg
        if c.head not in HEADS:
            raise ConfigError(f"Bad value for 'protocols.noisy_label.head': {c.head!r}. Valid: {', '.join(HEADS)}")
        for m in c.modes:
            if m not in NOISE_MODES:
                raise ConfigError(f"Bad value in 'protocols.noisy_label.modes': {m!r}. Valid: {', '.join(NOISE_MODES)}")
        for r in c.rates:
            if not 0.0 <= float(r) <= 1.0:
                raise ConfigError(f"Bad value in 'protocols.noisy_label.rates': {r} is not in [0, 1]")
        if c.repeats < 1:
            raise ConfigError(f"protocols.noisy_label.repeats must be at least 1, got {c.repeats}")
        if not c.rates or not c.modes:
            raise ConfigError("protocols.noisy_label needs at least one rate and one mode")

    def trains_encoder(self) -> bool:
        return self.cfg.head == "finetune"

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        self._check()
        c = self.cfg
        test_before = labels_digest(ctx.splits["test"].labels)
        if c.head == "linear":
            x_train, y_train = ctx.features("train")
            x_test, y_test = ctx.features("test")
            cached_before = labels_digest(y_test)
            x_train, x_test = standardize(x_train, x_test)
        else:
            y_train = ctx.splits["train"].labels
        train_before = labels_digest(y_train)
        num_classes = ctx.data.num_classes
        out: dict[str, Metric] = {}
        clean: tuple[list[float], list[float], list[float]] | None = None  # rate 0, shared by the modes
        for mode in c.modes:
            for rate in c.rates:
                rate = float(rate)
                if rate == 0.0 and clean is not None:
                    accs, measured, overall = clean
                else:
                    accs, measured, overall = [], [], []
                    for r in range(c.repeats):
                        noisy, m = noisy_labels(y_train, rate, mode, num_classes, seed=r, dataset=ctx.data.name,
                                                classes=ctx.data.classes)
                        measured.append(m)
                        overall.append(float((noisy != y_train).double().mean()))
                        if c.head == "linear":
                            head = train_linear(x_train, noisy, num_classes, c.epochs, c.batch_size, c.lr,
                                                c.weight_decay, probe_seed(ctx.seed, r))
                            with torch.no_grad():
                                accs.append(topk_accuracy(head(x_test), y_test, 1))
                        else:
                            accs.append(finetune_and_test(ctx, torch.arange(len(noisy)), noisy, c,
                                                          seed=probe_seed(ctx.seed, r)))
                    if rate == 0.0:
                        clean = (accs, measured, overall)
                label = point_label(mode, rate)
                out[f"acc@{label}"] = repeated_metric(accs, "noisy_label", "%")
                out[f"noise@{label}"] = repeated_metric(
                    measured, "noisy_label", "fraction", higher_is_better=False,
                    detail={"requested": rate, "mode": mode,
                            "fraction_of_all_labels": sum(overall) / len(overall)})
        # the evaluation must never see corrupted test labels, nor corrupt the run's training labels
        if labels_digest(ctx.splits["test"].labels) != test_before or labels_digest(y_train) != train_before or (
                c.head == "linear" and labels_digest(ctx.features("test")[1]) != cached_before):
            raise RuntimeError("noisy_label modified the run's labels; this is a bug in the protocol")
        return out


__all__ = ["NoisyLabel", "point_label"]
