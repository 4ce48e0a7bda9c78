"""Input perturbations: noise applied to a split's inputs, by name (the ``noisy_input`` protocol trains on
perturbed inputs and tests on clean ones).

A perturbation is a function registered for one modality with
:func:`sslbench.plugins.register_perturbation` (built-ins: :mod:`sslbench.perturbations.text`; third parties
through the ``sslbench.perturbations`` entry point or a plugin folder)::

    perturb(samples: list, rate: float, seed: int = 0, **options) -> list

It returns a new list of the same length (labels are never its business), is deterministic given ``seed``
(its own generator: the caller's RNG state is untouched), returns the samples unchanged at rate 0, and
validates ``rate`` and ``options`` before any work. :func:`describe_perturbation` (below the registration
decorator) declares what the generic code here needs:

- ``options``: option name -> default (an unknown name is one ConfigError line listing the valid ones);
- ``measure``: the unit of the measured noise (default ``samples``), ``words`` / ``chars`` (edits per word / letter of the
  original), ``positions`` (word positions holding another word, for reorderings) or ``samples`` (the
  fraction of samples that changed), see :func:`measured_noise`;
- ``check_options(options, where)``: its own value checks (one ConfigError line naming the value);
  ``fn.check(rate, options)`` runs :func:`check_perturbation` (rate, option names, these checks);
- ``prepare(options)``: optional, loads what it needs (translation models) once, before any run starts, so
  that a missing model fails in the preflight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

MEASURES = ("words", "positions", "chars", "samples")


def describe_perturbation(options: dict[str, Any] | None = None, measure: str = "words",
                          check_options: Callable[[dict, str], None] | None = None,
                          prepare: Callable[[dict], None] | None = None):
    """Decorator (below ``register_perturbation``): attach the option defaults, the measured-noise unit, the
    perturbation's own option checks and its preparation step."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")

    def deco(fn):
        fn.check = lambda rate, opts=None, where="": check_perturbation(fn, rate, opts, where)
        fn.options = dict(options or {})
        fn.measure = measure
        fn.check_options = check_options
        fn.prepare = prepare
        return fn

    return deco


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_perturbation(fn: Any, rate: Any, options: dict | None, where: str = "") -> None:
    """One ConfigError line for a bad ``rate`` (a number in [0, 1]) or a bad option (an unknown name, or a value
    the perturbation refuses); ``where`` prefixes the keys named (``protocols.noisy_input``; default the
    perturbation's name)."""
    name = getattr(fn, "name", getattr(fn, "__name__", "?"))
    where = where or name
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise ConfigError(f"Bad value for '{where}.rates': {rate!r} (perturbation {name}); valid: a number in "
                          "[0, 1]")
    options = dict(options or {})
    valid = getattr(fn, "options", {})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option '{_key(_key(where, 'options'), unknown[0])}' for perturbation {name}. "
                          f"Valid: {', '.join(sorted(valid)) or '(none)'}")
    own = getattr(fn, "check_options", None)
    if own is not None:
        own({**valid, **options}, _key(where, "options"))


def with_defaults(fn: Any, options: dict | None) -> dict:
    """The perturbation's option defaults updated by ``options``."""
    return {**getattr(fn, "options", {}), **dict(options or {})}


def serves(fn: Any, modality: str) -> bool:
    """Whether the registered perturbation ``fn`` applies to data of ``modality`` (its own, or "any")."""
    return getattr(fn, "modality", None) in (modality, "any")


def sides(sample: Any) -> tuple[str, ...]:
    """A text sample's sentences: (s,) for a sentence, (a, b) for a pair."""
    return tuple(sample) if isinstance(sample, tuple | list) else (sample,)


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences of hashable items (characters of a string, words of a list):
    insertions, deletions and substitutions, bit-parallel (Myers 1999, Hyyro 2001), exact."""
    if a == b:
        return 0
    if not a or not b:
        return max(len(a), len(b))
    peq: dict = {}
    for i, item in enumerate(a):
        peq[item] = peq.get(item, 0) | (1 << i)
    mask, high = (1 << len(a)) - 1, 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for item in b:
        eq = peq.get(item, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def differs(a: Any, b: Any) -> bool:
    """Whether two samples differ: ``!=`` for texts and tuples, elementwise for arrays and tensors."""
    if a is b:
        return False
    try:
        return bool(a != b)
    except (ValueError, RuntimeError, TypeError):  # an array or tensor of several elements
        same_shape = getattr(a, "shape", None) == getattr(b, "shape", None)
        return not (same_shape and bool((a == b).all()))


def measured_noise(original: Sequence, perturbed: Sequence, measure: str) -> tuple[float, float]:
    """(noise, fraction of samples changed). ``noise``: for ``words`` the word edits (:func:`edit_distance` over
    whitespace tokens) per word of the original; for ``chars`` the character edits per letter of the original;
    for ``positions`` the word positions holding another word per word (a reordering keeps the length; the
    edit distance where it does not); for ``samples`` the fraction of samples changed. Pairs count both
    sentences."""
    if len(original) != len(perturbed):
        raise ValueError(f"measured_noise: {len(original)} original samples but {len(perturbed)} perturbed")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    changed = edits = total = 0
    for o, p in zip(original, perturbed, strict=True):
        changed += int(differs(o, p))
        if measure == "samples":
            continue
        for a, b in zip(sides(o), sides(p), strict=True):
            if measure in ("words", "positions"):
                wa, wb = str(a).split(), str(b).split()
                if measure == "positions" and len(wa) == len(wb):
                    edits += sum(x != y for x, y in zip(wa, wb, strict=True))
                else:
                    edits += edit_distance(wa, wb)
                total += len(wa)
            else:
                edits, total = edits + edit_distance(str(a), str(b)), total + sum(c.isalpha() for c in str(a))
    n = max(1, len(original))
    if measure == "samples":
        return changed / n, changed / n
    return (edits / total if total else 0.0), changed / n


__all__ = ["describe_perturbation", "check_perturbation", "with_defaults", "serves", "sides", "measured_noise",
           "edit_distance", "differs", "MEASURES"]
