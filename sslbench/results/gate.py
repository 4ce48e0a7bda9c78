"""Baselines of reproduced numbers and the regression gate (``compare --baseline F --fail RULE``).

Baseline file
-------------
JSON (``.json``, the default) or YAML (``.yaml`` / ``.yml``), written by
:func:`write_baseline` (``sslbench compare RUNS --write-baseline F --hardware-class cpu-2core``)
from the ``ok`` records of honest runs; one entry per comparability group
(:data:`.frame.GROUP_KEY`) and metric, with the provenance of the records it
came from::

    {
      "format": "sslbench-baseline",
      "format_version": 1,
      "created": "2026-11-24T10:00:00+00:00",
      "hardware_class": "cpu-2core",
      "entries": [
        {
          "suite": "cifar10-linear-small", "suite_version": 1,
          "data_fingerprint": "sha256:d34c68f61cca57aa", "config_hash": "d843524c48a6",
          "method": "simclr", "method_version": 1,
          "metric": "linear.top1", "higher_is_better": true, "unit": "%",
          "mean": 41.85, "std": 0.31, "n": 3,          # std over seeds (ddof=1), null when n = 1
          "seeds": [0, 1, 2], "values": [41.5, 42.0, 42.05],   # one value per seed, same order
          "hardware_class": "cpu-2core", "hardware": ["cpu x2"],
          "run_ids": ["simclr-cifar10-linear-small-s0-...", ...],
          "git_sha": ["1eacb6a..."], "git_dirty": false, "package_version": ["0.1.0"],
          "created": ["2026-11-23T22:10:36+00:00", ...]
        }
      ]
    }

Besides the records' metrics, entries cover the run's ``timing`` (``timing.samples_per_s``,
``timing.peak_memory_mb``, ``timing.wall_s``; see :data:`.frame.TIMING_METRICS`).
``hardware`` is the coarse machine of the records ("cpu xN" or "cuda <gpu> xN"): for
performance metrics (protocol ``timing`` or ``profile``) a different one is not comparable.

Rules
-----
``METRIC:THRESHOLD``. METRIC matches a metric name exactly, as a glob (``knn.*``) or by its
last dotted part (``top1`` matches ``linear.top1`` and ``knn.top1``). THRESHOLD ``1.0`` is
absolute (points of the metric's unit), ``10%`` relative to the baseline mean. Every rule
that matches a metric applies; the metric fails when any of them flags it. A rule that
matches no metric of the baseline is bad input (a typo would otherwise pass silently).

Gate
----
For each baseline entry a rule covers, the current group with the same comparability key
(suite version, data fingerprint, config hash, method version) is compared. The drop is
measured in the metric's bad direction (baseline - current when higher is better, current
- baseline otherwise). It is a regression only when

* drop > threshold, and
* when either side has n >= 2 seeds, drop > the seed spread, taken as the half-width of the
  95% Student-t interval of the difference of the two means with a pooled variance:
  ``t_0.975(df) * s_p * sqrt(1/n_base + 1/n_cur)``, ``s_p^2 = sum((n_i - 1) s_i^2) / df``,
  ``df = sum(n_i - 1)`` over the sides with n_i >= 2 (:func:`.stats.diff_ci95_halfwidth`).

Why the interval of the difference rather than "2 x pooled std": it is the test the
``compare --ci`` intervals already speak (a one-sided test at 2.5%: an unchanged code base
fails the gate by chance in about one run in forty at most, whatever the number of seeds),
it tightens as seeds are added (2 x std does not, however many seeds are run), and with
one seed on one side it still uses the other side's spread (same suite, config and hardware
class, so equal variances is the natural assumption). With 2 + 2 seeds it is conservative
(t_0.975(2) = 4.3); the absolute/relative threshold is what catches the large drops.

A current run that is not ``ok`` (diverged, failed, interrupted) of a (suite, method) the
baseline has is reported as ``not ok``, naming the run, its status and its error, and fails the
gate when a rule covers one of that pair's entries: a run that produced no numbers (or NaN) must
not pass as "missing". Of the records of one measurement (group and seed) only the newest counts
(:func:`.frame.one_per_measurement`), so a seed run again after it failed is judged by the rerun.

Entries with no current group are reported as ``missing`` and never fail. Entries whose
(suite, method, metric) has only current groups with another key are ``not comparable``:
reported, never counted as a pass, and a failure when a rule covers them. Current groups
that the baseline lacks are reported as ``new``.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_write_text
from ..errors import SSLBenchError
from .frame import aggregate, is_missing, method_label, one_per_measurement, records_frame, short_id, sort_key
from .records import write_json
from .stats import diff_ci95_halfwidth
from .table import Table

FORMAT = "sslbench-baseline"
FORMAT_VERSION = 1
DEFAULT_HARDWARE_CLASS = "cpu-2core"
KEY_FIELDS: tuple[str, ...] = ("suite_version", "data_fingerprint", "config_hash", "method_version")
PERFORMANCE_PROTOCOLS = ("timing", "profile")
RULE_FORM = "METRIC:THRESHOLD, e.g. top1:1.0 (absolute points) or samples_per_s:10% (relative to the baseline)"

# ---------------------------------------------------------------- rules

_RULE = re.compile(r"^(?P<metric>[^:\s]+)\s*:\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<pct>%)?$")


@dataclass(frozen=True)
class FailRule:
    """``METRIC:THRESHOLD``: a drop beyond ``threshold`` (points, or percent of the baseline) fails."""

    metric: str
    threshold: float
    relative: bool
    text: str

    def matches(self, name: str) -> bool:
        return name == self.metric or fnmatch.fnmatchcase(name, self.metric) or name.rsplit(".", 1)[-1] == self.metric

    def limit(self, baseline_mean: float) -> float:
        """The threshold in the metric's unit."""
        return self.threshold / 100.0 * abs(baseline_mean) if self.relative else self.threshold


