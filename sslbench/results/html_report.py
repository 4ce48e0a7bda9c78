"""The provenance behind each number of the HTML report (``compare --format html``).

A cell of the comparison table is one comparability group (:func:`.frame.aggregate`): its mean over the
pretraining seeds of the runs named in ``run_ids``. :func:`table_html` renders a :class:`~.table.Table`
with :func:`.render.to_html` and hangs on each number a :class:`~.render.CellDetail`: a hover ``title``
(method, suite, metric, the value of each seed, the runs, config hash, data fingerprint, code version,
hardware) and an expandable ``<details>`` holding the same per run (seed, value, within-run repetitions,
run id, git sha and dirty flag, package version, hardware, environment, created, record file) and the
published numbers matched to the group (``--reference``). A published cell of the reference table
carries its source, table, file#anchor, status, protocol and note.

Everything comes from the records and reference files as they are (untrusted): strings are made one
line, cut at :data:`MAX_TEXT` characters and escaped; nothing is executed or fetched.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .frame import is_missing, sort_key
from .render import CellDetail, to_html
from .table import Table

MAX_TEXT = 200
"""Longest text taken from a record field (longer is cut with "…")."""


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """One line of plain text (not yet escaped), at most ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _num(value: Any) -> str:
    """A number as recorded, to 6 significant digits; "—" for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.6g}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _kv(mapping: Any) -> str:
    """``"cpu: x, device: cpu"`` of a record's mapping, leaving out empty values."""
    return ", ".join(f"{_text(k, 40)}: {_text(v, 80)}" for k, v in _mapping(mapping).items()
                     if v is not None and v != "" and v != [] and v != {})


def _code(rec: dict[str, Any], full: bool = False) -> str:
    """``"git 1a2b3c4d5e6f (dirty), sslbench 0.1.0"``; "" when the record carries neither."""
    code = _mapping(rec.get("code"))
    parts = []
    if code.get("git_sha"):
        sha = _text(code["git_sha"], 64)
        parts.append(f"git {sha if full else sha[:12]}" + (" (dirty)" if code.get("git_dirty") else ""))
    if code.get("package_version"):
        parts.append(f"sslbench {_text(code['package_version'], 40)}")
    return ", ".join(parts)


def _hardware(rec: dict[str, Any]) -> str:
    """``"cpu Intel Xeon"``, ``"cuda H100 × 8 processes"`` (``world_size`` of a data-parallel run)."""
    hw = _mapping(rec.get("hardware"))
    device = hw.get("device")
    what = hw.get("gpu") or hw.get("cpu")
    text = " ".join(_text(v, 80) for v in (device, what) if v) or _kv(hw)
    world = rec.get("world_size")
    if isinstance(world, int) and not isinstance(world, bool) and world > 1:
        text += f" × {world} processes"
    return text


def _metric_value(rec: dict[str, Any], metric: str) -> tuple[Any, Any]:
    """(value, within-run repetitions or None) of ``metric`` in ``rec``."""
    m = _mapping(rec.get("metrics")).get(metric)
    if isinstance(m, dict):
        reps = m.get("per_seed")
        return m.get("value"), reps if isinstance(reps, list) else None
    return m, None


def _distinct(values: Iterable[str]) -> str:
    seen = list(dict.fromkeys(v for v in values if v))
    return " / ".join(seen) if seen else "—"


def _published_line(ref: Mapping[str, Any]) -> str:
    """``"88.25 ± 0.6 (demo-paper: arXiv ..., Table 2; demo.yaml#digits, status: verified)"``."""
    value = _num(ref.get("ref_value"))
    std = ref.get("ref_std")
    if isinstance(std, float) and math.isfinite(std):
        value += f" ± {_num(std)}"
    file = str(ref.get("ref_file") or "").replace("\\", "/").rsplit("/", 1)[-1]
    where = ", ".join(_text(x) for x in (ref.get("ref_source"), ref.get("ref_table")) if x)
    status = _text(ref.get("ref_status") or "none", 60)
    return f"{value} ({where}; {_text(file, 80)}#{_text(ref.get('ref_anchor'), 60)}, status: {status})"


