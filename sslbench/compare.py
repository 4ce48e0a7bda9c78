"""Compare run records: flatten, group what is comparable, aggregate seeds, pivot.

Records are aggregated together only when they share :data:`GROUP_KEY` (method with
variant, method version, suite, suite version, data fingerprint, config hash; the hash
already leaves out the seed). Only ``ok`` runs are aggregated; the others are counted
and reported in the notes. When one (method, suite) pair has several comparability
groups they are never averaged: each keeps its own cell, marked with :data:`DAGGER`
and explained in a note (after asv's "not comparable" marking).

``records_frame`` and ``aggregate`` are the reusable layer for reference numbers and
baseline regression gates; ``comparison_table`` builds the human-facing table.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import SSLBenchError
from .render import format_mean_std

GROUP_KEY: tuple[str, ...] = (
    "method",
    "method_version",
    "suite",
    "suite_version",
    "data_fingerprint",
    "config_hash",
)
"""Fields that must all be equal for runs to be aggregated together."""

FRAME_COLUMNS: tuple[str, ...] = (
    "run_id",
    "status",
    "method",
    "method_version",
    "origin",
    "suite",
    "suite_version",
    "data_fingerprint",
    "config_hash",
    "seed",
    "metric",
    "value",
    "higher_is_better",
    "unit",
    "path",
)
DAGGER = "†"

# Two-sided 95% quantiles of Student's t, t_{0.975}(df) for df = 1..30.
_T975 = (
    12.706205,
    4.302653,
    3.182446,
    2.776445,
    2.570582,
    2.446912,
    2.364624,
    2.306004,
    2.262157,
    2.228139,
    2.200985,
    2.178813,
    2.160369,
    2.144787,
    2.131450,
    2.119905,
    2.109816,
    2.100922,
    2.093024,
    2.085963,
    2.079614,
    2.073873,
    2.068658,
    2.063899,
    2.059539,
    2.055529,
    2.051831,
    2.048407,
    2.045230,
    2.042272,
)


@dataclass
class Table:
    """A comparison table: string cells indexed by method, plus notes to print below it."""

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- flatten


def method_label(method: dict[str, Any]) -> str:
    """``name`` or ``name.variant`` (``moco.v2``)."""
    name = str(method.get("name", "?"))
    variant = method.get("variant")
    return f"{name}.{variant}" if variant else name


def _record_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    method = rec.get("method") or {}
    suite = rec.get("suite") or {}
    base = {
        "run_id": rec.get("run_id"),
        "status": rec.get("status", "ok"),
        "method": method_label(method),
        "method_version": method.get("version"),
        "origin": method.get("origin"),
        "suite": suite.get("name"),
        "suite_version": suite.get("version"),
        "data_fingerprint": suite.get("data_fingerprint"),
        "config_hash": rec.get("config_hash"),
        "seed": rec.get("seed"),
        "path": rec.get("_path"),
    }
    metrics = rec.get("metrics") or {}
    if not metrics:  # keep metric-less runs (failed early) so they are still counted
        return [{**base, "metric": None, "value": math.nan, "higher_is_better": None, "unit": None}]
    rows = []
    for name, m in metrics.items():
        m = m if isinstance(m, dict) else {"value": m}
        value = m.get("value")
        rows.append(
            {
                **base,
                "metric": name,
                "value": math.nan if value is None else float(value),
                "higher_is_better": bool(m.get("higher_is_better", True)),
                "unit": m.get("unit", ""),
            }
        )
    return rows


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (record, metric); a record without metrics gives one row with metric None."""
    rows = [row for rec in records for row in _record_rows(rec)]
    # object columns keep ints (versions, seeds) as ints even when some records lack them
    data = {
        c: pd.Series([r[c] for r in rows], dtype=float if c == "value" else object) for c in FRAME_COLUMNS
    }
    return pd.DataFrame(data, columns=list(FRAME_COLUMNS))


# ---------------------------------------------------------------- statistics


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (scipy when available, else a table)."""
    if df < 1:
        return math.nan
    try:
        from scipy.stats import t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96
    return float(t.ppf(0.975, df))


def ci95_halfwidth(std: float, n: int) -> float:
    """Half-width of the 95% t-interval for a mean of ``n`` values; NaN when n < 2."""
    if n < 2 or std is None or not np.isfinite(std):
        return math.nan
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def _status_text(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in sorted(counts))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value: Any) -> tuple[int, Any]:
    """Order numbers numerically, then strings, then missing values."""
    if _is_missing(value):
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def group_keys(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The :data:`GROUP_KEY` tuple of each row, with missing values as None (hashable, comparable)."""
    cols = frame[list(GROUP_KEY)].itertuples(index=False, name=None)
    return [tuple(None if _is_missing(v) else v for v in row) for row in cols]


