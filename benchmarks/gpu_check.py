"""The GPU check (issue 14): what a session with a GPU runs in a few minutes and pastes into its note.

1. Every registered method (and variant) of every modality for one epoch of its modality's smallest real-data
   suite (``Modality.check_suite``: digits, Cora, SST-2 sentences, FSDD) on the device with the default precision
   (``pretrain.precision=auto``: bf16 autocast on CUDA), then the suite's protocols: one record each. Methods of
   modality ``any`` (the floors, SCL) run on every modality's suite; the floors with 0 epochs (nothing to train).
2. Data parallel on 2 ranks (``sslbench run simclr --nproc 2``) where two GPUs exist.
3. ``sslbench profile`` for SimCLR (batch sizes) and MoCo v2 (queue sizes) on CIFAR-10: throughput and peak GPU
   memory against the analytic estimate of the negatives' memory (the profile's own table).

A run refused as bad input before any work (exit 2: ``baseline.pixels`` on text, which has no raw-feature floor)
is listed as ``n/a``, not as a failure. Records go to ``<out>/runs`` (``sslbench compare <out>/runs``); a summary table is printed and written to
``<out>/gpu_check.json``. Exit 0 when every run ended ``ok``.

    python benchmarks/gpu_check.py --data-dir ../shared/data            # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --only simclr --skip-profile   # the same path on a CPU, smoke
    nox -s gpu
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = (("simclr", "256,512,1024,2048"), ("moco.v2", "4096,16384,65536"))


def plan(only: list[str] | None = None) -> list[tuple[str, str, float]]:
    """(method, suite, pretrain epochs) of every registered method x the check suites of its modalities."""
    from sslbench.plugins import METHODS, MODALITIES, get_modality

    suites = {m: get_modality(m).check_suite for m in MODALITIES.names() if get_modality(m).check_suite}
    rows = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        variants = [f"{name}.{v}" for v in (getattr(cls, "variants", None) or {})]
        names = variants if name == "baseline" else [name, *variants]  # bare baseline is baseline.random
        for full in names:
            if only and not any(full == o or full.startswith(o + ".") for o in only):
                continue
            for modality, suite in suites.items():
                if not get_modality(modality).runs_method(cls):
                    continue
                epochs = 0.0 if name == "baseline" else 1.0
                rows.append((full, suite, epochs))
    return rows


def sslbench(*args: str, env: dict | None = None, timeout: float = 1800) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sslbench", *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=timeout)
    tail = (res.stdout + res.stderr).strip().splitlines()
    return res.returncode, "\n".join(tail[-3:]), time.perf_counter() - t0


def newest_record(folder: Path, before: set[Path]) -> dict | None:
    new = sorted(set(folder.glob("*.json")) - before, key=lambda p: p.stat().st_mtime)
    return json.loads(new[-1].read_text()) if new else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/gpu-check", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-dir", default=os.environ.get("SSLBENCH_DATA"))
    ap.add_argument("--only", action="append", help="Only these methods (name or name.variant). Repeatable.")
    ap.add_argument("--skip-profile", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="Print the plan and exit.")
    a = ap.parse_args()
    rows = plan(a.only)
    if a.dry_run:
        for method, suite, epochs in rows:
            print(f"{method}\t{suite}\tepochs={epochs:g}")
        return 0
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {a.device}: no CUDA device here (torch {torch.__version__}); use --device cpu for "
              "the same path on the CPU", file=sys.stderr)
        return 2
    runs = a.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    common = ["--out", str(runs), "--quiet", "--seed", "0"] + (["--data-dir", a.data_dir] if a.data_dir else [])
    dev = ["--set", f"pretrain.device={a.device}", "--set", "pretrain.precision=auto"]
    summary, ok = [], True
    gpus = torch.cuda.device_count() if a.device.startswith("cuda") else 0
    jobs = [(m, s, e, []) for m, s, e in rows]
    if gpus >= 2:
        jobs.append(("simclr", "digits-linear", 1.0, ["--nproc", "2"]))
    for method, suite, epochs, extra in jobs:
        before = set(runs.glob("*.json"))
        code, tail, wall = sslbench("run", method, "--suite", suite, "--set", f"pretrain.epochs={epochs:g}", *dev,
                                    *common, *extra)
        rec = newest_record(runs, before) or {}
        timing, train = rec.get("timing", {}), rec.get("train", {})
        row = {"method": method, "suite": suite, "ranks": 2 if extra else 1, "exit": code,
               "status": rec.get("status", "no record"), "steps": train.get("steps"),
               "throughput": f"{timing.get('samples_per_s', 0):.0f} {timing.get('throughput_unit', '')}",
               "peak_mb": timing.get("peak_memory_mb"), "memory": timing.get("peak_memory_kind"),
               "wall_s": round(wall, 1),
               "metrics": {k: round(v["value"], 2) for k, v in (rec.get("metrics") or {}).items()}}
        if code == 2 and not rec:  # refused before any work: the combination does not exist (text has no raw floor)
            row["status"], row["error"] = "n/a", tail
        elif code != 0:
            row["error"] = tail
            ok = False
        summary.append(row)
        print(json.dumps(row), flush=True)
    profiles = []
    if not a.skip_profile:
        for method, points in PROFILES:
            code, tail, wall = sslbench("profile", method, "--negatives", points, "--steps", "5", "--device", a.device,
                                        "--out", str(a.out / "profile"), *(["--data-dir", a.data_dir] if a.data_dir
                                                                           else []), timeout=3600)
            profiles.append({"method": method, "negatives": points, "exit": code, "wall_s": round(wall, 1),
                             "tail": tail})
            print(f"profile {method} ({points}): exit {code}, {wall:.0f} s\n{tail}", flush=True)
            ok = ok and code == 0
    info = {"device": a.device, "gpus": gpus, "torch": torch.__version__,
            "gpu_name": torch.cuda.get_device_name(0) if gpus else None, "runs": summary, "profiles": profiles}
    (a.out / "gpu_check.json").write_text(json.dumps(info, indent=1))
    print(f"{sum(r['exit'] == 0 for r in summary)}/{len(summary)} runs ok, "
          f"{sum(r['status'] == 'n/a' for r in summary)} n/a; records in {runs}; "
          f"`sslbench compare {runs}` for the table")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
