"""The regression gate on real runs against the committed baseline (results/baselines/cpu-2core.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_cli

BASELINE = REPO / "results" / "baselines" / "cpu-2core.json"
SUITE = ("--suite", "mnist-linear-small", "--seed", "0", "--quiet")


def _gate(out: Path):
    return run_cli("compare", str(out), "--baseline", str(BASELINE), "--fail", "top1:1.0", "--format", "md")


@pytest.mark.slow
def test_gate_passes_unchanged_and_fails_degraded(tmp_path: Path):
    ok, bad = tmp_path / "unchanged", tmp_path / "degraded"
    p = run_cli("run", "simclr", *SUITE, "--out", str(ok))
    assert p.returncode == 0, p.stderr
    gate = _gate(ok)
    assert gate.returncode == 0, gate.stdout + gate.stderr

    # a tenth of the pretraining budget
    p = run_cli("run", "simclr", *SUITE, "--out", str(bad), "--set", "pretrain.epochs=0.2")
    assert p.returncode == 0, p.stderr
    gate = _gate(bad)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    text = gate.stdout + gate.stderr
    assert "regression" in text and "mnist-linear-small" in text and "linear.top1" in text