def parse_rule(text: str) -> FailRule:
    """Parse ``METRIC:THRESHOLD``; bad syntax raises :class:`SSLBenchError` naming the rule and the form."""
    m = _RULE.match(text.strip())
    if not m:
        raise SSLBenchError(f"Bad --fail rule '{text}': expected {RULE_FORM}")
    return FailRule(m["metric"], float(m["num"]), bool(m["pct"]), text.strip())


def parse_rules(texts: list[str] | tuple[str, ...]) -> list[FailRule]:
    return [parse_rule(t) for t in texts]


# ---------------------------------------------------------------- file


def _hardware(rec: dict[str, Any]) -> str:
    hw = rec.get("hardware") or {}
    if hw.get("gpu"):
        return f"cuda {hw['gpu']} x{hw.get('gpu_count') or 1}"
    if hw.get("cpu_count"):
        return f"{hw.get('device') or 'cpu'} x{hw['cpu_count']}"
    return "unknown"


def _clean(value: Any) -> Any:
    """JSON/YAML-safe scalars: NaN -> None, numpy -> python."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _current(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = records_frame(records, timing=True)
    agg = aggregate(df)
    return df, agg[agg["mean"].notna()].reset_index(drop=True)


def baseline_entries(records: list[dict[str, Any]], hardware_class: str) -> list[dict[str, Any]]:
    """The baseline entries of ``records`` (``ok`` runs only), one per group and metric."""
    df, agg = _current(records)
    by_id = {rec.get("run_id"): rec for rec in records}
    entries = []
    for _, row in agg.iterrows():
        runs = [by_id[r] for r in row["run_ids"]]
        part = df[(df["metric"] == row["metric"]) & df["run_id"].isin(row["run_ids"])]
        values = {r: v for r, v in zip(part["run_id"], part["value"], strict=True)}
        codes = [rec.get("code") or {} for rec in runs]
        entries.append(
            {
                "suite": row["suite"],
                "suite_version": _clean(row["suite_version"]),
                "data_fingerprint": row["data_fingerprint"],
                "config_hash": row["config_hash"],
                "method": row["method"],
                "method_version": _clean(row["method_version"]),
                "metric": row["metric"],
                "higher_is_better": bool(row["higher_is_better"]),
                "unit": row["unit"] or "",
                "protocol": row["protocol"],
                "mean": _clean(float(row["mean"])),
                "std": _clean(float(row["std"])),
                "n": int(row["n"]),
                "seeds": [_clean(s) for s in row["seeds"]],
                "values": [_clean(values[r]) for r in _by_seed(row["run_ids"], runs)],
                "hardware_class": hardware_class,
                "hardware": sorted({_hardware(rec) for rec in runs}),
                "run_ids": list(_by_seed(row["run_ids"], runs)),
                "git_sha": sorted({str(c.get("git_sha")) for c in codes if c.get("git_sha")}),
                "git_dirty": any(bool(c.get("git_dirty")) for c in codes),
                "package_version": sorted({str(c.get("package_version")) for c in codes if c.get("package_version")}),
                "created": sorted({str(rec.get("created")) for rec in runs if rec.get("created")}),
            }
        )
    return entries


def _by_seed(run_ids: tuple[str, ...], runs: list[dict[str, Any]]) -> list[str]:
    order = sorted(range(len(runs)), key=lambda i: sort_key(runs[i].get("seed")))
    return [run_ids[i] for i in order]


def write_baseline(records: list[dict[str, Any]], path: str | Path, hardware_class: str = DEFAULT_HARDWARE_CLASS) -> Path:
    """Write the baseline of ``records`` to ``path`` (YAML for .yaml/.yml, else JSON), atomically."""
    entries = baseline_entries(records, hardware_class)
    if not entries:
        raise SSLBenchError("No ok runs with metrics to write a baseline from")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware_class": hardware_class,
        "entries": entries,
    }
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return atomic_write_text(path, yaml.safe_dump(payload, sort_keys=False, allow_unicode=True))
    return write_json(path, payload)


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and check a baseline file (JSON or YAML)."""
    path = Path(path)
    if not path.is_file():
        raise SSLBenchError(f"No such baseline file: '{path}'")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise SSLBenchError(f"Corrupt baseline '{path}': {' '.join(str(e).split())}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), list):
        raise SSLBenchError(f"'{path}' is not an sslbench baseline (format: {FORMAT}, entries: [...])")
    if data.get("format_version") != FORMAT_VERSION:
        raise SSLBenchError(f"Baseline '{path}' has format_version {data.get('format_version')!r}; "
                            f"this sslbench reads {FORMAT_VERSION}")
    need = ("suite", "method", "metric", "mean", "n", "higher_is_better")
    for i, e in enumerate(data["entries"]):
        if not isinstance(e, dict) or any(k not in e for k in need):
            raise SSLBenchError(f"Baseline '{path}' entry {i + 1} needs {', '.join(need)}")
    data["_path"] = str(path)
    return data


# ---------------------------------------------------------------- gate


@dataclass
class Finding:
    """One baseline entry (or one new current group) and what the gate made of it.

    ``status``: "pass", "within noise" (beyond a threshold but not beyond the seed spread),
    "regression", "not comparable", "missing", "unchecked" (no rule covers it), "new", or "not ok"
    (a current run of a baselined suite and method that did not finish ok; ``metric`` is empty).
    """

    status: str
    suite: str
    suite_version: Any
    method: str
    metric: str
    unit: str = ""
    higher_is_better: bool = True
    baseline: float | None = None
    n_baseline: int = 0
    current: float | None = None
    n_current: int = 0
    drop: float | None = None
    threshold: float | None = None
    spread: float | None = None
    rule: str | None = None
    covered: bool = False
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "regression" or (self.status in ("not comparable", "not ok") and self.covered)

    @property
    def where(self) -> str:
        version = f" v{self.suite_version}" if self.suite_version is not None else ""
        metric = f" / {self.metric}" if self.metric else ""
        return f"{self.suite}{version} / {self.method}{metric}"

    def message(self) -> str:
        """One line; for a regression: suite, method, metric, baseline, current, drop, threshold."""
        if self.status in ("regression", "within noise", "pass", "unchecked"):
            unit = f" {self.unit}" if self.unit and self.unit != "%" else ""
            text = (f"{self.where}: baseline {_num(self.baseline)} (n={self.n_baseline}) -> current "
                    f"{_num(self.current)} (n={self.n_current}){unit}, drop {_num(self.drop)}")
            spread = self.spread is not None and math.isfinite(self.spread)
            if self.threshold is not None:
                op = ">" if self.status in ("regression", "within noise") else "<="
                text += f" {op} threshold {_num(self.threshold)} [{self.rule}]"
            if spread and self.status == "regression":
                text += f" and > seed spread {_num(self.spread)}"
            elif spread:
                text += f"; seed spread {_num(self.spread)}"
            if self.detail:
                text += f" (config differs from the baseline: {self.detail})"
            return f"{self.status}: {text}"
        if self.status == "not comparable":
            tail = f" [covered by {self.rule}]" if self.covered else ""
            return f"not comparable: {self.where}: {self.detail}{tail}"
        return f"{self.status}: {self.where}: {self.detail}"


def _num(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.2f}"


@dataclass
class GateReport:
    findings: list[Finding] = field(default_factory=list)
    baseline_path: str = ""
    hardware_class: str = ""

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.failed]

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.findings)


