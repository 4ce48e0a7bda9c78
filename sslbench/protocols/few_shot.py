"""Few-shot evaluation: accuracy from N labelled training examples, over several subset seeds.

Points (each one metric, all in one run):

- ``n``: N examples in total, class-balanced by default (SCL, Gunel et al. 2021,
  arXiv 2011.01403, Sec. 5: N = 20, 100, 1000)            -> ``acc@n20``, ``acc@n100``
- ``per_class``: k examples of every class                 -> ``acc@k5``
- ``fractions``: a fraction of the training labels (SimCLR, Chen et al. 2020,
  Table 7: 1% and 10%)                                      -> ``acc@p1``, ``acc@p10``

Each point is repeated over subset seeds 0..repeats-1. The subsets come from
:func:`~sslbench.protocols.subsets.few_shot_indices` and depend only on the training
labels, the point and the subset seed, never on the method or the run seed, so every
method is scored on the same examples. A metric's value is the mean over the repeats,
with ``per_seed``, ``std``, ``n`` and ``ci95`` (95% t-interval half-width).

``head: linear`` trains a softmax regression (:func:`~sslbench.protocols.linear.train_linear`)
on the cached frozen features of the subset, standardised with the subset's own mean
and std (features constant on the subset are set to 0: they carry no information and
would otherwise be divided by ~0 on the test split). ``head: finetune`` fine-tunes a
copy of the encoder on the subset (:func:`~sslbench.protocols.finetune.finetune_and_test`,
with this protocol's epochs, batch size, lr and weight decay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from ..plugins import register_protocol
from ..results.records import Metric
from .base import EvalContext, Protocol, topk_accuracy
from .finetune import finetune_and_test
from .linear import standardize_subset, train_linear
from .subsets import few_shot_indices, repeated_metric, subset_label

HEADS = ("linear", "finetune")


def probe_seed(run_seed: int, repeat: int) -> int:
    """Seed of the head trained on one repetition (the subset itself uses ``repeat`` alone)."""
    return int(run_seed) * 1000 + int(repeat)


@register_protocol("few_shot")
class FewShot(Protocol):
    version = 1

    @dataclass
    class Config:
        n: list[int] = field(default_factory=lambda: [20, 100, 1000])  # N labelled examples in total
        per_class: list[int] = field(default_factory=list)  # k examples per class
        fractions: list[float] = field(default_factory=list)  # fractions of the training labels, e.g. [0.01, 0.1]
        balanced: bool = True  # spread N evenly over the classes (per_class is always balanced)
        repeats: int = 5  # subset seeds 0..repeats-1
        head: str = "linear"  # linear (frozen features) | finetune (the encoder too)
        epochs: int = 100
        batch_size: int = 256
        lr: float = 1e-3
        weight_decay: float = 1e-4
        augment: bool = False  # finetune head only: random crop/flip views
        views: dict = field(default_factory=dict)  # finetune head only: view overrides

    def points(self) -> list[tuple[str, dict]]:
        """(metric suffix, few_shot_indices spec) of every configured point, in order, without duplicates."""
        c = self.cfg
        specs = ([{"n": int(v)} for v in c.n] + [{"per_class": int(v)} for v in c.per_class]
                 + [{"fraction": float(v)} for v in c.fractions])
        out: dict[str, dict] = {}
        for spec in specs:
            out.setdefault(subset_label(**spec), spec)
        return list(out.items())

    def trains_encoder(self) -> bool:
        return self.cfg.head == "finetune"

    def run(self, ctx: EvalContext) -> dict[str, Metric]:
        c = self.cfg
        if c.head not in HEADS:
            raise ConfigError(f"Bad value for 'protocols.few_shot.head': {c.head!r}. Valid: {', '.join(HEADS)}")
        if c.repeats < 1:
            raise ConfigError(f"protocols.few_shot.repeats must be at least 1, got {c.repeats}")
        points = self.points()
        if not points:
            raise ConfigError("protocols.few_shot has no points: give n, per_class or fractions")
        if c.head == "linear":
            x_train, y_train = ctx.features("train")  # computed once, shared by every point and repeat
            x_test, y_test = ctx.features("test")
        else:
            y_train = ctx.splits["train"].labels
        out: dict[str, Metric] = {}
        for label, spec in points:
            accs = []
            for r in range(c.repeats):
                idx = few_shot_indices(y_train, balanced=c.balanced, seed=r, **spec)
                if c.head == "linear":
                    xs, xt = standardize_subset(x_train[idx], x_test)
                    head = train_linear(xs, y_train[idx], ctx.data.num_classes, c.epochs, c.batch_size, c.lr,
                                        c.weight_decay, probe_seed(ctx.seed, r))
                    with torch.no_grad():
                        accs.append(topk_accuracy(head(xt), y_test, 1))
                else:
                    accs.append(finetune_and_test(ctx, idx, y_train[idx], c, seed=probe_seed(ctx.seed, r)))
            out[f"acc@{label}"] = repeated_metric(accs, "few_shot", "%", detail={"examples": len(idx), **spec})
        return out


__all__ = ["FewShot", "probe_seed"]
