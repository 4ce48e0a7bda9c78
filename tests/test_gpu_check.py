"""benchmarks/gpu_check.py (issue 14): its plan covers every registered method, and on a machine without CUDA
it stops with one line instead of running anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslbench.plugins import METHODS, MODALITIES, get_modality

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _plan(*args: str) -> list[tuple[str, str, str]]:
    """The script's --dry-run lines, from its plan() in this process (the registries are already loaded)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    only = list(args[1::2]) if args else None  # ("--only", name, ...)
    return [(m, s, f"epochs={e:g}") for m, s, e in mod.plan(only)]


def test_the_plan_runs_every_method_and_variant_on_its_modalities_check_suite():
    rows = _plan()
    planned = {m for m, _, _ in rows}
    for name in METHODS.names():
        cls = METHODS.get(name)
        for v in getattr(cls, "variants", None) or {}:
            assert f"{name}.{v}" in planned
        if name != "baseline":
            assert name in planned
    suites = {get_modality(m).check_suite for m in MODALITIES.names()}
    assert {s for _, s, _ in rows} == suites and None not in suites
    assert ("simclr", "digits-linear", "epochs=1") in rows
    assert all(e == "epochs=0" for m, _, e in rows if m.startswith("baseline."))  # floors train nothing
    assert {m for m, _, _ in _plan("--only", "moco")} == {"moco", "moco.v1", "moco.v2"}


def test_without_cuda_it_is_one_line_and_exit_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU check itself runs here")
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "o"), "--only", "simclr"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "no CUDA device" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
