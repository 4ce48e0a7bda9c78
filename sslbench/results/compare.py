"""``sslbench compare``: the comparison table, then published numbers, plots, a baseline written, the gate.

The command (:mod:`sslbench.commands.compare`) only parses options into :class:`CompareOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SSLBenchError
from .gate import (
    DEFAULT_HARDWARE_CLASS,
    compare_to_baseline,
    gate_table,
    load_baseline,
    parse_rules,
    write_baseline,
)
from .plots import plot_curves
from .records import load_records
from .reference import load_references, reference_table
from .render import render_table
from .table import Table, comparison_table


@dataclass
class CompareOptions:
    """Everything ``sslbench compare`` takes (see :func:`run_compare`)."""

    paths: tuple[str, ...] = ()
    fmt: str = "rich"
    metrics: tuple[str, ...] = ()
    ci: bool = False
    reference: str | None = None
    baseline: str | None = None
    fails: tuple[str, ...] = ()
    write_baseline: str | None = None
    hardware_class: str = DEFAULT_HARDWARE_CLASS
    plot: str | None = None


def run_compare(opts: CompareOptions, echo: Callable[[str], Any] = print) -> int:
    """The ``compare`` command: table, then reference / plots / baseline written / gate.

    Every input is checked before anything is printed (bad input raises SSLBenchError, exit
    2). Returns 1 when the gate fails (a regression, or a not-comparable entry a rule
    covers), else 0.
    """
    rules = parse_rules(opts.fails)
    if rules and not opts.baseline:
        raise SSLBenchError("--fail needs --baseline FILE (the numbers to compare against)")
    baseline = load_baseline(opts.baseline) if opts.baseline else None
    refs = None
    if opts.reference is not None:
        refs = load_references(opts.reference)
    paths = opts.paths or ("results/runs",)
    records = load_records([Path(p) for p in paths])
    if not records:
        raise SSLBenchError(f"No run records found under {', '.join(paths)}")
    report = compare_to_baseline(records, baseline, rules) if baseline is not None else None

    def show(table: Table, title: str) -> None:
        text = render_table(table, opts.fmt, title=title)
        if text is not None:
            echo(text)

    show(comparison_table(records, list(opts.metrics) or None, ci=opts.ci), "sslbench compare")
    if refs is not None:
        show(reference_table(records, refs, ci=opts.ci), "reproduced vs published")
    if opts.plot:
        pngs = plot_curves(records, opts.plot)
        if not pngs:
            echo("plot: no few-shot (acc@nN, @kN, @pN) or noisy-label (acc@symR, @asymR) metrics to plot")
        for png in pngs:
            echo(f"plot: {png}")
    if opts.write_baseline:
        path = write_baseline(records, opts.write_baseline, opts.hardware_class)
        written = load_baseline(path)["entries"]
        dirty = sum(bool(e.get("git_dirty")) for e in written)
        echo(f"baseline: wrote {len(written)} entries ({opts.hardware_class}) to {path}"
             + (f"; {dirty} come from runs of a dirty working tree" if dirty else ""))
    if report is None:
        return 0
    show(gate_table(report, only_covered=bool(rules)), "vs baseline")
    if not rules:
        return 0
    failures = report.failures
    for f in failures:
        echo(f.message())
    covered = [f for f in report.findings if f.covered]
    if failures:
        n_reg = sum(f.status == "regression" for f in failures)
        echo(f"gate failed: {n_reg} regression(s), {len(failures) - n_reg} not comparable, "
             f"{len(covered)} baseline entries covered by {', '.join(opts.fails)}")
        return 1
    noisy = sum(f.status == "within noise" for f in covered)
    echo(f"gate passed: {len(covered)} baseline entries checked against {', '.join(opts.fails)}"
         + (f" ({noisy} beyond a threshold but within the seed spread)" if noisy else ""))
    return 0
