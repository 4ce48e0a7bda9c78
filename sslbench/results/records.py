"""RunRecord: one JSON file per run, with its provenance, written atomically (:mod:`sslbench.atomic`).

Schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "run_id": "simclr-digits-linear-s0-20261123T213000-1a2b3c",
      "status": "ok" | "diverged" | "failed" | "interrupted",
      "created": "2026-11-23T21:30:00+00:00",
      "method": {"name": "simclr", "variant": null, "version": 1, "origin": "builtin"},
      "suite": {"name": "digits-linear", "version": 1, "data_fingerprint": "sha256:...",
                "reference": "results/reference/solo-learn.yaml#cifar10" | null},
      "config": {... fully resolved config ...},
      "config_hash": "12 hex digits, over the config without the seed and runtime-only keys",
      "seed": 0,
      "metrics": {"linear.top1": {"value": 97.1, "higher_is_better": true, "unit": "%",
                                  "per_seed": [97.1] | null, "protocol": "linear"}},
      "timing": {"wall_s": 123.4, "pretrain_s": 100.0, "samples_per_s": 812.0,
                 "peak_memory_mb": 900.0, "peak_memory_kind": "cpu_rss" | "cuda_max_allocated"},
      "train": {"steps": 70, "epochs": 10, "final_loss": 4.1, "loss_history": [[step, loss], ...]},
      "code": {"git_sha": "...", "git_dirty": false, "package_version": "0.1.0"},
      "environment": {"python": "3.11.7", "torch": "2.11.0", ...},
      "hardware": {"cpu": "...", "cpu_count": 2, "gpu": null, "gpu_count": 0, "device": "cpu"},
      "error": null | "one line",
      "world_size": 1,            # processes that trained it (data parallel; torchrun / --nproc)
      "global_batch": 128         # pretrain.batch_size summed over the ranks (each held global_batch / world_size)
    }

``world_size`` and ``global_batch`` came later: a record without them is a one-process run (read them with
:func:`world_size_of`); ``schema_version`` stays 1, since no earlier field changed meaning.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import SSLBenchError

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed", "interrupted")


@dataclass
class Metric:
    value: float
    higher_is_better: bool = True
    unit: str = ""
    protocol: str = ""
    per_seed: list[float] | None = None  # inner repetitions (probe seeds, few-shot subsets)
    std: float | None = None
    n: int | None = None


@dataclass
class RunRecord:
    run_id: str
    status: str
    method: dict[str, Any]
    suite: dict[str, Any]
    config: dict[str, Any]
    config_hash: str
    seed: int
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    world_size: int = 1  # data-parallel processes
    global_batch: int | None = None  # the global pretraining batch (pretrain.batch_size)

    def add_metric(self, name: str, metric: Metric) -> None:
        self.metrics[name] = {k: v for k, v in asdict(metric).items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (numpy scalars, paths, sets and tuples
    allowed); it is serialised first, so a bad value never touches the file."""
    return atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_record(record: RunRecord, out_dir: Path) -> Path:
    """Save ``record`` as ``out_dir/<run_id>.json`` atomically; run ids are unique."""
    if record.status not in STATUSES:
        raise ValueError(f"status {record.status!r} is not one of {STATUSES}")
    if Path(record.run_id).name != record.run_id or record.run_id.startswith("."):
        raise ValueError(f"run id {record.run_id!r} is not a plain file name")  # never write outside out_dir
    return write_json(Path(out_dir) / f"{record.run_id}.json", record.to_dict())


def load_records(
    paths: list[Path] | tuple[Path, ...], warn: Callable[[str], Any] | None = None
) -> list[dict[str, Any]]:
    """Load every record JSON under the given files or folders (recursively).

    * Temporary files (``.name``) and JSON that is not an sslbench record (no ``schema_version``
      and ``run_id``) are passed over silently.
    * A record of another ``schema_version`` raises :class:`SSLBenchError` naming the file, its
      version and :data:`SCHEMA_VERSION` (it would be read with the wrong meaning).
    * A file that cannot be read, is not JSON (a torn write, binary junk) or is not a well-formed
      record is skipped with one ``warn`` line naming it (default: :func:`warnings.warn`).
    * Several files with one ``run_id`` (a copied folder) are one run: the newest by ``created``
      is kept and one ``warn`` line says how many were dropped.

    Each record gets ``_path`` (the file it was read from).
    """
    warn = warn or _python_warning
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.json") if not q.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            raise SSLBenchError(f"No such record file or folder: '{p}'")
    out: list[dict[str, Any]] = []
    for f in files:
        try:
            data = json.loads(f.read_bytes().decode("utf-8"))
        except OSError as e:
            warn(f"skipped '{f}': cannot read it ({e.strerror or type(e).__name__})")
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            warn(f"skipped '{f}': not JSON, torn or corrupt ({_one_line(e)})")
            continue
        if not isinstance(data, dict) or "schema_version" not in data or "run_id" not in data:
            continue  # some other JSON file (a baseline, a profile table): not a record
        version = data["schema_version"]
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise SSLBenchError(f"Record '{f}' has schema_version {version!r}; this sslbench reads "
                                f"schema_version {SCHEMA_VERSION} only")
        problem = record_problem(data)
        if problem:
            warn(f"skipped '{f}': not a valid sslbench record ({problem})")
            continue
        data["_path"] = str(f)
        out.append(data)
    return _one_per_run_id(out, warn)


def world_size_of(record: dict[str, Any]) -> int:
    """The number of processes that trained a loaded record: 1 for records written before the field existed."""
    value = record.get("world_size", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def record_problem(data: dict[str, Any]) -> str | None:
    """What makes ``data`` unusable as a record (wrong types of the fields compare reads), or None."""
    if not isinstance(data.get("run_id"), str) or not data["run_id"]:
        return "run_id is not a non-empty string"
    if data.get("status", "ok") not in STATUSES:
        return f"status {data.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key in ("method", "suite", "metrics", "timing", "code", "hardware"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is not a mapping"
    for name, metric in (data.get("metrics") or {}).items():
        value = metric.get("value") if isinstance(metric, dict) else metric
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"metric {name} has a value that is not a number"
    return None


def created_key(record: dict[str, Any]) -> tuple[float, str]:
    """Sort key of a record's ``created`` time (ISO 8601): older first, records without one first."""
    text = record.get("created")
    try:
        when = datetime.fromisoformat(str(text))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp(), str(record.get("_path") or record.get("run_id") or "")
    except (TypeError, ValueError):
        return -math.inf, str(record.get("_path") or record.get("run_id") or "")


def _one_per_run_id(records: list[dict[str, Any]], warn: Callable[[str], Any]) -> list[dict[str, Any]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_id.setdefault(rec["run_id"], []).append(rec)
    kept = {run_id: max(recs, key=created_key) for run_id, recs in by_id.items()}
    dropped = [rec for rec in records if kept[rec["run_id"]] is not rec]
    if dropped:
        ids = sorted({rec["run_id"] for rec in dropped})
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        noun = "record" if len(dropped) == 1 else "records"
        warn(f"dropped {len(dropped)} duplicate {noun} (a run id read from more than one file; kept the "
             f"newest by created): {shown}")
    return [rec for rec in records if kept[rec["run_id"]] is rec]


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _python_warning(message: str) -> None:
    warnings.warn(message, stacklevel=3)
