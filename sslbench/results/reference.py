"""Published numbers (``results/reference/*.yaml``) beside the reproduced ones.

A reference file holds the numbers of one paper or project::

    project: solo-learn
    source: https://github.com/vturrisi/solo-learn (README.md, results tables)
    entries:
      cifar10:                                  # the anchor: suites point at file.yaml#cifar10
        suite: cifar10-linear                   # the sslbench suite it corresponds to
        protocol: {dataset: ..., encoder: ..., epochs: 1000, evaluation: ..., metric: top-1}
        results:
          - {method: simclr, metric: linear.top1, value: 90.74, status: verified,
             table: "README, CIFAR-10", epochs: 200, batch: 128, note: "..."}

:func:`load_references` flattens a file or a folder of them into a frame with one row
per published number: file, anchor, suite, method, metric, value, source, table,
std (the published +- where the source gives one, else NaN), protocol (a one-line summary of the
entry's protocol and the result's own details such as epochs and batch), status, unverified
(status contains "to verify") and note.

:func:`match_references` pairs them with reproduced aggregates (:func:`sslbench.results.frame.aggregate`)
by (suite, method, metric). A suite matches by name, or through the ``suite.reference``
(``results/reference/<file>.yaml#<anchor>``) that the records carry. A method matches
exactly (``moco.v2`` only with ``moco.v2``) or by the base name (a published ``simclr``
matches every reproduced ``simclr`` variant). One reproduced group may face several
published numbers (e.g. 200 and 800 epochs): each gets its row, with its protocol
details so the reader sees which one is the like-for-like comparison.

The files ship with sslbench as the package ``sslbench_references`` (``results/reference`` of the
source tree): a path under ``results/reference`` that does not exist relative to the working
folder (the bare ``--reference``, or a suite's ``reference: results/reference/solo-learn.yaml#cifar10``)
is read from there (:func:`resolve_reference_path`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SSLBenchError
from .frame import aggregate, records_frame, short_id
from .table import Table, format_mean_std

DEFAULT_REFERENCE_DIR = "results/reference"
UNVERIFIED = "(unverified)"

REFERENCE_COLUMNS: tuple[str, ...] = (
    "file",
    "anchor",
    "suite",
    "method",
    "metric",
    "value",
    "std",
    "source",
    "table",
    "protocol",
    "status",
    "unverified",
    "note",
)

# result fields that describe the protocol of that one number (the rest are named columns)
_RESULT_FIELDS = {"method", "metric", "value", "std", "status", "table", "note", "source"}


def _summary(details: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in details.items() if v is not None and v != "")


def packaged_references() -> Path | None:
    """The folder of reference files installed with sslbench (package ``sslbench_references``), if any."""
    from importlib import resources

    try:
        return Path(str(resources.files("sslbench_references")))
    except ModuleNotFoundError:
        return None


def resolve_reference_path(path: str | Path) -> Path:
    """``path`` when it exists; else, for a path under ``results/reference``, the installed copy of it
    (:func:`packaged_references`) when that exists; else ``path`` unchanged (the caller reports it)."""
    path = Path(path)
    if path.exists():
        return path
    prefix = Path(DEFAULT_REFERENCE_DIR).parts
    packaged = packaged_references()
    if packaged is not None and path.parts[: len(prefix)] == prefix:
        candidate = packaged.joinpath(*path.parts[len(prefix):])
        if candidate.exists():
            return candidate
    return path


def _reference_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise SSLBenchError(f"No reference files (*.yaml) in '{path}'")
        return files
    if path.is_file():
        return [path]
    raise SSLBenchError(f"No such reference file or folder: '{path}' (default: {DEFAULT_REFERENCE_DIR})")


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SSLBenchError(f"Invalid reference YAML '{path}': {' '.join(str(e).split())}") from e
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise SSLBenchError(f"Reference file '{path}' has no 'entries:' mapping of anchors")
    return data


def load_references(path: str | Path = DEFAULT_REFERENCE_DIR) -> pd.DataFrame:
    """Every published number under ``path`` (a folder of YAML files, a file, or ``file.yaml#anchor``;
    see :func:`resolve_reference_path`)."""
    text = str(path)
    only_anchor = None
    if "#" in text:
        text, only_anchor = text.split("#", 1)
    rows: list[dict[str, Any]] = []
    for f in _reference_files(resolve_reference_path(text)):
        data = _load_yaml(f)
        project = data.get("project")
        file_source = data.get("source")
        for anchor, entry in data["entries"].items():
            if only_anchor is not None and str(anchor) != only_anchor:
                continue
            if not isinstance(entry, dict) or not entry.get("suite"):
                raise SSLBenchError(f"Reference '{f}#{anchor}' names no 'suite:'")
            protocol = entry.get("protocol") or {}
            protocol = protocol if isinstance(protocol, dict) else {"protocol": protocol}
            for i, res in enumerate(entry.get("results") or []):
                if not isinstance(res, dict) or not all(k in res for k in ("method", "metric", "value")):
                    raise SSLBenchError(
                        f"Reference '{f}#{anchor}' result {i + 1} needs method, metric and value: {res!r}"
                    )
                try:
                    value = float(res["value"])
                except (TypeError, ValueError) as e:
                    raise SSLBenchError(f"Reference '{f}#{anchor}' result {i + 1}: value {res['value']!r} "
                                        "is not a number") from e
                status = str(res.get("status", entry.get("status", "")) or "")
                source = res.get("source") or entry.get("source") or file_source or ""
                if project and project not in str(source):
                    source = f"{project}: {source}" if source else str(project)
                extra = {k: v for k, v in res.items() if k not in _RESULT_FIELDS}
                rows.append(
                    {
                        "file": str(f),
                        "anchor": str(anchor),
                        "suite": str(entry["suite"]),
                        "method": str(res["method"]),
                        "metric": str(res["metric"]),
                        "value": value,
                        "std": float(res["std"]) if res.get("std") is not None else math.nan,
                        "source": str(source),
                        "table": str(res.get("table") or entry.get("table") or ""),
                        "protocol": _summary({**protocol, **extra}),
                        "status": status,
                        "unverified": "to verify" in status.lower(),
                        "note": str(res.get("note") or ""),
                    }
                )
    if only_anchor is not None and not rows:
        raise SSLBenchError(f"No reference anchor '#{only_anchor}' in '{text}'")
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))


def method_matches(published: str, reproduced: str) -> bool:
    """``moco.v2`` matches ``moco.v2`` only; a base name ``simclr`` matches ``simclr`` and its variants."""
    return published == reproduced or published == reproduced.split(".", 1)[0]


def _suite_links(records: list[dict[str, Any]]) -> dict[str, set[tuple[str, str]]]:
    """Suite name -> {(reference file name, anchor)} from the records' ``suite.reference``."""
    links: dict[str, set[tuple[str, str]]] = {}
    for rec in records:
        suite = rec.get("suite") or {}
        ref = suite.get("reference")
        if suite.get("name") and isinstance(ref, str) and ref:
            file, _, anchor = ref.partition("#")
            links.setdefault(str(suite["name"]), set()).add((Path(file).name, anchor))
    return links


