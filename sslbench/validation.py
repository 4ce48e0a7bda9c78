"""Ranges of config values, checked on the resolved config before anything is loaded (issue 11).

Every config section is a dataclass (pretrain, dataset, encoder, views, the method's and each
protocol's ``Config``). A field is checked by its ``metadata["check"]`` when it has one, else by
the rule for its name in :data:`RULES` (so a plugin's ``temperature`` or ``lr`` is checked like
the built-ins'), and every float must be finite. A bad value is one line naming the key, the
value and what is valid (:class:`~sslbench.errors.ConfigError`, exit 2).

    learning_rate: float = field(default=0.1, metadata=check(positive))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from .errors import ConfigError

Check = Callable[[Any], bool]

SEED_LIMIT = 2**63 - 1  # torch.manual_seed and the engine's per-step seeds take 63-bit seeds


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(v: Any) -> bool:
    return _num(v) and v > 0


def non_negative(v: Any) -> bool:
    return _num(v) and v >= 0


def at_least_one(v: Any) -> bool:
    return _num(v) and v >= 1


def probability(v: Any) -> bool:
    return _num(v) and 0 <= v <= 1


def scale_pair(v: Any) -> bool:
    """(low, high) with 0 < low <= high <= 1: a crop's area fraction."""
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(_num(x) for x in v) and 0 < v[0] <= v[1] <= 1


def ratio_pair(v: Any) -> bool:
    """(low, high) with 0 < low <= high: a crop's aspect ratio."""
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(_num(x) for x in v) and 0 < v[0] <= v[1]


def optional(rule: Check) -> Check:
    return lambda v: v is None or rule(v)


def each(rule: Check) -> Check:
    return lambda v: isinstance(v, (list, tuple)) and all(rule(x) for x in v)


VALID: dict[Check, str] = {positive: "a number > 0", non_negative: "a number >= 0", at_least_one: "1 or more",
                           probability: "a probability in [0, 1]",
                           scale_pair: "[low, high] with 0 < low <= high <= 1",
                           ratio_pair: "[low, high] with 0 < low <= high"}


def check(rule: Check, valid: str | None = None) -> dict:
    """Field metadata: ``field(default=..., metadata=check(positive))``."""
    return {"check": rule, "valid": valid or VALID.get(rule, "")}


# Rules by field name, for every config section (core, method, protocol, view, plugin)
RULES: dict[str, dict] = {
    "epochs": check(non_negative), "warmup_epochs": check(non_negative),
    "batch_size": check(at_least_one), "lr": check(positive), "weight_decay": check(non_negative),
    "momentum": check(probability), "temperature": check(positive),
    "threads": check(optional(at_least_one), "1 or more, or null (torch's default)"),
    "num_workers": check(non_negative), "checkpoint_every": check(non_negative),
    "checkpoint_seconds": check(positive), "early_stop_patience": check(non_negative),
    "max_train_samples": check(optional(at_least_one), "1 or more, or null (the whole split)"),
    "queue_size": check(at_least_one), "num_negatives": check(at_least_one), "corruptions": check(at_least_one),
    "repeats": check(at_least_one), "k": check(at_least_one), "proj_dim": check(at_least_one),
    "proj_hidden_dim": check(at_least_one), "size": check(optional(at_least_one), "1 or more, or null"),
    "crop_scale": check(scale_pair), "crop_ratio": check(ratio_pair),
    "jitter_strength": check(non_negative), "blur_kernel_frac": check(positive),
    "rates": check(each(probability), "a list of probabilities in [0, 1]"),
    "n": check(each(at_least_one), "a list of counts >= 1"),
    "per_class": check(each(at_least_one), "a list of counts >= 1"),
    "fractions": check(each(lambda x: _num(x) and 0 < x <= 1), "a list of fractions in (0, 1]"),
}


def _rule(name: str, metadata: Any) -> dict | None:
    if metadata and "check" in metadata:
        return metadata
    if name in RULES:
        return RULES[name]
    if name.endswith("_p"):  # flip_p, jitter_p, blur_p, ...: probabilities
        return check(probability)
    return None


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, (list, tuple)):
        return all(_finite(x) for x in v)
    return True


def check_section(obj: Any, prefix: str) -> None:
    """Check every field of the dataclass ``obj`` (recursively); keys are reported as ``prefix.field``."""
    if not is_dataclass(obj):
        return
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name
        if is_dataclass(value):
            check_section(value, key)
            continue
        if not _finite(value):
            raise ConfigError(f"Bad value for '{key}': {value!r}; valid: a finite number")
        rule = _rule(f.name, f.metadata)
        if rule is not None and not rule["check"](value):
            raise ConfigError(f"Bad value for '{key}': {value!r}; valid: {rule['valid']}")


def check_seed(seed: Any, where: str = "seed") -> int:
    """A run seed: an integer in [0, 2**63 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_LIMIT:
        raise ConfigError(f"Bad value for '{where}': {seed!r}; valid: an integer from 0 to 2**63 - 1")
    return seed


__all__ = ["check", "check_section", "check_seed", "RULES", "positive", "non_negative", "at_least_one",
           "probability", "scale_pair", "ratio_pair", "optional", "each"]
