"""The sweep's grid: methods x suites x seeds x ``--grid`` values, as plain points before any config is resolved.

``--grid KEY=V1,V2,...`` (repeatable) adds one axis per key; the points are the Cartesian product of the
methods, the suites, the seeds and every axis, in that order (the last axis varies fastest). A value is
written as on ``--set`` (YAML): commas inside brackets, braces or quotes do not split it, so
``--grid views.crop_scale=[0.2,1.0],[0.5,1.0]`` has two values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..config import parse_set
from ..errors import ConfigError

GRID_EXAMPLE = "e.g. --grid method.temperature=0.1,0.2"


@dataclass(frozen=True)
class GridPoint:
    """One cell of the grid: what ``sslbench run METHOD --suite SUITE --seed SEED --set ...`` would be given."""

    method: str
    suite: str
    seed: int
    grid: tuple[tuple[str, str], ...] = ()  # (key, value as typed) of each --grid axis

    def sets(self, base: tuple[str, ...]) -> tuple[str, ...]:
        """The run's ``--set`` items: the sweep's own, then this point's grid values."""
        return (*base, *(f"{k}={v}" for k, v in self.grid))

    @property
    def label(self) -> str:
        return " ".join([self.method, self.suite, f"seed {self.seed}", *(f"{k}={v}" for k, v in self.grid)])


def split_values(text: str) -> list[str] | None:
    """``"0.1,[1,2],'a,b'"`` -> ``["0.1", "[1,2]", "'a,b'"]``: top-level commas only; None when unbalanced."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    if depth or quote:
        return None
    out.append(text[start:].strip())
    return out


def parse_grid(items: tuple[str, ...] | list[str], sets: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """``["method.temperature=0.1,0.2"]`` -> ``[("method.temperature", ["0.1", "0.2"])]``; one line otherwise.

    A key given twice, or given on ``--set`` too, is refused (which value would win is not obvious)."""
    set_keys = {k for k, _ in parse_set(sets)}
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = split_values(raw) if sep else None
        if not key or not values or any(not v for v in values):
            raise ConfigError(f"Bad --grid '{item}': expected KEY=V1,V2,... with no empty value, {GRID_EXAMPLE}")
        if any(k == key for k, _ in axes):
            raise ConfigError(f"Bad --grid '{item}': the key '{key}' is already a --grid axis; give its values "
                              f"once, comma-separated")
        if key in set_keys:
            raise ConfigError(f"Bad --grid '{item}': '{key}' is also given with --set; keep one of the two")
        parse_set([f"{key}={v}" for v in values])  # the same syntax check as --set
        axes.append((key, list(dict.fromkeys(values))))
    return axes


def expand(methods: tuple[str, ...], suites: tuple[str, ...], seeds: dict[str, tuple[int, ...]],
           axes: list[tuple[str, list[str]]]) -> list[GridPoint]:
    """Every point of the grid; ``seeds`` maps each suite to its seeds (the ``--seed`` values or the suite's)."""
    keys = [k for k, _ in axes]
    combos = list(itertools.product(*(values for _, values in axes)))
    return [GridPoint(method, suite, seed, tuple(zip(keys, combo, strict=True)))
            for method in methods for suite in suites for seed in seeds[suite] for combo in combos]


__all__ = ["GridPoint", "parse_grid", "expand", "split_values"]
