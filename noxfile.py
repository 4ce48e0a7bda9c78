"""nox sessions: thin wrappers over one install helper (after nox's and urllib3's own noxfiles)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = ("torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0")
SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "data")


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install(*TORCH)
    session.install("-e", f".[{extras}]")
    session.env.setdefault("SSLBENCH_DATA", os.environ.get("SSLBENCH_DATA", SHARED_DATA))


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on real data (MNIST, CIFAR-10, digits) from $SSLBENCH_DATA."""
    _install(session)
    session.run("pytest", "-q", *session.posargs)


@nox.session
def regression(session: nox.Session) -> None:
    """Run the CPU-sized suites of sslbench/regression.py and gate them against results/baselines/ (~5 min)."""
    _install(session)
    session.run("python", "-m", "sslbench.regression", *session.posargs)


@nox.session
def gpu(session: nox.Session) -> None:
    """The GPU check (benchmarks/gpu_check.py): every method a few steps on CUDA in bf16 autocast, 2-rank data
    parallel where two GPUs exist, the SimCLR / MoCo profile against the analytic memory; records and a summary
    under results/gpu-check. Extra arguments go to the script (e.g. -- --only simclr)."""
    _install(session)
    session.run("python", "benchmarks/gpu_check.py", "--data-dir", session.env["SSLBENCH_DATA"], *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the built-in methods, the tests and the benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "sslbench", "methods", "tests", "noxfile.py")
