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
      "error": null | "one line"
    }
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
    return write_json(Path(out_dir) / f"{record.run_id}.json", record.to_dict())


def load_records(paths: list[Path] | tuple[Path, ...]) -> list[dict[str, Any]]:
    """Load every record JSON under the given files or folders (recursively).

    Skips temporary files and files that are not sslbench records (no ``schema_version``
    or ``run_id``); a corrupt JSON file raises with its path.
    """
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.json") if not q.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            raise SSLBenchError(f"No such record file or folder: '{p}'")
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise SSLBenchError(f"Corrupt record '{f}': {e}") from e
        if isinstance(data, dict) and "schema_version" in data and "run_id" in data:
            data["_path"] = str(f)
            out.append(data)
    return out
