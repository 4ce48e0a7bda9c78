"""Run records -> a pandas frame -> comparability groups aggregated over seeds.

Records are aggregated together only when they share :data:`GROUP_KEY` (method with
variant, method version, suite, suite version, data fingerprint, config hash; the hash
already leaves out the seed). Only ``ok`` runs are aggregated; the others are counted
per group. :func:`records_frame` and :func:`aggregate` are the layer the table, the
reference numbers, the plots and the regression gate are built on.

Two records of one comparability group with the same seed are one measurement made twice
(a run repeated, a record copied under a new run id), not two seeds: :func:`one_per_measurement`
keeps the newest (by ``created``) and :func:`records_frame` counts only that one.

A group's interval is the Student-t interval of its mean over pretraining seeds (n >= 2).
With a single pretraining seed, a metric that carries within-run repetitions (``per_seed`` /
``std`` / ``n`` in the record: probe seeds, few-shot subsets) gets the t-interval of those
repetitions instead (``interval_source`` "within-run"): it leaves out the pretraining
variance, so it is narrower than a seed interval would be.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .records import created_key
from .stats import ci95_halfwidth

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
    "protocol",
    "inner_std",
    "inner_n",
    "path",
)
_FLOAT_COLUMNS = ("value", "inner_std", "inner_n")

AGGREGATE_COLUMNS: tuple[str, ...] = (
    *GROUP_KEY,
    "metric",
    "mean",
    "std",
    "n",
    "ci95",
    "seeds",
    "run_ids",
    "higher_is_better",
    "unit",
    "protocol",
    "inner_std",
    "inner_n",
    "interval",
    "interval_source",
    "n_not_ok",
    "not_ok",
)

TIMING_METRICS: dict[str, tuple[bool, str]] = {
    "samples_per_s": (True, "samples/s"),
    "peak_memory_mb": (False, "MB"),
    "wall_s": (False, "s"),
}
"""``timing`` fields that ``records_frame(..., timing=True)`` adds as ``timing.<name>`` metrics
(name -> (higher_is_better, unit)); the regression gate uses them, the table does not."""


# ---------------------------------------------------------------- values and labels


def is_missing(value: Any) -> bool:
    """None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value: Any) -> tuple[int, Any]:
    """Order numbers numerically, then strings, then missing values."""
    if is_missing(value):
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def short_id(value: Any) -> str:
    """A hash or fingerprint in a label: its first 12 characters after any ``sha256:`` prefix; "none"."""
    text = str(value) if not is_missing(value) else "none"
    return text.split(":", 1)[-1][:12]


def status_text(statuses: Iterable[str]) -> str:
    """``"1 diverged, 2 failed"``."""
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in sorted(counts))


def method_label(method: dict[str, Any]) -> str:
    """``name`` or ``name.variant`` (``moco.v2``)."""
    name = str(method.get("name", "?"))
    variant = method.get("variant")
    return f"{name}.{variant}" if variant else name


# ---------------------------------------------------------------- flatten


def _inner_spread(m: dict[str, Any]) -> tuple[float, float]:
    """(std, n) of a metric's within-run repetitions: ``per_seed`` (>= 2 finite values), else
    its ``std`` and ``n`` fields; (NaN, NaN) when it has none."""
    per_seed = m.get("per_seed")
    if isinstance(per_seed, (list, tuple)):
        vals = [float(v) for v in per_seed if v is not None and math.isfinite(float(v))]
        if len(vals) >= 2:
            return float(np.std(vals, ddof=1)), float(len(vals))
    std, n = m.get("std"), m.get("n")
    if std is not None and n is not None and math.isfinite(float(std)) and int(n) >= 2:
        return float(std), float(int(n))
    return math.nan, math.nan


def _record_rows(rec: dict[str, Any], timing: bool = False) -> list[dict[str, Any]]:
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
    metrics = dict(rec.get("metrics") or {})
    if timing:
        for name, (higher, unit) in TIMING_METRICS.items():
            value = (rec.get("timing") or {}).get(name)
            key = f"timing.{name}"
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in metrics:
                metrics[key] = {"value": value, "higher_is_better": higher, "unit": unit, "protocol": "timing"}
    empty = {"metric": None, "value": math.nan, "higher_is_better": None, "unit": None, "protocol": None,
             "inner_std": math.nan, "inner_n": math.nan}
    if not metrics:  # keep metric-less runs (failed early) so they are still counted
        return [{**base, **empty}]
    rows = []
    for name, m in metrics.items():
        m = m if isinstance(m, dict) else {"value": m}
        value = m.get("value")
        inner_std, inner_n = _inner_spread(m)
        rows.append(
            {
                **base,
                "metric": name,
                "value": math.nan if value is None else float(value),
                "higher_is_better": bool(m.get("higher_is_better", True)),
                "unit": m.get("unit", ""),
                "protocol": m.get("protocol") or name.split(".")[0],
                "inner_std": inner_std,
                "inner_n": inner_n,
            }
        )
    return rows