def _same(a: Any, b: Any) -> bool:
    if is_missing(a) and is_missing(b):
        return True
    return a == b


def compare_to_baseline(
    records: list[dict[str, Any]], baseline: dict[str, Any] | str | Path, fails: list[FailRule] | None = None
) -> GateReport:
    """Every baseline entry checked against the current records (see the module docstring)."""
    if not isinstance(baseline, dict):
        baseline = load_baseline(baseline)
    fails = list(fails or [])
    entries = baseline["entries"]
    names = sorted({str(e["metric"]) for e in entries})
    for rule in fails:
        if not any(rule.matches(n) for n in names):
            raise SSLBenchError(f"--fail rule '{rule.text}' matches no metric of the baseline; "
                                f"its metrics: {', '.join(names) or 'none'}")
    _, cur = _current(records)
    by_id = {rec.get("run_id"): rec for rec in records}
    cur_hw = [sorted({_hardware(by_id[r]) for r in ids}) for ids in cur["run_ids"]]
    report = GateReport(baseline_path=str(baseline.get("_path", "")), hardware_class=str(baseline.get("hardware_class", "")))

    def key_match(e: dict[str, Any], i: int) -> bool:
        return all(_same(e.get(k), cur.at[i, k]) for k in KEY_FIELDS)

    def same_name(e: dict[str, Any]) -> list[int]:
        return [i for i in cur.index if cur.at[i, "suite"] == e["suite"] and cur.at[i, "method"] == e["method"]
                and cur.at[i, "metric"] == e["metric"]]

    not_ok = _not_ok_findings(records, entries, fails)
    matched: set[int] = set()
    exact: list[int | None] = []
    for e in entries:
        hit = next((i for i in same_name(e) if key_match(e, i)), None)
        exact.append(hit)
        if hit is not None:
            matched.add(hit)

    for e, hit in zip(entries, exact, strict=True):
        rules = [r for r in fails if r.matches(str(e["metric"]))]
        base = Finding(
            status="unchecked", suite=e["suite"], suite_version=e.get("suite_version"), method=e["method"],
            metric=e["metric"], unit=e.get("unit") or "", higher_is_better=bool(e["higher_is_better"]),
            baseline=float(e["mean"]), n_baseline=int(e["n"]), covered=bool(rules),
            rule=", ".join(r.text for r in rules) or None,
        )
        if hit is None:
            others = [i for i in same_name(e) if i not in matched]
            if not others:
                bad = [f for f in not_ok if (f.suite, f.method) == (e["suite"], e["method"])]
                what = f"no ok current record ({len(bad)} not ok)" if bad else "no current record"
                base.status, base.detail = "missing", f"{what} (baseline n={base.n_baseline})"
            else:
                base.status = "not comparable"
                base.detail = "; ".join(_differences(e, cur.loc[i]) for i in others)
                # still say whether the numbers dropped: a changed default or a degraded run shows as a
                # regression (with the difference named), not only as "not comparable"
                row = cur.loc[others[0]]
                base.current, base.n_current = float(row["mean"]), int(row["n"])
                drop = base.baseline - base.current if base.higher_is_better else base.current - base.baseline
                base.drop = drop
                for rule in rules:
                    if drop > rule.limit(base.baseline):
                        base.status, base.threshold, base.rule = "regression", rule.limit(base.baseline), rule.text
                        break
            report.findings.append(base)
            continue
        row = cur.loc[hit]
        base.current, base.n_current = float(row["mean"]), int(row["n"])
        performance = (e.get("protocol") or row["protocol"]) in PERFORMANCE_PROTOCOLS
        if performance and e.get("hardware") and cur_hw[hit] != sorted(e["hardware"]):
            base.status = "not comparable"
            base.detail = (f"hardware differs: baseline {', '.join(e['hardware'])} ({report.hardware_class}), "
                           f"current {', '.join(cur_hw[hit])}")
            report.findings.append(base)
            continue
        drop = base.baseline - base.current if base.higher_is_better else base.current - base.baseline
        base.drop = drop
        if max(base.n_baseline, base.n_current) >= 2:
            base.spread = diff_ci95_halfwidth(_float(e.get("std")), base.n_baseline, _float(row["std"]), base.n_current)
        base.status = "pass" if rules else "unchecked"
        for rule in rules:
            limit = rule.limit(base.baseline)
            beyond_threshold = drop > limit
            beyond_spread = base.spread is None or not math.isfinite(base.spread) or drop > base.spread
            if beyond_threshold and beyond_spread:
                base.status, base.threshold, base.rule = "regression", limit, rule.text
                break
            if beyond_threshold and base.status == "pass":
                base.status, base.threshold, base.rule = "within noise", limit, rule.text
        if base.status == "pass" and rules:
            base.threshold, base.rule = rules[0].limit(base.baseline), rules[0].text
        report.findings.append(base)

    report.findings.extend(not_ok)
    in_baseline = {(e["suite"], e["method"], e["metric"]) for e in entries}
    for i in cur.index:
        if i in matched or (cur.at[i, "suite"], cur.at[i, "method"], cur.at[i, "metric"]) in in_baseline:
            continue
        report.findings.append(Finding(
            status="new", suite=cur.at[i, "suite"], suite_version=_clean(cur.at[i, "suite_version"]),
            method=cur.at[i, "method"], metric=cur.at[i, "metric"], unit=cur.at[i, "unit"] or "",
            current=float(cur.at[i, "mean"]), n_current=int(cur.at[i, "n"]), detail="not in the baseline",
        ))
    return report


