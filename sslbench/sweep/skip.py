"""Which points of a sweep are done: the records already in ``--out`` and the checkpoints left in ``--out/.work``.

A point is *done* when ``--out`` holds an ``ok`` record of the same method (name, variant and version), suite,
config hash and seed (:func:`sslbench.config.config_hash` leaves the seed and runtime-only keys out and
covers the suite version); it is *resumed* when the run's work folder holds a checkpoint
(:func:`sslbench.runner.has_checkpoint`); otherwise it *runs*. Only records at the top level of ``--out`` count:
that is where ``sslbench run`` writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..build import safe_component
from ..results.records import created_key, load_records

# (method as typed, e.g. moco.v2; method version; suite name; config hash; seed)
PointKey = tuple[str, int, str, str, int]


@dataclass
class Outcome:
    """How a point ended: the status of its record (or ``failed`` without one), the record's file, the error."""

    status: str  # ok | diverged | failed | interrupted | done (an ok record was there before) | not run
    record: str | None = None
    exit_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_key(rec: dict[str, Any]) -> PointKey | None:
    """The key of a loaded record, or None when it lacks a field (a profile point, a foreign file)."""
    method, suite = rec.get("method") or {}, rec.get("suite") or {}
    name, variant = method.get("name"), method.get("variant")
    if not isinstance(name, str) or not isinstance(rec.get("seed"), int):
        return None
    return (f"{name}.{variant}" if variant else name, method.get("version"), suite.get("name"),
            rec.get("config_hash"), rec["seed"])


def record_prefix(key: PointKey) -> str:
    """The start of every run id (file name) of this point's records, as :func:`sslbench.build.new_run_id` makes
    them: ``<method>-<suite>-s<seed>-``."""
    method, _, suite, _, seed = key
    return safe_component(f"{method}-{suite}-s{seed}-")


def index_records(out: Path, warn: Callable[[str], Any] | None = None) -> dict[PointKey, list[dict[str, Any]]]:
    """The records at the top level of ``out`` by key, oldest first (nothing when ``out`` does not exist)."""
    files = sorted(p for p in Path(out).glob("*.json") if not p.name.startswith(".")) if Path(out).is_dir() else []
    index: dict[PointKey, list[dict[str, Any]]] = {}
    for rec in sorted(load_records(files, warn=warn), key=created_key):
        key = record_key(rec)
        if key is not None:
            index.setdefault(key, []).append(rec)
    return index


def ok_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest ``ok`` record among a point's records, or None."""
    ok = [r for r in records if r.get("status") == "ok"]
    return ok[-1] if ok else None


def point_records(out: Path, key: PointKey) -> dict[str, dict[str, Any]]:
    """This point's records in ``out`` by file path (only the files named like its run ids are read)."""
    files = sorted(Path(out).glob(record_prefix(key) + "*.json")) if Path(out).is_dir() else []
    recs = load_records(files, warn=lambda _msg: None)
    return {r["_path"]: r for r in recs if record_key(r) == tuple(key)}


def outcome_after(out: Path, key: PointKey, before: set[str], exit_code: int | None,
                  error: str | None = None, stopped: bool = False) -> Outcome:
    """The outcome of one attempt at a point: its newest record not in ``before`` (the files there before it
    started), else ``interrupted`` (``stopped``: the sweep was stopped, or the point's process by a signal) or
    ``failed``, with ``error`` (the run's last line) or the exit code."""
    new = [r for path, r in point_records(out, key).items() if path not in before]
    if new:
        rec = max(new, key=created_key)
        return Outcome(rec["status"], rec["_path"], exit_code, rec.get("error"))
    if stopped or exit_code in (130, 143, -2, -15):
        return Outcome("interrupted", None, exit_code, error or "stopped before its run started")
    return Outcome("failed", None, exit_code, error or f"no record was written (exit code {exit_code})")


__all__ = ["PointKey", "Outcome", "record_key", "record_prefix", "index_records", "ok_record", "point_records",
           "outcome_after"]
