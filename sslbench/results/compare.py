"""``sslbench compare``: the comparison table, then published numbers, plots, a baseline written, the gate.

The command (:mod:`sslbench.commands.compare`) only parses options into :class:`CompareOptions`.
The report goes to ``echo`` (stdout); warnings about skipped record files and the reasons a gate
failed go to ``err`` (stderr), so ``--format md|csv|html > report`` stays a clean document.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SSLBenchError
from .gate import (
    DEFAULT_HARDWARE_CLASS,
    GateReport,
    compare_to_baseline,
    gate_table,
    load_baseline,
    parse_rules,
    write_baseline,
)
from .plots import plot_curves
from .records import load_records
from .reference import load_references, reference_table
from .render import html_document, html_figure, html_messages, render_table
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


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def run_compare(
    opts: CompareOptions, echo: Callable[[str], Any] = print, err: Callable[[str], Any] = _stderr
) -> int:
    """The ``compare`` command: table, then reference / plots / baseline written / gate.

    Every input is checked before anything is printed (bad input raises SSLBenchError, exit
    2; a record of another schema version is bad input). Record files that cannot be read or
    are not JSON are skipped with a ``warning:`` line on ``err``, as is the count of duplicate
    run ids dropped. Returns 1 when the gate fails (a regression, a not-comparable entry a rule
    covers, or a baselined run that is not ok; each named on ``err``), else 0.

    ``echo`` gets the report: the tables and message lines, or with ``fmt`` "html" one complete
    HTML document holding them and the plots.
    """
    rules = parse_rules(opts.fails)
    if rules and not opts.baseline:
        raise SSLBenchError("--fail needs --baseline FILE (the numbers to compare against)")
    baseline = load_baseline(opts.baseline) if opts.baseline else None
    refs = None
    if opts.reference is not None:
        refs = load_references(opts.reference)
    paths = opts.paths or ("results/runs",)
    records = load_records([Path(p) for p in paths], warn=lambda m: err(f"warning: {m}"))
    if not records:
        raise SSLBenchError(f"No run records found under {', '.join(paths)}")
    report = compare_to_baseline(records, baseline, rules) if baseline is not None else None

    html = opts.fmt == "html"
    parts: list[str] = []  # the HTML document's body

    def show(table: Table, title: str) -> None:
        text = render_table(table, opts.fmt, title=title)
        if text is None:
            return
        if html:
            parts.append(text)
        else:
            echo(text)

    def say(line: str) -> None:
        if html:
            parts.append(html_messages([line]))
        else:
            echo(line)

    def report_all() -> int:
        show(comparison_table(records, list(opts.metrics) or None, ci=opts.ci), "sslbench compare")
        if refs is not None:
            show(reference_table(records, refs, ci=opts.ci), "reproduced vs published")
        if opts.plot:
            pngs = plot_curves(records, opts.plot)
            if not pngs:
                say("plot: no few-shot (acc@nN, @kN, @pN) or noisy-label (acc@symR, @asymR) metrics to plot")
            for png in pngs:
                if html:
                    parts.append(html_figure(png))
                else:
                    echo(f"plot: {png}")
        if opts.write_baseline:
            path = write_baseline(records, opts.write_baseline, opts.hardware_class)
            written = load_baseline(path)["entries"]
            dirty = sum(bool(e.get("git_dirty")) for e in written)
            say(f"baseline: wrote {len(written)} entries ({opts.hardware_class}) to {path}"
                + (f"; {dirty} come from runs of a dirty working tree" if dirty else ""))
        if report is None:
            return 0
        show(gate_table(report, only_covered=bool(rules)), "vs baseline")
        if not rules:
            return 0
        return _verdict(report, opts.fails, say, err)

    code = report_all()
    if html:
        echo(html_document(parts, "sslbench compare").rstrip("\n"))
    return code


def _verdict(report: GateReport, fails: tuple[str, ...], say: Callable[[str], Any], err: Callable[[str], Any]) -> int:
    """The gate's verdict: failures (one line each) and the summary on ``err`` with 1, else the pass line."""
    failures = report.failures
    covered = [f for f in report.findings if f.covered and f.status != "not ok"]
    if failures:
        for f in failures:
            err(f.message())
        n_reg = sum(f.status == "regression" for f in failures)
        n_bad = sum(f.status == "not ok" for f in failures)
        runs = f", {n_bad} run(s) not ok" if n_bad else ""
        err(f"gate failed: {n_reg} regression(s), {len(failures) - n_reg - n_bad} not comparable{runs}, "
            f"{len(covered)} baseline entries covered by {', '.join(fails)}")
        return 1
    noisy = sum(f.status == "within noise" for f in covered)
    say(f"gate passed: {len(covered)} baseline entries checked against {', '.join(fails)}"
        + (f" ({noisy} beyond a threshold but within the seed spread)" if noisy else ""))
    return 0
