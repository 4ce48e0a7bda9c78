"""The ``sslbench`` command line: a thin click group over the library."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import SSLBenchError


class _Group(click.Group):
    """Bad input -> one red line on stderr and exit 2; never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SSLBenchError as e:
            _error(str(e))
            sys.exit(e.exit_code)


def _error(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {msg}", highlight=False, markup=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugins", "plugins", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of plugin files (*.py methods/protocols, *.yaml suites). Also SSLBENCH_PLUGINS.")
@click.version_option(package_name="sslbench")
def cli(plugins: tuple[str, ...]) -> None:
    """sslbench: benchmark and reproduce self-supervised representation learning.

    \b
    sslbench list methods 'sim*'
    sslbench run simclr                       # embedded default suite, offline, CPU
    sslbench run simclr --suite mnist-linear --seed 0 --seed 1 --set pretrain.epochs=5
    sslbench compare results/runs --format md
    """
    from .plugins import set_plugin_dirs

    set_plugin_dirs(plugins)


@cli.command("list")
@click.argument("kind", type=click.Choice(["methods", "suites", "protocols"]))
@click.argument("pattern", required=False)
def list_cmd(kind: str, pattern: str | None) -> None:
    """List registered methods, suites or protocols (PATTERN takes wildcards, e.g. 'sim*')."""
    from .listing import list_entries

    list_entries(kind, pattern)


@cli.command("run")
@click.argument("method")
@click.option("--suite", default="digits-linear", show_default=True, help="Suite name or path to a suite YAML.")
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed(s); default: the suite's seeds. Repeatable.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. pretrain.epochs=5, method.temperature=0.2, linear.epochs=50.")
@click.option("--out", "out_dir", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for run records (one JSON per run).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data root (default: $SSLBENCH_DATA, else ~/.cache/sslbench/data).")
@click.option("--download", is_flag=True, help="Download missing data sets from their official sources.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of the same method, suite, config and seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(method: str, suite: str, seeds: tuple[int, ...], sets: tuple[str, ...], out_dir: str,
            data_dir: str | None, download: bool, resume: bool, quiet: bool) -> None:
    """Pretrain METHOD (e.g. simclr) on a suite, run its protocols, write one record per seed."""
    from .run_command import run_method

    code = run_method(method, suite, seeds, sets, Path(out_dir), data_dir, download, resume, quiet)
    sys.exit(code)


@cli.command("compare")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", default="rich", show_default=True,
              type=click.Choice(["rich", "md", "csv", "html"]), help="Output format.")
@click.option("--metric", "metrics", multiple=True, help="Only these metrics (e.g. linear.top1). Repeatable.")
@click.option("--ci", is_flag=True, help="Show the 95% interval of each mean.")
def compare_cmd(paths: tuple[str, ...], fmt: str, metrics: tuple[str, ...], ci: bool) -> None:
    """Compare run records (files or folders; default results/runs): mean ± std (n) over seeds."""
    from .compare import comparison_table
    from .records import load_records
    from .render import render_table

    records = load_records([Path(p) for p in (paths or ("results/runs",))])
    if not records:
        raise SSLBenchError(f"No run records found under {', '.join(paths or ('results/runs',))}")
    table = comparison_table(records, list(metrics) or None, ci=ci)
    text = render_table(table, fmt, title="sslbench compare")
    if text is not None:
        click.echo(text)


def main() -> None:
    cli(prog_name="sslbench")


if __name__ == "__main__":
    main()