def group_detail(
    entry: Mapping[str, Any], records: Mapping[str, dict[str, Any]], published: list[Mapping[str, Any]] | None = None
) -> CellDetail:
    """The provenance of one aggregated number.

    ``entry`` is a row of :func:`.frame.aggregate` (or of :func:`.reference.match_references`): method,
    metric, mean, std, n, run_ids, and where present method_version, suite, suite_version, interval,
    interval_source, not_ok. ``records`` maps run ids to records; ``published`` the matched published
    numbers (rows with ``ref_*`` fields).
    """
    metric = str(entry.get("metric"))
    runs = [records.get(str(r)) or {"run_id": str(r)} for r in entry.get("run_ids") or ()]
    runs.sort(key=lambda r: (sort_key(r.get("seed")), str(r.get("run_id"))))
    first = runs[0] if runs else {}
    suite = _mapping(first.get("suite"))
    method_v = entry.get("method_version")
    method = _text(entry.get("method")) + ("" if is_missing(method_v) else f" v{_text(method_v, 20)}")
    suite_v = entry.get("suite_version", suite.get("version"))
    suite_name = _text(entry.get("suite", suite.get("name")))
    suite_text = suite_name + ("" if is_missing(suite_v) else f" v{_text(suite_v, 20)}")
    unit = _text((_mapping(_mapping(first.get("metrics")).get(metric))).get("unit") or "", 20)
    values = [(r.get("seed"), *_metric_value(r, metric)) for r in runs]
    per_seed = ", ".join(f"seed {_text(s, 20)}: {_num(v)}" for s, v, _ in values)
    n = int(entry.get("n") or 0)
    summary = f"mean {_num(entry.get('mean'))}" + (f" ± {_num(entry.get('std'))} (std)" if n > 1 else "")
    interval = entry.get("interval")
    interval_text = ""
    if isinstance(interval, float) and math.isfinite(interval):
        source = entry.get("interval_source") or "seeds"
        interval_text = f"± {_num(interval)} ({'over pretraining seeds' if source == 'seeds' else source})"
    config = _text(first.get("config_hash") or "none", 80)
    fingerprint = _text(suite.get("data_fingerprint") or "none", 100)
    code = _distinct(_code(r) for r in runs)
    hardware = _distinct(_hardware(r) for r in runs)
    not_ok = entry.get("not_ok")
    published = list(published or [])

    lines = [f"{method} on {suite_text}: {metric}" + (f" ({unit})" if unit else ""),
             f"{summary} over {n} run{'s' if n != 1 else ''}; {per_seed}"]
    if interval_text:
        lines.append(f"95% interval {interval_text}")
    lines += [f"runs: {', '.join(_text(r.get('run_id')) for r in runs)}",
              f"config {config}, data {fingerprint}", f"code {code}", f"hardware {hardware}"]
    if isinstance(not_ok, str) and not_ok:
        lines.append(f"left out (not ok): {_text(not_ok)}")
    lines += [f"published {_published_line(p)}" for p in published]

    facts = [("method", method), ("suite", suite_text),
             ("metric", metric + (f" ({unit})" if unit else "") + _direction(entry, first, metric)),
             ("aggregate", f"{summary} over {n} run{'s' if n != 1 else ''}"),
             ("95% interval", interval_text), ("config hash", config), ("data fingerprint", fingerprint),
             ("left out (not ok)", not_ok if isinstance(not_ok, str) else "")]
    facts += [("published", _published_line(p)) for p in published]
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts if v)
    items = []
    for rec, (seed, value, reps) in zip(runs, values, strict=True):
        fields = [("within-run repetitions", ", ".join(_num(x) for x in reps) if reps else ""),
                  ("run id", _text(rec.get("run_id"))), ("code", _code(rec, full=True)),
                  ("hardware", _hardware(rec)), ("environment", _kv(rec.get("environment"))),
                  ("created", _text(rec.get("created") or "", 40)), ("record file", _text(rec.get("_path") or ""))]
        rest = "; ".join(f"{k}: {_esc(v)}" for k, v in fields if v)
        items.append(f"<li><b>seed {_esc(_text(seed, 20))}: {_num(value)}</b>; {rest}</li>")
    runs_html = f'<ul class="runs">{"".join(items)}</ul>'
    return CellDetail("\n".join(lines), f"<dl>{dl}</dl>{runs_html}")