def measurement_key(rec: dict[str, Any]) -> tuple[Any, ...] | None:
    """The record's :data:`GROUP_KEY` values and its seed; None without a seed (then it repeats nothing)."""
    seed = rec.get("seed")
    if is_missing(seed):
        return None
    method = rec.get("method") or {}
    suite = rec.get("suite") or {}
    key = tuple(None if is_missing(v) else v for v in (
        method_label(method), method.get("version"), suite.get("name"), suite.get("version"),
        suite.get("data_fingerprint"), rec.get("config_hash"), seed))
    try:
        hash(key)
    except TypeError:  # a hand-edited record with a list where a value belongs: compared with nothing
        return None
    return key


def one_per_measurement(
    records: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Records with one record per measurement (comparability group and seed), in their order.

    Of the records that repeat a measurement the newest by ``created`` is kept, whatever its
    status (a seed run again after it failed counts as the rerun). Returns (kept, dropped) with
    dropped a list of (dropped record, the record kept in its place).
    """
    newest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in records:
        key = measurement_key(rec)
        if key is not None and (key not in newest or created_key(rec) >= created_key(newest[key])):
            newest[key] = rec
    kept, dropped = [], []
    for rec in records:
        key = measurement_key(rec)
        if key is None or newest[key] is rec:
            kept.append(rec)
        else:
            dropped.append((rec, newest[key]))
    return kept, dropped


def records_frame(records: list[dict[str, Any]], timing: bool = False) -> pd.DataFrame:
    """One row per (record, metric); a record without metrics gives one row with metric None.

    A measurement made twice (same comparability group and seed) counts once: only the newest
    of its records is in the frame (:func:`one_per_measurement`).

    ``timing=True`` also turns the record's ``timing`` fields of :data:`TIMING_METRICS` into
    metrics named ``timing.<field>`` (unless the record has a metric of that name).
    """
    records, _ = one_per_measurement(records)
    rows = [row for rec in records for row in _record_rows(rec, timing)]
    # object columns keep ints (versions, seeds) as ints even when some records lack them
    data = {
        c: pd.Series([r[c] for r in rows], dtype=float if c in _FLOAT_COLUMNS else object)
        for c in FRAME_COLUMNS
    }
    return pd.DataFrame(data, columns=list(FRAME_COLUMNS))


# ---------------------------------------------------------------- comparability groups


def group_keys(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The :data:`GROUP_KEY` tuple of each row, with missing values as None (hashable, comparable)."""
    cols = frame[list(GROUP_KEY)].itertuples(index=False, name=None)
    return [tuple(None if is_missing(v) else v for v in row) for row in cols]


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

    Columns (:data:`AGGREGATE_COLUMNS`): the key, metric, mean, std (ddof=1, NaN when n=1), n,
    ci95 (half-width over pretraining seeds), seeds (sorted tuple), run_ids, higher_is_better,
    unit, protocol, inner_std / inner_n (the within-run repetitions of the first run, NaN
    without), interval and interval_source (the half-width to use: ci95 with source "seeds"
    when n >= 2, else the within-run t-interval with source "within-run", else NaN and ""),
    n_not_ok and not_ok (the group's runs that were left out, e.g. "1 diverged").
    """
    ok = df[(df["status"] == "ok") & df["metric"].notna() & df["value"].notna()]
    keys = [*GROUP_KEY, "metric"]
    if ok.empty:
        return pd.DataFrame(columns=list(AGGREGATE_COLUMNS))
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
            protocol=("protocol", "first"),
            inner_std=("inner_std", "first"),
            inner_n=("inner_n", "first"),
        )
        .reset_index()
    )
    key_cols = pd.DataFrame(out["_key"].tolist(), columns=list(GROUP_KEY), dtype=object)
    out = pd.concat([key_cols, out.drop(columns="_key")], axis=1)
    order = sorted(range(len(out)), key=lambda i: [sort_key(v) for v in out.loc[i, keys]])
    out = out.iloc[order].reset_index(drop=True)
    out["ci95"] = [ci95_halfwidth(s, n) for s, n in zip(out["std"], out["n"], strict=True)]
    intervals = [
        _interval(n, ci, s_in, n_in)
        for n, ci, s_in, n_in in zip(out["n"], out["ci95"], out["inner_std"], out["inner_n"], strict=True)
    ]
    out["interval"] = [i for i, _ in intervals]
    out["interval_source"] = [src for _, src in intervals]
    bad = not_ok_by_group(df)
    counts = [bad.get(key, Counter()) for key in group_keys(out)]
    out["n_not_ok"] = [sum(c.values()) for c in counts]
    out["not_ok"] = [status_text(c.elements()) for c in counts]
    return out


def _interval(n: int, ci95: float, inner_std: float, inner_n: float) -> tuple[float, str]:
    if n >= 2:
        return (ci95, "seeds") if math.isfinite(ci95) else (math.nan, "")
    if math.isfinite(inner_n) and inner_n >= 2:
        half = ci95_halfwidth(inner_std, int(inner_n))
        if math.isfinite(half):
            return half, "within-run"
    return math.nan, ""
