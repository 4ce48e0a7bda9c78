"""``sslbench compare``: tables, references, plots and the regression gate over run records (sslbench.results)."""

from __future__ import annotations

import sys

import click


@click.command("compare")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", default=None, type=click.Choice(["rich", "md", "csv", "html"]),
              help="Output format [default: rich; with --out, the one its suffix names].")
@click.option("--metric", "metrics", multiple=True, help="Only these metrics (e.g. linear.top1). Repeatable.")
@click.option("--ci", is_flag=True, help="Show the 95% interval of each mean.")
@click.option("--reference", "reference", is_flag=False, flag_value="results/reference", default=None,
              metavar="[PATH]", help="Put published numbers beside the reproduced ones: a folder of reference "
              "YAML, a file, or file.yaml#anchor [bare flag: results/reference]. Give PATHS before it.")
@click.option("--baseline", "baseline", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Compare with a baseline file (JSON or YAML, see --write-baseline).")
@click.option("--fail", "fails", multiple=True, metavar="RULE",
              help="With --baseline: exit 1 on a regression. METRIC:THRESHOLD, e.g. top1:1.0 (absolute points) "
                   "or samples_per_s:10% (relative). Repeatable.")
@click.option("--write-baseline", "write_baseline", default=None, type=click.Path(dir_okay=False),
              metavar="FILE", help="Write the records' numbers and provenance as a baseline (.json or .yaml).")
@click.option("--hardware-class", default="cpu-2core", show_default=True, metavar="NAME",
              help="Hardware class stored by --write-baseline.")
@click.option("--plot", "plot", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Write PNGs of few-shot (accuracy vs N) and noisy-label (accuracy vs noise rate) curves.")
@click.option("--out", "out", default=None, metavar="FILE",
              help="Write the report (md, csv or html) to FILE, atomically, instead of stdout.")
def compare_cmd(paths: tuple[str, ...], fmt: str | None, metrics: tuple[str, ...], ci: bool, reference: str | None,
                baseline: str | None, fails: tuple[str, ...], write_baseline: str | None, hardware_class: str,
                plot: str | None, out: str | None) -> None:
    """Compare run records (files or folders; default results/runs): mean ± std (n) over seeds.

    \b
    Exit status: 0 ok, 1 the gate failed (a regression, not comparable, or a baselined run that is not
    ok), 2 bad input (a record of another schema version too). Unreadable or torn record files are
    skipped with a warning; one measurement recorded twice (same method, suite, config, seed) counts once.
    --format html writes one standalone HTML page that opens offline: the tables, each number's
    provenance (hover it, or click the "runs" beside it: seeds, per-seed values, git sha, config hash,
    hardware, data fingerprint), the published numbers with --reference, and the few-shot / noisy-label
    curves.
    \b
    sslbench compare results/runs --ci --reference
    sslbench compare results/runs --write-baseline results/baselines/cpu-2core.json
    sslbench compare results/runs --baseline results/baselines/cpu-2core.json --fail top1:1.0
    sslbench compare results/runs --plot results/plots
    sslbench compare results/runs --ci --reference --format html --out report.html
    """
    from ..results.compare import CompareOptions, run_compare

    opts = CompareOptions(paths=paths, fmt=fmt, metrics=metrics, ci=ci, reference=reference, baseline=baseline,
                          fails=fails, write_baseline=write_baseline, hardware_class=hardware_class, plot=plot,
                          out=out)
    sys.exit(run_compare(opts, echo=click.echo, err=lambda line: click.echo(line, err=True)))