def _direction(entry: Mapping[str, Any], rec: dict[str, Any], metric: str) -> str:
    higher = entry.get("higher_is_better")
    if is_missing(higher):
        higher = _mapping(_mapping(rec.get("metrics")).get(metric)).get("higher_is_better")
    if not is_missing(higher) and higher in (True, False):
        return ", higher is better" if higher else ", lower is better"
    return ""


def published_detail(ref: Mapping[str, Any]) -> CellDetail:
    """The provenance of a published number (a row of :func:`.reference.match_references`)."""
    file = _text(ref.get("ref_file") or "")
    facts = [("value", _num(ref.get("ref_value"))), ("source", ref.get("ref_source")),
             ("table", ref.get("ref_table")), ("file", f"{file}#{_text(ref.get('ref_anchor'), 60)}"),
             ("status", ref.get("ref_status")), ("protocol", ref.get("ref_protocol")), ("note", ref.get("ref_note"))]
    shown = [(k, _text(v)) for k, v in facts if isinstance(v, str) and v]
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in shown)
    return CellDetail("\n".join(f"{k}: {v}" for k, v in shown), f"<dl>{dl}</dl>")


def _group_key(row: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A group's number: its metric and its runs (the runs alone hold every metric of the group)."""
    return str(row["metric"]), tuple(map(str, row["run_ids"]))


def _by_group(frame: pd.DataFrame | None) -> dict[tuple[str, tuple[str, ...]], list[Mapping[str, Any]]]:
    out: dict[tuple[str, tuple[str, ...]], list[Mapping[str, Any]]] = {}
    if frame is None or frame.empty or "run_ids" not in frame:
        return out
    for _, row in frame.iterrows():
        out.setdefault(_group_key(row), []).append(row.to_dict())
    return out


def comparison_details(
    table: Table, records: list[dict[str, Any]], published: pd.DataFrame | None = None
) -> dict[tuple[int, int], CellDetail]:
    """A :class:`~.render.CellDetail` per filled cell of a :func:`.table.comparison_table`.

    ``published``: the ``cells`` of a :func:`.reference.reference_table` (matched published numbers).
    """
    if table.cells is None or table.cells.empty:
        return {}
    by_id = {str(r.get("run_id")): r for r in records}
    refs = _by_group(published)
    index, columns = list(table.frame.index), list(table.frame.columns)
    out: dict[tuple[int, int], CellDetail] = {}
    for _, entry in table.cells.iterrows():
        if entry["row"] in index and entry["column"] in columns:
            out[(index.index(entry["row"]), columns.index(entry["column"]))] = group_detail(
                entry.to_dict(), by_id, refs.get(_group_key(entry)))
    return out


def reference_details(table: Table, records: list[dict[str, Any]]) -> dict[tuple[int, int], CellDetail]:
    """Details for the "reproduced" and "published" cells of a :func:`.reference.reference_table`."""
    if table.cells is None or table.cells.empty or len(table.cells) != len(table.frame):
        return {}
    by_id = {str(r.get("run_id")): r for r in records}
    columns = list(table.frame.columns)
    out: dict[tuple[int, int], CellDetail] = {}
    for i, (_, row) in enumerate(table.cells.iterrows()):
        entry = row.to_dict()
        if "reproduced" in columns:
            out[(i, columns.index("reproduced"))] = group_detail(entry, by_id, [entry])
        if "published" in columns:
            out[(i, columns.index("published"))] = published_detail(entry)
    return out


def table_html(
    table: Table, title: str, records: list[dict[str, Any]], published: pd.DataFrame | None = None
) -> str:
    """``table`` as an HTML fragment with the provenance of its numbers: a comparison table (its cells
    are :func:`.frame.aggregate` rows) or a reference table (its cells carry ``ref_*`` fields); any
    other table (the gate's) is rendered as it is."""
    cells = table.cells
    if cells is not None and "ref_value" in cells:
        details = reference_details(table, records)
    elif cells is not None and {"row", "column"} <= set(cells.columns):
        details = comparison_details(table, records, published)
    else:
        details = {}
    return to_html(table, title, details)
