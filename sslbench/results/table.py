"""The comparison table: rows = method, columns = "suite vN / metric", cells "mean ± std (n)".

When one (method, suite) pair has several comparability groups (:data:`~.frame.GROUP_KEY`)
they are never averaged: each keeps its own cell, marked with :data:`DAGGER` and explained
in a note (after asv's "not comparable" marking). Runs that are not ``ok`` are counted in
the notes.

With ``ci`` a cell also carries its 95% interval (over pretraining seeds, or ``‡`` over a
single seed's within-run repetitions, see :func:`.frame.aggregate`). Per column, an entry
whose interval does not overlap the interval of the column's best entry
(:func:`.stats.different`) is marked ``*``; nothing is marked where either interval is
unknown. Entries marked ``†`` take no part in that test.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import SSLBenchError
from .frame import (
    aggregate,
    is_missing,
    method_label,
    one_per_measurement,
    records_frame,
    short_id,
    sort_key,
    status_text,
)
from .stats import different

DAGGER = "†"
SIGNIFICANT = "*"
WITHIN_RUN = "‡"

_VARYING = ("method_version", "suite_version", "data_fingerprint", "config_hash")


@dataclass
class Table:
    """A comparison table: string cells indexed by method, plus notes to print below it.

    ``cells``, where given, holds the entries behind the cells (one row per cell) for renderers that
    show provenance (:mod:`.html_report`): for :func:`comparison_table` the :func:`.frame.aggregate`
    rows with their ``row`` / ``column`` labels in ``frame``."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    cells: pd.DataFrame | None = None


def format_mean_std(mean: float, std: float | None, n: int, ci: float | None = None, digits: int = 2) -> str:
    """``"97.12 ± 0.31 (3)"``; one run ``"97.12 (1)"``; with ``ci`` (half-width) ``"... [96.4, 97.9]"``.

    The interval bounds use one digit less than the mean.
    """
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    if n > 1 and std is not None and math.isfinite(std):
        text += f" ± {std:.{digits}f}"
    text += f" ({n})"
    if ci is not None and math.isfinite(ci):
        d = max(digits - 1, 0)
        text += f" [{mean - ci:.{d}f}, {mean + ci:.{d}f}]"
    return text


