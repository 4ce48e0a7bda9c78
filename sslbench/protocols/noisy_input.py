"""Noisy-input evaluation: a classifier trained on perturbed training inputs, tested on clean test inputs.

The input-noise counterpart of ``noisy_label``: for each rate r (default 0, 0.1, 0.2, 0.4) and each noise
seed 0..repeats-1, the registered perturbation ``perturbation`` (:mod:`sslbench.perturbations`; for text:
``word_dropout``, ``word_swap``, ``char_noise``, ``back_translation``) rewrites the training split's inputs
(it receives ``list(Split.samples)``; what it returns becomes the ``samples`` of a copy of the split) with
``options``; the labels and the test split are never touched (the
protocol checks them, and the clean training inputs, before and after). The noise depends only on the
training inputs, the perturbation, its options, the rate and the noise seed (not on the method or the run
seed), so every method sees the same perturbed texts. The perturbation is looked up in the registry, and
one registered for another modality than the data's is refused with one line, before any run starts
(:meth:`NoisyInput.preflight`, which also checks the rates and options and loads what the perturbation
needs, such as translation models).

``head: linear`` embeds each perturbed training split with the frozen encoder (the run's cached clean
features are neither used for it nor overwritten; rate 0 reuses them, being the identity), standardises
with that split's statistics (as ``linear``) and trains :func:`~sslbench.protocols.linear.train_linear`;
``head: finetune`` fine-tunes a copy of the encoder on the perturbed split
(:func:`~sslbench.protocols.finetune.finetune_and_test` with ``split=``).

Metrics: ``acc@word_dropout0.2`` (top-1 % on the clean test split: mean over the noise seeds, per_seed,
std, n, ci95) and ``noise@word_dropout0.2`` = the measured noise in the perturbation's unit (word edits per
word, word positions moved per word, character edits per letter, or the fraction of samples changed; see
:func:`~sslbench.perturbations.measured_noise`), with ``detail.fraction_of_samples_changed``, the requested
rate and the options. Rate 0 trains on the clean inputs (each noise seed its own head seed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.base import DataInfo, Split
from ..errors import ConfigError, UnknownNameError
from ..perturbations import check_perturbation, differs, measured_noise, serves, with_defaults
from ..plugins import PERTURBATIONS, register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy
from .few_shot import HEADS, probe_seed
from .finetune import finetune_and_test
from .linear import standardize, train_linear
from .subsets import labels_digest, repeated_metric

WHERE = "protocols.noisy_input"


def point_label(perturbation: str, rate: float) -> str:
    """``word_dropout0.2``, ``back_translation1``, ``char_noise0``."""
    return f"{perturbation}{float(rate):g}"


def perturbed_split(split: Split, samples: list) -> Split:
    """A copy of ``split`` holding ``samples`` as its inputs (labels and everything else shared)."""
    if len(samples) != len(split):
        raise RuntimeError(f"a perturbation returned {len(samples)} samples for {len(split)}; this is a bug in it")
    return dataclasses.replace(split, samples=samples)


def _changed(samples: Any, before: list) -> bool:
    return len(samples) != len(before) or any(differs(a, b) for a, b in zip(samples, before, strict=True))


@register_protocol("noisy_input")
class NoisyInput(Protocol):
    version = 1

    @dataclass
    class Config:
        perturbation: str = "word_dropout"  # a registered perturbation of the data's modality
        options: dict = field(default_factory=dict)  # the perturbation's options
        rates: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.4])
        repeats: int = 3  # noise seeds 0..repeats-1
        head: str = "linear"  # linear (frozen features) | finetune (the encoder too)
        epochs: int = 50
        batch_size: int = 1024
        lr: float = 1e-3
        weight_decay: float = 1e-4
        augment: bool = False  # finetune head only
        views: dict = field(default_factory=dict)  # finetune head only

    def _resolve(self, data: DataInfo) -> Any:
        """Check the configuration against ``data``; the registered perturbation function."""
        c = self.cfg
        if c.head not in HEADS:
            raise ConfigError(f"Bad value for '{WHERE}.head': {c.head!r}. Valid: {', '.join(HEADS)}")
        if c.repeats < 1:
            raise ConfigError(f"{WHERE}.repeats must be at least 1, got {c.repeats}")
        if not c.rates:
            raise ConfigError(f"{WHERE} needs at least one rate")
        if not isinstance(c.options, dict):
            raise ConfigError(f"Bad value for '{WHERE}.options': {c.options!r}; valid: a mapping of the "
                              "perturbation's options")
        try:
            fn = PERTURBATIONS.get(c.perturbation)
        except UnknownNameError as e:
            raise UnknownNameError(f"{e} (in {WHERE}.perturbation)") from e
        if not serves(fn, data.modality):
            fits = [n for n in PERTURBATIONS.names() if serves(PERTURBATIONS.get(n), data.modality)]
            raise ConfigError(f"Perturbation '{c.perturbation}' is for {getattr(fn, 'modality', '?')} data, but "
                              f"{data.name} is {data.modality} data (in {WHERE}.perturbation). Valid for "
                              f"{data.modality}: {', '.join(fits) or '(none registered)'}")
        for rate in c.rates:
            check_perturbation(fn, rate, c.options, WHERE)
        return fn

    def preflight(self, data: DataInfo, root: Path) -> None:
        """The perturbation exists, serves the data's modality, takes these rates and options, and has what it
        needs (back-translation loads its models here: a missing one fails before any run)."""
        fn = self._resolve(data)
        prepare = getattr(fn, "prepare", None)
        if prepare is not None and any(float(r) > 0 for r in self.cfg.rates):
            prepare(with_defaults(fn, self.cfg.options))

    def trains_encoder(self) -> bool:
        return self.cfg.head == "finetune"

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        c = self.cfg
        fn = self._resolve(ctx.data)
        train, test = ctx.splits["train"], ctx.splits["test"]
        if train.samples is None:
            raise ConfigError(f"{WHERE}: the training split of {ctx.data.name} holds no samples to perturb")
        clean = list(train.samples)
        test_inputs = list(test.samples) if test.samples is not None else None
        digests = (labels_digest(train.labels), labels_digest(test.labels))
        if c.head == "linear":
            x_test, y_test = ctx.features("test")
            y_train = train.labels.clone()
        num_classes = ctx.data.num_classes
        measure = getattr(fn, "measure", "samples")
        out: dict[str, Metric] = {}
        for rate in c.rates:
            rate = float(rate)
            accs, measured, changed = [], [], []
            for r in range(c.repeats):
                if rate == 0.0:
                    split, m, ch = train, 0.0, 0.0
                else:
                    split = perturbed_split(train, fn(list(clean), rate, seed=r, **c.options))
                    m, ch = measured_noise(clean, split.samples, measure)
                measured.append(m)
                changed.append(ch)
                seed = probe_seed(ctx.seed, r)
                if c.head == "linear":
                    x_train = ctx.features("train")[0] if split is train else ctx.modality.features(
                        ctx.method, split, ctx.data, ctx.device, ctx.batch_size, {})
                    xs, xt = standardize(x_train, x_test)
                    head = train_linear(xs, y_train, num_classes, c.epochs, c.batch_size, c.lr, c.weight_decay,
                                        seed)
                    with torch.no_grad():
                        accs.append(topk_accuracy(head(xt), y_test, 1))
                else:
                    accs.append(finetune_and_test(ctx, torch.arange(len(split)), split.labels, c, seed=seed,
                                                  split=split))
            label = point_label(c.perturbation, rate)
            detail = {"requested": rate, "perturbation": c.perturbation, "options": dict(c.options)}
            out[f"acc@{label}"] = repeated_metric(accs, "noisy_input", "%", detail=detail)
            out[f"noise@{label}"] = repeated_metric(
                measured, "noisy_input", "fraction", higher_is_better=False,
                detail={**detail, "measure": measure, "fraction_of_samples_changed": sum(changed) / len(changed)})
        # the evaluation must never see perturbed test inputs, nor change the run's training inputs or labels
        if (_changed(train.samples, clean) or (test_inputs is not None and _changed(test.samples, test_inputs))
                or (labels_digest(train.labels), labels_digest(test.labels)) != digests):
            raise RuntimeError("noisy_input modified the run's inputs or labels; this is a bug in the protocol")
        return out


__all__ = ["NoisyInput", "point_label", "perturbed_split"]
