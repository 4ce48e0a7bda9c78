"""The row type of the hardening tables (issue 11): one row per way a user or an attacker breaks sslbench.

Each ``tests/test_hardening_*.py`` keeps its cases as a list of :class:`Case` and runs them with
:func:`check_case` (parametrised by ``Case.id``), so the table is the documentation:

    Case("epochs-negative", ("run", "simclr", "--set", "pretrain.epochs=-1", "--out", "{tmp}/out"),
         2, "pretrain.epochs", absent=("out/*.json",))

``{tmp}`` in the arguments is the case's own temporary folder; ``setup(tmp)`` writes the hostile
inputs there first; after the run, every glob in ``absent`` must match nothing under ``tmp`` and
every glob in ``present`` something. Bad input must come out as one line on stderr (no traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from conftest import run_cli


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # sslbench CLI arguments; "{tmp}" is replaced by the case's folder
    exit_code: int
    message: str  # a fragment the error line must contain (case-sensitive)
    setup: Callable[[Path], None] | None = None
    absent: tuple[str, ...] = ()  # globs (relative to tmp) that must match nothing afterwards
    present: tuple[str, ...] = ()  # globs that must match something afterwards
    one_line: bool = True  # stderr holds exactly one non-empty line
    env: dict = field(default_factory=dict)
    cwd: str | None = None  # relative to tmp; default: tmp
    in_process: bool = False  # run through click's CliRunner (no interpreter start-up: for cases without plugins)

    def __str__(self) -> str:
        return self.id


def _in_process(argv: list[str], cwd: Path, env: dict) -> SimpleNamespace:
    """The CLI through click's CliRunner in this process (the same exit codes and stderr as a subprocess)."""
    from click.testing import CliRunner

    from sslbench.cli import cli

    old = Path.cwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(cli, argv, env=env or None, catch_exceptions=True)
    finally:
        os.chdir(old)
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "Traceback (in process): " + repr(res.exception)
    return SimpleNamespace(returncode=res.exit_code, stderr=stderr, stdout=res.stdout)


def check_case(case: Case, tmp: Path) -> None:
    """Run the case's command and assert its exit code, message and what is on disk afterwards."""
    if case.setup is not None:
        case.setup(tmp)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    cwd = tmp / case.cwd if case.cwd else tmp
    env = {k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()}
    proc = _in_process(argv, cwd, env) if case.in_process else run_cli(*argv, cwd=cwd, env=env)
    where = f"[{case.id}] exit {proc.returncode}\nstderr: {proc.stderr}\nstdout: {proc.stdout[-2000:]}"
    assert proc.returncode == case.exit_code, where
    assert "Traceback" not in proc.stderr, where
    assert case.message in proc.stderr, where
    if case.one_line:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, where
    for pattern in case.absent:
        found = sorted(str(p.relative_to(tmp)) for p in tmp.glob(pattern))
        assert not found, f"[{case.id}] must not exist: {found}\n{where}"
    for pattern in case.present:
        assert list(tmp.glob(pattern)), f"[{case.id}] missing: {pattern}\n{where}"
