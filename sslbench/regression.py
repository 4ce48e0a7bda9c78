"""The regression gate's plan: which CPU-sized suites and methods it runs, and with what rules.

``nox -s regression`` (and ``.ci/run``) call :func:`main`: run every entry of :data:`PLAN` into
one folder, then ``sslbench compare --baseline results/baselines/cpu-2core.json --fail ...``.
``--write`` refreshes the baseline from such a folder instead (after an intended change; commit
the new file with the reason). Accuracy only: throughput on a shared CI machine is noise, and
speed is tracked by ``sslbench profile`` and ``benchmarks/`` instead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .registry import python_module_command

# (method, suite, seeds): about 2 to 5 minutes on 2 CPU cores in all
PLAN: list[tuple[str, str, tuple[int, ...]]] = [
    ("simclr", "digits-linear", (0, 1)),
    ("moco.v2", "digits-linear", (0, 1)),
    ("instdisc", "digits-linear", (0,)),
    ("simclr", "digits-fewshot", (0,)),
    ("simclr", "mnist-linear-small", (0,)),
    ("dgi", "cora-dgi", (0,)),  # graphs: ~30 s, logistic regression x 50 and the linear probe on Cora
]
# Thresholds in accuracy points. On the machine that wrote the baseline the runs are bitwise
# identical (+0.00 everywhere); on another CPU, float-order differences act like a new seed, and
# the seed spread measured here is up to 1.7 points (simclr digits-linear linear.top1, seeds 0/1),
# more for few-shot points. Single-seed entries get no spread allowance, hence these margins.
RULES = ("top1:2.0", "*.acc@*:4.0")
BASELINE = Path("results/baselines/cpu-2core.json")


def run_plan(out: Path) -> None:
    for method, suite, seeds in PLAN:
        seed_args = [a for s in seeds for a in ("--seed", str(s))]
        # `python -m sslbench` without the working directory first on sys.path: a stray rich.py there is not run
        cmd = [*python_module_command("sslbench"), "run", method, "--suite", suite, "--quiet", "--out", str(out),
               *seed_args]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"ran {method} on {suite} seeds {list(seeds)} in {time.perf_counter() - t0:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/runs/regression"))
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--write", action="store_true", help="write the baseline from the runs instead of checking")
    p.add_argument("--skip-runs", action="store_true", help="reuse the records already in --out")
    args = p.parse_args(argv)
    if not args.skip_runs:
        if args.out.exists():
            for f in args.out.glob("*.json"):
                f.unlink()
        run_plan(args.out)
    cmd = [*python_module_command("sslbench"), "compare", str(args.out), "--format", "md"]
    if args.write:
        cmd += ["--write-baseline", str(args.baseline), "--hardware-class", "cpu-2core"]
    else:
        cmd += ["--baseline", str(args.baseline), *[a for r in RULES for a in ("--fail", r)]]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