def select_metrics(available: Iterable[str], wanted: list[str] | None) -> list[str]:
    """Metrics matching ``wanted`` by exact name, fnmatch glob, or dotted suffix ("top1")."""
    available = sorted(set(available))
    if not wanted:
        return available
    chosen: list[str] = []
    for w in wanted:
        hits = [m for m in available if m == w or fnmatch.fnmatchcase(m, w) or m.endswith("." + w)]
        if not hits:
            raise SSLBenchError(f"No metric matches '{w}'; available: {', '.join(available) or 'none'}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _version_label(name: Any, version: Any) -> str:
    return str(name) if is_missing(version) else f"{name} v{version}"


def mark_incomparable(agg: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Label rows/columns; flag (method, suite) pairs that hold more than one group.

    Adds ``row``, ``column`` and ``dagger`` columns and returns the notes explaining
    each flagged pair. Fields that differ are kept apart: method_version in the row
    label, suite_version in the column label, config_hash / data_fingerprint as a
    ``[cfg ...]`` / ``[data ...]`` row suffix.
    """
    agg = agg.copy()
    agg["row"] = [_version_label(m, v) for m, v in zip(agg["method"], agg["method_version"], strict=True)]
    agg["column"] = [
        f"{_version_label(s, v)} / {m}"
        for s, v, m in zip(agg["suite"], agg["suite_version"], agg["metric"], strict=True)
    ]
    agg["dagger"] = False
    notes: list[str] = []
    for (method, suite), part in agg.groupby(["method", "suite"], dropna=False, sort=True):
        groups = part[list(_VARYING)].drop_duplicates()
        if len(groups) < 2:
            continue
        differ = [f for f in _VARYING if groups[f].nunique(dropna=False) > 1]
        agg.loc[part.index, "dagger"] = True
        suffix = pd.Series("", index=part.index)
        if "config_hash" in differ:
            suffix += " [cfg " + part["config_hash"].map(short_id) + "]"
        if "data_fingerprint" in differ:
            suffix += " [data " + part["data_fingerprint"].map(short_id) + "]"
        agg.loc[part.index, "row"] = agg.loc[part.index, "row"] + suffix
        detail = "; ".join(
            f"{f} " + " / ".join(short_id(v) for v in sorted(groups[f].unique(), key=sort_key)) for f in differ
        )
        notes.append(
            f"{DAGGER} not comparable: rows differ in {', '.join(differ)} ({method} on {suite}: {detail})"
        )
    return agg, notes


def not_ok_notes(df: pd.DataFrame) -> list[str]:
    """Summary line of runs left out ("2 runs not ok: 1 diverged, 1 failed"), then one per pair."""
    runs = df.drop_duplicates("run_id")
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return []
    noun = "run" if len(bad) == 1 else "runs"
    notes = [f"{len(bad)} {noun} not ok: {status_text(bad['status'])} (not averaged)"]
    for (method, suite), part in bad.groupby(["method", "suite"], dropna=False, sort=True):
        seeds = ", ".join(str(s) for s in sorted(part["seed"], key=sort_key))
        word = "seed" if len(part) == 1 else "seeds"
        notes.append(f"  {method} on {suite}: {status_text(part['status'])} ({word} {seeds})")
    return notes


def repeat_notes(dropped: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """Say which measurements (group and seed) had several records and were counted once.

    ``dropped`` is the second value of :func:`.frame.one_per_measurement`: summary line, then one
    line per measurement with the run id kept.
    """
    if not dropped:
        return []
    per_kept: dict[int, tuple[dict[str, Any], int]] = {}
    for _, kept in dropped:
        per_kept[id(kept)] = (kept, per_kept.get(id(kept), (kept, 1))[1] + 1)
    n = len(per_kept)
    noun = "measurement was" if n == 1 else "measurements were"
    notes = [f"{n} {noun} recorded more than once (same method, suite, config hash and seed): "
             f"counted once, the newest record kept, {len(dropped)} dropped"]
    lines = []
    for kept, count in per_kept.values():
        suite = (kept.get("suite") or {}).get("name")
        lines.append(f"  {method_label(kept.get('method') or {})} on {suite} [cfg {short_id(kept.get('config_hash'))}] "
                     f"seed {kept.get('seed')}: {count} records, kept {kept.get('run_id')}")
    return notes + sorted(lines)


def mark_significant(agg: pd.DataFrame) -> pd.Series:
    """Per column, True for entries whose interval does not overlap the best entry's (:func:`.stats.different`).

    The best entry has the highest mean (lowest for lower-is-better metrics) among the
    column's comparable (not ``†``) entries; entries marked ``†`` are never marked.
    """
    sig = pd.Series(False, index=agg.index)
    for _, part in agg[~agg["dagger"] & agg["mean"].notna()].groupby("column", sort=False):
        if len(part) < 2:
            continue
        higher = part["higher_is_better"].iloc[0]
        lower_better = not is_missing(higher) and not bool(higher)
        best = part["mean"].idxmin() if lower_better else part["mean"].idxmax()
        b_mean, b_ci = part.at[best, "mean"], part.at[best, "interval"]
        for i in part.index:
            if i != best and different(part.at[i, "mean"], part.at[i, "interval"], b_mean, b_ci):
                sig[i] = True
    return sig


def _cell(row: pd.Series, ci: bool) -> str:
    interval = row["interval"] if ci else None
    text = format_mean_std(row["mean"], row["std"], int(row["n"]), ci=interval)
    if ci and row["interval_source"] == "within-run":
        text += f" {WITHIN_RUN}"
    if row.get("significant", False):
        text += f" {SIGNIFICANT}"
    return f"{text} {DAGGER}" if row["dagger"] else text


def comparison_table(
    records: list[dict[str, Any]], metrics: list[str] | None = None, ci: bool = False
) -> Table:
    """Rows = method (and version), columns = "suite vN / metric", cells "mean ± std (n)".

    With ``ci=True`` cells also carry the 95% interval "[lo, hi]" (over pretraining seeds,
    or ``‡`` over within-run repetitions of a single seed). Entries that differ from their
    column's best by non-overlapping intervals get ``*``. Incomparable groups get their own
    row or column, a ``†`` and a note; runs that are not ok are counted in the notes.
    """
    df = records_frame(records)
    notes = not_ok_notes(df) + repeat_notes(one_per_measurement(records)[1])
    agg = aggregate(df)
    if agg.empty:
        return Table(pd.DataFrame(index=pd.Index([], name="method")), ["no ok runs to compare", *notes])
    agg = agg[agg["metric"].isin(select_metrics(agg["metric"], metrics))]
    agg, dagger_notes = mark_incomparable(agg)
    agg["significant"] = mark_significant(agg)
    agg["cell"] = [_cell(r, ci) for _, r in agg.iterrows()]
    frame = agg.pivot(index="row", columns="column", values="cell").fillna("")
    col_order = agg.drop_duplicates("column").sort_values(
        ["suite", "suite_version", "metric"], key=lambda c: c.map(sort_key)
    )["column"]
    frame = frame.reindex(index=sorted(frame.index), columns=list(col_order))
    frame.index.name = "method"
    frame.columns.name = None
    return Table(frame, dagger_notes + notes + _stat_notes(agg, ci), cells=agg.reset_index(drop=True))


def _stat_notes(agg: pd.DataFrame, ci: bool) -> list[str]:
    notes = []
    if agg["significant"].any():
        notes.append(f"{SIGNIFICANT} differs from the best entry of its column: their 95% intervals do not overlap")
    within = agg[(agg["interval_source"] == "within-run") & (ci | agg["significant"])]
    if not within.empty:
        cols = ", ".join(sorted(set(within["metric"])))
        shown = f"{WITHIN_RUN} " if ci else ""
        notes.append(
            f"{shown}one pretraining seed: the 95% interval of {cols} comes from the metric's within-run "
            "repetitions (per_seed / std / n: probe seeds or few-shot subsets), which leave out the "
            "pretraining variance"
        )
    return notes
