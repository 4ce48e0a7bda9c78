"""Compare run records: flatten, group what is comparable, aggregate seeds, pivot.

Records are aggregated together only when they share :data:`GROUP_KEY` (method with
variant, method version, suite, suite version, data fingerprint, config hash; the hash
already leaves out the seed). Only ``ok`` runs are aggregated; the others are counted
and reported in the notes. When one (method, suite) pair has several comparability
groups they are never averaged: each keeps its own cell, marked with :data:`DAGGER`
and explained in a note (after asv's "not comparable" marking).

``records_frame`` and ``aggregate`` are the reusable layer for reference numbers
(:mod:`sslbench.reference`), the regression gate (:mod:`sslbench.baseline`) and the plots
(:mod:`sslbench.plots`); ``comparison_table`` builds the human-facing table.

Statistics. A cell is "mean ± std (n)" over pretraining seeds; its 95% interval is the
Student-t interval of that mean (n >= 2). With a single pretraining seed, a metric that
carries within-run repetitions (``per_seed`` / ``std`` / ``n`` in the record: probe seeds,
few-shot subsets) gets the t-interval of those repetitions instead, marked ``‡`` and
explained in a note: it leaves out the pretraining variance, so it is narrower than a
seed interval would be. Per column, an entry whose interval does not overlap the
interval of the column's best entry (:func:`different`) is marked ``*``; nothing is
marked where either interval is unknown. Entries marked ``†`` (not comparable) take no
part in that test.
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
    "protocol",
    "inner_std",
    "inner_n",
    "path",
)
DAGGER = "†"
SIGNIFICANT = "*"
WITHIN_RUN = "‡"

TIMING_METRICS: dict[str, tuple[bool, str]] = {
    "samples_per_s": (True, "samples/s"),
    "peak_memory_mb": (False, "MB"),
    "wall_s": (False, "s"),
}
"""``timing`` fields that ``records_frame(..., timing=True)`` adds as ``timing.<name>`` metrics
(name -> (higher_is_better, unit)); the regression gate uses them, the table does not."""

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


_FLOAT_COLUMNS = ("value", "inner_std", "inner_n")


def records_frame(records: list[dict[str, Any]], timing: bool = False) -> pd.DataFrame:
    """One row per (record, metric); a record without metrics gives one row with metric None.

    ``timing=True`` also turns the record's ``timing`` fields of :data:`TIMING_METRICS` into
    metrics named ``timing.<field>`` (unless the record has a metric of that name).
    """
    rows = [row for rec in records for row in _record_rows(rec, timing)]
    # object columns keep ints (versions, seeds) as ints even when some records lack them
    data = {
        c: pd.Series([r[c] for r in rows], dtype=float if c in _FLOAT_COLUMNS else object)
        for c in FRAME_COLUMNS
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


def different(a_mean: float, a_ci: float | None, b_mean: float, b_ci: float | None) -> bool:
    """True when the intervals ``a_mean ± a_ci`` and ``b_mean ± b_ci`` do not overlap.

    False whenever either mean or half-width is missing or not finite: without both
    intervals nothing is said to differ.
    """
    vals = (a_mean, a_ci, b_mean, b_ci)
    if any(v is None or not math.isfinite(float(v)) for v in vals):
        return False
    return a_mean - a_ci > b_mean + b_ci or b_mean - b_ci > a_mean + a_ci


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

    Columns: the key, metric, mean, std (ddof=1, NaN when n=1), n, ci95 (half-width over
    pretraining seeds), seeds (sorted tuple), run_ids, higher_is_better, unit, protocol,
    inner_std / inner_n (the within-run repetitions of the first run, NaN without), interval
    and interval_source (the half-width to use: ci95 with source "seeds" when n >= 2, else
    the within-run t-interval with source "within-run", else NaN and ""), n_not_ok and
    not_ok (the group's runs that were left out, e.g. "1 diverged").
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
                "protocol",
                "inner_std",
                "inner_n",
                "interval",
                "interval_source",
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
    out["not_ok"] = [_status_text(c.elements()) for c in counts]
    return out


def _interval(n: int, ci95: float, inner_std: float, inner_n: float) -> tuple[float, str]:
    if n >= 2:
        return (ci95, "seeds") if math.isfinite(ci95) else (math.nan, "")
    if math.isfinite(inner_n) and inner_n >= 2:
        half = ci95_halfwidth(inner_std, int(inner_n))
        if math.isfinite(half):
            return half, "within-run"
    return math.nan, ""


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


def mark_significant(agg: pd.DataFrame) -> pd.Series:
    """Per column, True for entries whose interval does not overlap the best entry's (:func:`different`).

    The best entry has the highest mean (lowest for lower-is-better metrics) among the
    column's comparable (not ``†``) entries; entries marked ``†`` are never marked.
    """
    sig = pd.Series(False, index=agg.index)
    for _, part in agg[~agg["dagger"] & agg["mean"].notna()].groupby("column", sort=False):
        if len(part) < 2:
            continue
        higher = part["higher_is_better"].iloc[0]
        lower_better = not _is_missing(higher) and not bool(higher)
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
    notes = not_ok_notes(df)
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
    stat_notes = []
    if agg["significant"].any():
        stat_notes.append(
            f"{SIGNIFICANT} differs from the best entry of its column: their 95% intervals do not overlap"
        )
    within = agg[(agg["interval_source"] == "within-run") & (ci | agg["significant"])]
    if not within.empty:
        cols = ", ".join(sorted(set(within["metric"])))
        shown = f"{WITHIN_RUN} " if ci else ""
        stat_notes.append(
            f"{shown}one pretraining seed: the 95% interval of {cols} comes from the metric's within-run "
            "repetitions (per_seed / std / n: probe seeds or few-shot subsets), which leave out the "
            "pretraining variance"
        )
    return Table(frame, dagger_notes + notes + stat_notes)


# ---------------------------------------------------------------- the `compare` command


@dataclass
class CompareOptions:
    """Everything ``sslbench compare`` takes (see :func:`run_compare`)."""

    paths: tuple[str, ...] = ()
    fmt: str = "rich"
    metrics: tuple[str, ...] = ()
    ci: bool = False
    reference: str | None = None
    baseline: str | None = None
    fails: tuple[str, ...] = ()
    write_baseline: str | None = None
    hardware_class: str = "cpu-2core"
    plot: str | None = None


def run_compare(opts: CompareOptions, echo: Any = print) -> int:
    """The ``compare`` command: table, then reference / plots / baseline written / gate.

    Every input is checked before anything is printed (bad input raises SSLBenchError, exit
    2). Returns 1 when the gate fails (a regression, or a not-comparable entry a rule
    covers), else 0.
    """
    from pathlib import Path

    from .baseline import compare_to_baseline, gate_table, load_baseline, parse_rules, write_baseline
    from .records import load_records
    from .render import render_table

    rules = parse_rules(opts.fails)
    if rules and not opts.baseline:
        raise SSLBenchError("--fail needs --baseline FILE (the numbers to compare against)")
    baseline = load_baseline(opts.baseline) if opts.baseline else None
    refs = None
    if opts.reference is not None:
        from .reference import load_references

        refs = load_references(opts.reference)
    paths = opts.paths or ("results/runs",)
    records = load_records([Path(p) for p in paths])
    if not records:
        raise SSLBenchError(f"No run records found under {', '.join(paths)}")
    report = compare_to_baseline(records, baseline, rules) if baseline is not None else None

    def show(table: Table, title: str) -> None:
        text = render_table(table, opts.fmt, title=title)
        if text is not None:
            echo(text)

    show(comparison_table(records, list(opts.metrics) or None, ci=opts.ci), "sslbench compare")
    if refs is not None:
        from .reference import reference_table

        show(reference_table(records, refs, ci=opts.ci), "reproduced vs published")
    if opts.plot:
        from .plots import plot_curves

        pngs = plot_curves(records, opts.plot)
        if not pngs:
            echo("plot: no few-shot (acc@nN, @kN, @pN) or noisy-label (acc@symR, @asymR) metrics to plot")
        for png in pngs:
            echo(f"plot: {png}")
    if opts.write_baseline:
        path = write_baseline(records, opts.write_baseline, opts.hardware_class)
        written = load_baseline(path)["entries"]
        dirty = sum(bool(e.get("git_dirty")) for e in written)
        echo(f"baseline: wrote {len(written)} entries ({opts.hardware_class}) to {path}"
             + (f"; {dirty} come from runs of a dirty working tree" if dirty else ""))
    if report is None:
        return 0
    show(gate_table(report, only_covered=bool(rules)), "vs baseline")
    if not rules:
        return 0
    failures = report.failures
    for f in failures:
        echo(f.message())
    covered = [f for f in report.findings if f.covered]
    if failures:
        n_reg = sum(f.status == "regression" for f in failures)
        echo(f"gate failed: {n_reg} regression(s), {len(failures) - n_reg} not comparable, "
             f"{len(covered)} baseline entries covered by {', '.join(opts.fails)}")
        return 1
    noisy = sum(f.status == "within noise" for f in covered)
    echo(f"gate passed: {len(covered)} baseline entries checked against {', '.join(opts.fails)}"
         + (f" ({noisy} beyond a threshold but within the seed spread)" if noisy else ""))
    return 0