def match_references(
    agg: pd.DataFrame, refs: pd.DataFrame, records: list[dict[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per (reproduced group, matching published number).

    Columns: the reproduced group's fields (suite, suite_version, method, metric, mean,
    std, n, interval, interval_source), the published ``ref_*`` fields, and ``difference``
    = reproduced mean - published value.
    """
    links = _suite_links(records or [])
    rows = []
    for _, rep in agg.iterrows():
        linked = links.get(str(rep["suite"]), set())
        for ref_index, ref in refs.iterrows():
            suite_ok = ref["suite"] == rep["suite"] or (Path(ref["file"]).name, ref["anchor"]) in linked
            if suite_ok and ref["metric"] == rep["metric"] and method_matches(ref["method"], str(rep["method"])):
                rows.append(
                    {
                        **{k: rep[k] for k in ("suite", "suite_version", "method", "method_version",
                                               "config_hash", "metric", "mean", "std", "n", "run_ids")},
                        "interval": rep.get("interval", rep.get("ci95", math.nan)),
                        "interval_source": rep.get("interval_source", ""),
                        **{f"ref_{k}": ref[k] for k in REFERENCE_COLUMNS},
                        "ref_index": ref_index,
                        "difference": float(rep["mean"]) - float(ref["value"]),
                    }
                )
    return pd.DataFrame(rows)


def reference_table(records: list[dict[str, Any]], refs: pd.DataFrame, ci: bool = False) -> Table:
    """A :class:`~.table.Table`: reproduced vs published, with the difference and the source."""
    agg = aggregate(records_frame(records))
    matched = match_references(agg, refs, records)
    notes: list[str] = []
    columns = ["suite", "metric", "reproduced", "published", "difference", "source"]
    if matched.empty:
        frame = pd.DataFrame(columns=columns, index=pd.Index([], name="method"))
        reproduced = sorted({f"{m} on {s}" for m, s in zip(agg["method"], agg["suite"], strict=True)})
        notes.append(
            "no published number matches a reproduced (suite, method, metric)"
            + (f"; reproduced: {', '.join(reproduced)}" if reproduced else "")
        )
        return Table(frame, notes)
    groups = matched.groupby(["method", "suite", "suite_version"], dropna=False)["config_hash"].transform("nunique")
    out = []
    footnotes: dict[Any, int] = {}
    source_notes: list[str] = []
    for i, r in matched.iterrows():
        interval = r["interval"] if ci else None
        cell = format_mean_std(r["mean"], r["std"], int(r["n"]), ci=interval)
        diff = r["difference"]
        diff_text = f"{diff:+.2f}" if math.isfinite(diff) else "—"
        if ci and math.isfinite(r["interval"]):
            inside = abs(diff) <= r["interval"]
            diff_text += " (inside the interval)" if inside else " (outside the interval)"
        published = f"{r['ref_value']:.2f}"
        if math.isfinite(r["ref_std"]):
            published += f" ± {r['ref_std']:.2f}"
        if r["ref_unverified"]:
            published += f" {UNVERIFIED}"
        if r["ref_index"] not in footnotes:
            footnotes[r["ref_index"]] = len(footnotes) + 1
            source = r["ref_source"] + (f", {r['ref_table']}" if r["ref_table"] else "")
            text = f"[{footnotes[r['ref_index']]}] {source} ({Path(r['ref_file']).name}#{r['ref_anchor']}, " \
                   f"status: {r['ref_status'] or 'none'}): {r['ref_protocol']}"
            source_notes.append(text + (f" — {r['ref_note']}" if r["ref_note"] else ""))
        suite = f"{r['suite']} v{r['suite_version']}" if r["suite_version"] is not None else str(r["suite"])
        label = str(r["method"]) + (f" [cfg {short_id(r['config_hash'])}]" if groups[i] > 1 else "")
        out.append([label, suite, r["metric"], cell, published, diff_text,
                    f"[{footnotes[r['ref_index']]}]"])
    frame = pd.DataFrame(out, columns=["method", *columns]).set_index("method")
    notes.append("difference = reproduced mean - published value; read it with the source's protocol:")
    notes.extend(source_notes)
    if matched["ref_unverified"].any():
        notes.append(f"{UNVERIFIED}: the published number's status says 'to verify'")
    n_unmatched = len(refs) - matched["ref_index"].nunique()
    if n_unmatched > 0:
        noun = "number has" if n_unmatched == 1 else "numbers have"
        notes.append(f"{n_unmatched} published {noun} no reproduced run here")
    return Table(frame, notes, cells=matched.reset_index(drop=True))  # row i of frame is row i of cells
