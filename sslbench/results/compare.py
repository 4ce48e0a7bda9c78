"""``sslbench compare``: the comparison table, then published numbers, plots, a baseline written, the gate.

The command (:mod:`sslbench.commands.compare`) only parses options into :class:`CompareOptions`.
The report goes to ``echo`` (stdout), or with ``--out FILE`` into that file (written atomically at the
end; checked before any work); warnings about skipped record files and the reasons a gate failed go to
``err`` (stderr), so ``--format md|csv|html > report`` stays a clean document. The HTML report
(:mod:`.html_report`) carries each number's provenance and embeds the few-shot / noisy-label plots.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
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
from .html_report import table_html
from .plots import plot_curves
from .records import load_records
from .reference import load_references, reference_table
from .render import html_document, html_figure, html_messages, render_table
from .table import Table, comparison_table


@dataclass
class CompareOptions:
    """Everything ``sslbench compare`` takes (see :func:`run_compare`)."""

    paths: tuple[str, ...] = ()
    fmt: str | None = None  # None: from the suffix of ``out`` (.html, .md, .csv), else "rich"
    metrics: tuple[str, ...] = ()
    ci: bool = False
    reference: str | None = None
    baseline: str | None = None
    fails: tuple[str, ...] = ()
    write_baseline: str | None = None
    hardware_class: str = DEFAULT_HARDWARE_CLASS
    plot: str | None = None
    out: str | None = None


OUT_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".csv": "csv"}


def resolve_format(fmt: str | None, out: str | None) -> str:
    """The output format: ``fmt``, else the one ``out``'s suffix names, else "rich" (not with ``out``)."""
    if fmt is None and out:
        fmt = OUT_FORMATS.get(Path(out).suffix.lower())
        if fmt is None:
            raise SSLBenchError(f"--out '{out}': name a --format (md, csv or html) or end the file name in "
                                f"{', '.join(OUT_FORMATS)}")
    fmt = fmt or "rich"
    if out and fmt == "rich":
        raise SSLBenchError("--out needs --format md, csv or html (the rich table is for the terminal)")
    return fmt


def check_out_path(out: str) -> Path:
    """``out`` as a file that can be written (its missing folders are made when it is written); one line
    naming it and the reason otherwise: a folder, a parent that is a file, a folder that cannot be written."""
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        raise SSLBenchError(f"--out '{out}' is a folder; give a file path such as {path / 'report.html'}")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SSLBenchError(f"--out '{out}': '{parent}' is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SSLBenchError(f"--out '{out}': cannot write in '{parent}' ({e.strerror or e})") from None
    return path


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
    HTML document holding them, the provenance of each number and the plots (of ``--plot``, else drawn
    in a temporary folder). With ``opts.out`` the report goes into that file instead (atomically, once
    it is complete, also when the gate fails) and ``echo`` gets one line naming it.
    """
    out = check_out_path(opts.out) if opts.out else None
    fmt = resolve_format(opts.fmt, opts.out)
    chunks: list[str] = []  # the report, when it goes to --out
    emit: Callable[[str], Any] = chunks.append if out is not None else echo
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

    html = fmt == "html"
    parts: list[str] = []  # the HTML document's body
    if html:
        n_ok = sum(r.get("status", "ok") == "ok" for r in records)
        parts.append(html_messages([f"{len(records)} records ({n_ok} ok) from {', '.join(paths)}; hover a number "
                                    "for its provenance, click the 'runs' beside it for each run"]))

    def show(table: Table, title: str, published: Table | None = None) -> None:
        if html:
            parts.append(table_html(table, title, records, published.cells if published is not None else None))
            return
        text = render_table(table, fmt, title=title)
        if text is not None:
            emit(text)

    def say(line: str) -> None:
        if html:
            parts.append(html_messages([line]))
        else:
            emit(line)

    def report_all() -> int:
        ref_table = reference_table(records, refs, ci=opts.ci) if refs is not None else None
        show(comparison_table(records, list(opts.metrics) or None, ci=opts.ci), "sslbench compare", ref_table)
        if ref_table is not None:
            show(ref_table, "reproduced vs published")
        if opts.plot or html:
            # the HTML report embeds the curves even without --plot (drawn in a temporary folder)
            folder = contextlib.nullcontext(opts.plot) if opts.plot else tempfile.TemporaryDirectory(prefix="sslbench-")
            with folder as plot_dir:
                pngs = plot_curves(records, plot_dir)
                if not pngs and opts.plot:
                    say("plot: no few-shot (acc@nN, @kN, @pN) or noisy-label (acc@symR, @asymR) metrics to plot")
                for png in pngs:
                    if html:
                        parts.append(html_figure(png, caption=None if opts.plot else png.stem))
                    else:
                        emit(f"plot: {png}")
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
        emit(html_document(parts, "sslbench compare").rstrip("\n"))
    if out is not None:
        atomic_write_text(out, "".join(chunk + "\n" for chunk in chunks))
        echo(f"report: wrote {out} ({fmt})")
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