def not_ok_by_group(df: pd.DataFrame) -> dict[tuple[Any, ...], Counter[str]]:
    """Per comparability group key, a Counter of the statuses of runs that are not ``ok``."""
    runs = df.drop_duplicates("run_id")
    bad = runs[runs["status"] != "ok"]
    out: dict[tuple[Any, ...], Counter[str]] = {}
    for key, status in zip(group_keys(bad), bad["status"], strict=True):
        out.setdefault(key, Counter())[status] += 1
    return out


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Aggregate ``ok`` runs per :data:`GROUP_KEY` plus metric.

    Columns: the key, metric, mean, std (ddof=1, NaN when n=1), n, ci95 (half-width),
    seeds (sorted tuple), run_ids, higher_is_better, unit, n_not_ok and not_ok (the
    group's runs that were left out, e.g. "1 diverged").
    """
    ok = df[(df["status"] == "ok") & df["metric"].notna() & df["value"].notna()]
    keys = [*GROUP_KEY, "metric"]
    if ok.empty:
        return pd.DataFrame(
            columns=[
                *keys,
                "mean",
                "std",
                "n",
                "ci95",
                "seeds",
                "run_ids",
                "higher_is_better",
                "unit",
                "n_not_ok",
                "not_ok",
            ]
        )
    # group on key tuples so missing fields stay None and int versions stay int
    ok = ok.assign(_key=group_keys(ok))
    out = (
        ok.groupby(["_key", "metric"], sort=False)
        .agg(
            mean=("value", "mean"),
            std=("value", lambda v: v.std(ddof=1) if len(v) > 1 else math.nan),
            n=("value", "size"),
            seeds=("seed", lambda s: tuple(sorted(s, key=sort_key))),
            run_ids=("run_id", tuple),
            higher_is_better=("higher_is_better", "first"),
            unit=("unit", "first"),
        )
        .reset_index()
    )
    key_cols = pd.DataFrame(out["_key"].tolist(), columns=list(GROUP_KEY), dtype=object)
    out = pd.concat([key_cols, out.drop(columns="_key")], axis=1)
    order = sorted(range(len(out)), key=lambda i: [sort_key(v) for v in out.loc[i, keys]])
    out = out.iloc[order].reset_index(drop=True)
    out["ci95"] = [ci95_halfwidth(s, n) for s, n in zip(out["std"], out["n"], strict=True)]
    bad = not_ok_by_group(df)
    counts = [bad.get(key, Counter()) for key in group_keys(out)]
    out["n_not_ok"] = [sum(c.values()) for c in counts]
    out["not_ok"] = [_status_text(c.elements()) for c in counts]
    return out


# ---------------------------------------------------------------- comparison table


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
    return f"{name} v{version}" if _present(version) else str(name)


def _present(value: Any) -> bool:
    return not _is_missing(value)


def _short(value: Any) -> str:
    text = str(value) if _present(value) else "none"
    return text.split(":", 1)[-1][:12]


_VARYING = ("method_version", "suite_version", "data_fingerprint", "config_hash")


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
            suffix += " [cfg " + part["config_hash"].map(_short) + "]"
        if "data_fingerprint" in differ:
            suffix += " [data " + part["data_fingerprint"].map(_short) + "]"
        agg.loc[part.index, "row"] = agg.loc[part.index, "row"] + suffix
        detail = "; ".join(
            f"{f} " + " / ".join(_short(v) for v in sorted(groups[f].unique(), key=sort_key)) for f in differ
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
    notes = [f"{len(bad)} {noun} not ok: {_status_text(bad['status'])} (not averaged)"]
    for (method, suite), part in bad.groupby(["method", "suite"], dropna=False, sort=True):
        seeds = ", ".join(str(s) for s in sorted(part["seed"], key=sort_key))
        word = "seed" if len(part) == 1 else "seeds"
        notes.append(f"  {method} on {suite}: {_status_text(part['status'])} ({word} {seeds})")
    return notes


def _cell(row: pd.Series, ci: bool) -> str:
    text = format_mean_std(row["mean"], row["std"], int(row["n"]), ci=row["ci95"] if ci else None)
    return f"{text} {DAGGER}" if row["dagger"] else text


def comparison_table(
    records: list[dict[str, Any]], metrics: list[str] | None = None, ci: bool = False
) -> Table:
    """Rows = method (and version), columns = "suite vN / metric", cells "mean ± std (n)".

    With ``ci=True`` cells also carry the 95% t-interval "[lo, hi]". Incomparable groups
    get their own row or column, a ``†`` and a note; runs that are not ok are counted
    in the notes.
    """
    df = records_frame(records)
    notes = not_ok_notes(df)
    agg = aggregate(df)
    if agg.empty:
        return Table(pd.DataFrame(index=pd.Index([], name="method")), ["no ok runs to compare", *notes])
    agg = agg[agg["metric"].isin(select_metrics(agg["metric"], metrics))]
    agg, dagger_notes = mark_incomparable(agg)
    agg["cell"] = [_cell(r, ci) for _, r in agg.iterrows()]
    frame = agg.pivot(index="row", columns="column", values="cell").fillna("")
    col_order = agg.drop_duplicates("column").sort_values(
        ["suite", "suite_version", "metric"], key=lambda c: c.map(sort_key)
    )["column"]
    frame = frame.reindex(index=sorted(frame.index), columns=list(col_order))
    frame.index.name = "method"
    frame.columns.name = None
    return Table(frame, dagger_notes + notes)
