"""Label subsets and label noise for the few-shot and noisy-label protocols, and their statistics.

Pure functions on label tensors. Everything random draws from a ``torch.Generator``
seeded only from the ``seed`` argument, so the same (labels, spec, seed) gives the
same result in every run: every method is evaluated on the same few-shot examples
and the same corrupted labels, whatever its own run seed.

- :func:`few_shot_indices`: N labelled examples in total (SCL, Gunel et al. 2021,
  arXiv 2011.01403: N = 20, 100, 1000), k per class, or a fraction of the labels
  (SimCLR, Chen et al. 2020, Table 7: 1% / 10%). Class-balanced by default.
- :func:`noisy_labels`: symmetric noise (a label replaced by a uniformly drawn
  *other* class) or class-dependent noise with a fixed confusion map
  (Patrini et al. 2017, arXiv 1609.03683, Sec. 6; see :data:`CONFUSION_MAPS`).
- :func:`mean_std_ci` and :func:`repeated_metric`: mean, sample std, 95% t-interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..results.records import Metric
from ..results.stats import mean_std_ci

NOISE_MODES = ("symmetric", "asymmetric")

# Class-dependent ("asymmetric") noise of Patrini et al. 2017 (Sec. 6), which flips
# classes into similar-looking ones. Keys are source classes, values their targets;
# classes not listed keep their labels.
#   CIFAR-10: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog
#   MNIST:    2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1
# sklearn's 8x8 digits have the same classes as MNIST and use its map. Any other data
# set falls back to the generic cyclic map c -> (c + 1) mod C (every class a source).
CIFAR10_CONFUSION_NAMES = {"truck": "automobile", "bird": "airplane", "deer": "horse", "cat": "dog", "dog": "cat"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_CONFUSION = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
CONFUSION_MAPS: dict[str, dict[int, int]] = {
    "mnist": MNIST_CONFUSION,
    "digits": MNIST_CONFUSION,
    "cifar10": {CIFAR10_CLASSES.index(s): CIFAR10_CLASSES.index(t) for s, t in CIFAR10_CONFUSION_NAMES.items()},
}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# ---------------------------------------------------------------- few-shot subsets


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ConfigError(f"labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
    return labels.long().cpu()


def spread(total: int, num_classes: int, gen: torch.Generator) -> list[int]:
    """``total`` spread as evenly as possible over ``num_classes``: each gets total // C, and total % C
    classes drawn at random get one more (N=25 over 10 classes: five classes 3, five classes 2)."""
    base, extra = divmod(int(total), num_classes)
    counts = [base] * num_classes
    for c in torch.randperm(num_classes, generator=gen)[:extra].tolist():
        counts[c] += 1
    return counts


def few_shot_indices(labels: torch.Tensor, n: int | None = None, per_class: int | None = None,
                     fraction: float | None = None, balanced: bool = True, seed: int = 0) -> torch.Tensor:
    """Indices (sorted int64) of a labelled subset of ``labels``; exactly one of n / per_class / fraction.

    n:         N examples in total;  per_class: k examples of every class (always balanced);
    fraction:  round(fraction * len(labels)) examples (0 < fraction <= 1).
    balanced:  spread the total as evenly as possible over the classes present (counts differ by at most
               one; which classes get the remainder is drawn from the seed); otherwise a uniform random
               draw from all examples. A class with too few examples for its share is an error.

    The result depends only on (labels, the spec, seed). For a fixed seed the subsets are nested: every
    class's examples are taken in one seeded order, so a smaller N keeps a prefix of a larger N's picks
    of that class (when the class counts grow).
    """
    labels = _check_labels(labels)
    given = [name for name, v in (("n", n), ("per_class", per_class), ("fraction", fraction)) if v is not None]
    if len(given) != 1:
        raise ConfigError(f"few_shot_indices needs exactly one of n, per_class, fraction; got {given or 'none'}")
    total_n = len(labels)
    if fraction is not None:
        if not 0 < float(fraction) <= 1:
            raise ConfigError(f"few-shot fraction must be in (0, 1], got {fraction}")
        n = int(round(float(fraction) * total_n))
        if n < 1:
            raise ConfigError(f"few-shot fraction {fraction} of {total_n} labels rounds to 0 examples")
    gen = _generator(seed)
    classes = torch.unique(labels)
    if per_class is not None:
        if int(per_class) < 1:
            raise ConfigError(f"few-shot per_class must be at least 1, got {per_class}")
        counts = [int(per_class)] * len(classes)
        balanced = True
    else:
        n = int(n)
        if n < 1 or n > total_n:
            raise ConfigError(f"few-shot n must be between 1 and the {total_n} training labels, got {n}")
        if not balanced:
            return torch.randperm(total_n, generator=gen)[:n].sort().values
        # the class order of the draws below is fixed, so the per-class orders do not depend on n
        counts = spread(n, len(classes), _generator(seed + 0x9E3779B1))
    picks = []
    for c, k in zip(classes.tolist(), counts, strict=True):
        members = (labels == c).nonzero().flatten()
        order = torch.randperm(len(members), generator=gen)
        if k > len(members):
            raise ConfigError(f"few-shot subset needs {k} examples of class {c} but the training split has only "
                              f"{len(members)}; ask for fewer (n, per_class, fraction) or balanced: false")
        picks.append(members[order[:k]])
    return torch.cat(picks).sort().values


def subset_label(n: int | None = None, per_class: int | None = None, fraction: float | None = None) -> str:
    """Metric suffix of a few-shot point: ``n20`` (N in total), ``k5`` (per class), ``p1`` (1% of the labels)."""
    if n is not None:
        return f"n{int(n)}"
    if per_class is not None:
        return f"k{int(per_class)}"
    return f"p{round(float(fraction) * 100, 6):g}"


# ---------------------------------------------------------------- label noise


def confusion_map(dataset: str | None, num_classes: int, classes: Sequence[str] | None = None) -> dict[int, int]:
    """The class-dependent noise map {source: target} for a data set (see :data:`CONFUSION_MAPS`).

    CIFAR-10 is resolved by class name when ``classes`` is given; unknown data sets get c -> (c + 1) mod C.
    """
    name = (dataset or "").lower()
    if name == "cifar10" and classes is not None and set(CIFAR10_CONFUSION_NAMES) <= set(classes):
        idx = {c: i for i, c in enumerate(classes)}
        return {idx[s]: idx[t] for s, t in CIFAR10_CONFUSION_NAMES.items()}
    if name in CONFUSION_MAPS and max(max(CONFUSION_MAPS[name]), max(CONFUSION_MAPS[name].values())) < num_classes:
        return dict(CONFUSION_MAPS[name])
    if num_classes < 2:
        raise ConfigError("class-dependent label noise needs at least 2 classes")
    return {c: (c + 1) % num_classes for c in range(num_classes)}


def _allocate(total: int, sizes: list[int]) -> list[int]:
    """Split ``total`` over groups proportionally to ``sizes`` (largest remainder), never above a group's size."""
    whole = sum(sizes)
    if whole == 0:
        return [0] * len(sizes)
    exact = [total * s / whole for s in sizes]
    out = [min(int(math.floor(e)), s) for e, s in zip(exact, sizes, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    left = total - sum(out)
    while left > 0:
        moved = False
        for i in order:
            if left and out[i] < sizes[i]:
                out[i] += 1
                left -= 1
                moved = True
        if not moved:
            break
    return out


def noisy_labels(labels: torch.Tensor, rate: float, mode: str = "symmetric", num_classes: int | None = None,
                 seed: int = 0, dataset: str | None = None, confusion: dict[int, int] | None = None,
                 classes: Sequence[str] | None = None) -> tuple[torch.Tensor, float]:
    """A copy of ``labels`` with a fraction ``rate`` corrupted; returns (noisy labels, measured rate).

    symmetric:  exactly round(rate * N) labels, chosen uniformly at random, each replaced by a class drawn
                uniformly from the C - 1 *other* classes (every chosen label changes).
    asymmetric: class-dependent noise with a fixed confusion map (``confusion``, else
                :func:`confusion_map` of ``dataset``): exactly round(rate * N_src) of the N_src labels of
                the map's source classes, spread over the source classes in proportion to their sizes
                (so each source class flips with probability ~rate), are moved to their targets.

    measured rate: the fraction of the labels the noise could touch that changed, i.e. changed / N
    (symmetric) and changed / N_src (asymmetric); the rate of the noise process, comparable with ``rate``.
    The input is never modified.
    """
    labels = _check_labels(labels)
    if mode not in NOISE_MODES:
        raise ConfigError(f"Bad label-noise mode {mode!r}. Valid: {', '.join(NOISE_MODES)}")
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"label-noise rate must be in [0, 1], got {rate}")
    num_classes = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    if num_classes < 2:
        raise ConfigError("label noise needs at least 2 classes")
    gen = _generator(seed)
    noisy = labels.clone()
    if mode == "symmetric":
        k = int(round(rate * len(labels)))
        chosen = torch.randperm(len(labels), generator=gen)[:k]
        # a uniformly random *other* class: offset 1..C-1 added modulo C
        offset = torch.randint(1, num_classes, (k,), generator=gen)
        noisy[chosen] = (labels[chosen] + offset) % num_classes
        eligible = len(labels)
    else:
        cmap = dict(confusion) if confusion is not None else confusion_map(dataset, num_classes, classes)
        if any(s == t for s, t in cmap.items()):
            raise ConfigError(f"confusion map sends a class to itself: {cmap}")
        sources = sorted(cmap)
        members = [(labels == s).nonzero().flatten() for s in sources]
        eligible = sum(len(m) for m in members)
        per_source = _allocate(int(round(rate * eligible)), [len(m) for m in members])
        for s, m, k in zip(sources, members, per_source, strict=True):
            chosen = m[torch.randperm(len(m), generator=gen)[:k]]
            noisy[chosen] = cmap[s]
    changed = int((noisy != labels).sum())
    return noisy, (changed / eligible if eligible else 0.0)


def labels_digest(labels: torch.Tensor) -> str:
    """sha256 of a label tensor's values (to check that test labels are never touched)."""
    import hashlib

    return hashlib.sha256(labels.detach().cpu().long().contiguous().numpy().tobytes()).hexdigest()


# ---------------------------------------------------------------- statistics


@dataclass
class RepeatedMetric(Metric):
    """A :class:`Metric` over inner repetitions (subset or noise seeds) that also carries the 95% interval.

    ``ci95`` is the half-width of the t-interval of the mean (stored in the record next to std and n);
    ``detail`` holds extra per-point facts (e.g. the noise rate over all labels).
    """

    ci95: float | None = None
    detail: dict | None = None


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def repeated_metric(values: Sequence[float], protocol: str, unit: str = "%", higher_is_better: bool = True,
                    detail: dict | None = None) -> RepeatedMetric:
    """value = mean of ``values``, per_seed = the values, std (ddof=1), n and ci95 (None when n < 2)."""
    mean, std, ci, n = mean_std_ci(values)
    return RepeatedMetric(value=mean, higher_is_better=higher_is_better, unit=unit, protocol=protocol,
                          per_seed=[float(v) for v in values], std=_finite(std), n=n, ci95=_finite(ci),
                          detail=detail)


__all__ = ["few_shot_indices", "noisy_labels", "confusion_map", "mean_std_ci", "repeated_metric",
           "RepeatedMetric", "subset_label", "labels_digest", "CONFUSION_MAPS", "NOISE_MODES"]