def _not_ok_findings(
    records: list[dict[str, Any]], entries: list[dict[str, Any]], fails: list[FailRule]
) -> list[Finding]:
    """One "not ok" finding per current run (newest of its measurement) that did not finish ok and
    whose (suite, method) the baseline has; covered when a rule covers one of that pair's entries."""
    pairs: dict[tuple[Any, Any], list[FailRule]] = {}
    for e in entries:
        rules = pairs.setdefault((e["suite"], e["method"]), [])
        rules.extend(r for r in fails if r.matches(str(e["metric"])) and r not in rules)
    found = []
    for rec in one_per_measurement(records)[0]:
        status = rec.get("status", "ok")
        suite = rec.get("suite") or {}
        pair = (suite.get("name"), method_label(rec.get("method") or {}))
        if status == "ok" or pair not in pairs:
            continue
        error = " ".join(str(rec.get("error") or "").split())
        found.append(Finding(
            status="not ok", suite=pair[0], suite_version=_clean(suite.get("version")), method=pair[1], metric="",
            covered=bool(pairs[pair]), rule=", ".join(r.text for r in pairs[pair]) or None,
            detail=f"run {rec.get('run_id')} {status}" + (f": {error}" if error else " (no error recorded)"),
        ))
    return sorted(found, key=lambda f: (str(f.suite), str(f.method), f.detail))


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _differences(e: dict[str, Any], row: pd.Series) -> str:
    diffs = [f"{k} {short_id(e.get(k))} in the baseline, {short_id(row[k])} now"
             for k in KEY_FIELDS if not _same(e.get(k), row[k])]
    return ", ".join(diffs)


