"""Shared fixtures: the real data root (../shared/data or $SSLBENCH_DATA) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSLBENCH_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (SHARED_DATA / "image").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SSLBENCH_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _data_env(monkeypatch):
    monkeypatch.setenv("SSLBENCH_DATA", str(SHARED_DATA))


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m sslbench ARGS`` in a subprocess; returns CompletedProcess (text)."""
    full_env = {**os.environ, "SSLBENCH_DATA": str(SHARED_DATA), "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sslbench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
