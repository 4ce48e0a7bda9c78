"""One point of a sweep, the same function wherever it runs: a local subprocess, a SLURM array task (submitit),
a Ray task.

:func:`run_point` runs the point's ``sslbench run ... --resume-if-any --quiet`` command line through the CLI in
this process (so a point is exactly an ordinary run: config resolution, preflight, run lock, Ctrl-C/SIGTERM ->
checkpoint and an ``interrupted`` record), then finds the record it wrote in ``--out`` and returns the
:class:`~sslbench.sweep.skip.Outcome` as a dict. ``python -m sslbench.sweep.point SPEC_JSON`` does the same and
prints that dict after :data:`RESULT_MARK` (the local executor reads it from the point's log).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_MARK = "SSLBENCH_SWEEP_POINT "


@dataclass
class PointSpec:
    """Everything a point's process needs; plain data, so that submitit and Ray can pickle it."""

    index: int  # 1-based position in the grid
    label: str
    argv: list[str]  # sslbench's arguments: [--plugins D ...] run METHOD --suite S --seed N --set ... --out OUT ...
    out: str  # absolute --out
    key: list[Any]  # skip.PointKey: method, method version, suite, config hash, seed
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of a local point's process

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PointSpec:
        return cls(**json.loads(text))

    @property
    def command(self) -> str:
        """The equivalent shell command, for --dry-run and the logs."""
        import shlex

        return "sslbench " + " ".join(shlex.quote(a) for a in self.argv)


class _LastLine:
    """A stderr wrapper that keeps the last non-empty line written (the CLI's one-line error)."""

    def __init__(self, stream: Any):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> int:
        lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
        if lines:
            self.last = lines[-1]
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _run_cli(argv: list[str]) -> int:
    import click

    from ..cli import cli

    try:
        cli.main(args=list(argv), prog_name="sslbench", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (KeyboardInterrupt, click.exceptions.Abort):
        return 130
    except click.exceptions.ClickException as e:
        e.show()
        return e.exit_code
    return 0


def run_point(spec: PointSpec | dict[str, Any]) -> dict[str, Any]:
    """Run one point in this process; returns its outcome (status, record, exit code, error) as a dict."""
    from .skip import outcome_after, point_records

    if isinstance(spec, dict):
        spec = PointSpec(**spec)
    if spec.threads:
        import torch

        torch.set_num_threads(int(spec.threads))
    out, key = Path(spec.out), tuple(spec.key)
    before = set(point_records(out, key))
    tee = _LastLine(sys.stderr)
    sys.stderr = tee
    try:
        code = _run_cli(spec.argv)
    finally:
        sys.stderr = tee.stream
    return outcome_after(out, key, before, code, tee.last or None).to_dict()


def main() -> None:
    spec = PointSpec.from_json(sys.argv[1])
    result = run_point(spec)
    sys.stderr.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)
    sys.exit(result["exit_code"] if isinstance(result["exit_code"], int) else 1)


if __name__ == "__main__":
    main()

__all__ = ["PointSpec", "run_point", "RESULT_MARK"]