def check_against_baseline(
    records: list[dict[str, Any]], baseline: dict[str, Any] | str | Path, fails: list[FailRule]
) -> list[Finding]:
    """The failures of the gate: regressions, and not-comparable entries that a rule covers."""
    return compare_to_baseline(records, baseline, fails).failures


def gate_table(report: GateReport, only_covered: bool = False) -> Table:
    """A :class:`~.table.Table` of baseline vs current per entry, with the verdict."""
    rows = []
    for f in report.findings:
        if only_covered and not f.covered and f.status != "new":
            continue
        base = "—" if f.baseline is None else f"{_num(f.baseline)} ({f.n_baseline})"
        cur = "—" if f.current is None else f"{_num(f.current)} ({f.n_current})"
        change = "—"
        if f.baseline is not None and f.current is not None:
            change = f"{f.current - f.baseline:+.2f}"
            if f.baseline:
                change += f" ({(f.current - f.baseline) / abs(f.baseline):+.1%})"
        # parentheses, not brackets: rich would read "[top1:1.0]" as markup
        verdict = f.status + (f" ({f.rule})" if f.rule and f.status != "unchecked" else "")
        if f.detail and f.status not in ("missing", "new"):
            verdict += f": {f.detail}"
        version = f" v{f.suite_version}" if f.suite_version is not None else ""
        rows.append([f.method, f"{f.suite}{version}", f.metric or "(run)", base, cur, change, verdict])
    frame = pd.DataFrame(rows, columns=["method", "suite", "metric", "baseline", "current", "change", "verdict"])
    frame = frame.set_index("method")
    notes = [f"baseline {report.baseline_path} (hardware class {report.hardware_class or 'unknown'})"]
    for status in ("missing", "new"):
        n = report.count(status)
        if n:
            what = "baseline entries have no current record" if status == "missing" else \
                "current groups are not in the baseline"
            notes.append(f"{n} {what} ({status}; reported, not failed)")
    return Table(frame, notes)
