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


@cli.command("profile")
@click.argument("method")
@click.option("--negatives", default="256,4096,65536", show_default=True, metavar="LIST",
              help="Comma-separated values of the method's negatives key: batch sizes for simclr, "
                   "queue sizes for moco, sampled negatives for instdisc.")
@click.option("--suite", default="cifar10-linear-small", show_default=True, help="Suite name or path to a suite YAML.")
@click.option("--batch-size", type=int, default=None,
              help="Fixed batch for queue/bank methods (moco, instdisc); default: the suite's.")
@click.option("--steps", type=int, default=10, show_default=True, help="Timed training steps per point.")
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed warm-up steps per point.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (as in run).")
@click.option("--out", "out_dir", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the records (one JSON per point).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="PNG of throughput and memory vs negatives [default: <out>/profile-<method>-<suite>.png].")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps [default: the suite's, auto].")
@click.option("--memory-limit-mb", type=float, default=None,
              help="Let each point's steps use at most this much more memory (RLIMIT_AS on CPU, a memory "
                   "fraction on CUDA); a point beyond it is recorded as out of memory.")
@click.option("--exact-heap", is_flag=True,
              help="CPU: run the points with MALLOC_MMAP_THRESHOLD_=131072 so that peak RSS follows live "
                   "allocations (reproducible memory slopes; slower steps).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data root (default: $SSLBENCH_DATA, else ~/.cache/sslbench/data).")
def profile_cmd(method: str, negatives: str, suite: str, batch_size: int | None, steps: int, warmup: int,
                sets: tuple[str, ...], out_dir: str, plot: str | None, device: str | None,
                memory_limit_mb: float | None, exact_heap: bool, data_dir: str | None) -> None:
    """Throughput and memory of METHOD against its number of negatives, one fresh process per point.

    \b
    Per point: warm up, time steps on the suite's real data, report median samples/s and
    step time, peak memory (CUDA max allocated; CPU peak RSS and its growth over the RSS
    before the first step) and the method's analytic floor of the negatives' memory; the
    table compares the measured memory slope with the analytic one. Out-of-memory points
    are recorded and the sweep goes on. Writes a table, a PNG and records for `compare`.

    \b
    sslbench profile simclr --negatives 64,128,256
    sslbench profile moco.v2 --negatives 256,4096,65536 --steps 5
    """
    from .protocols.profile import ProfileOptions, profile_method

    opts = ProfileOptions(suite=suite, negatives=negatives, batch_size=batch_size, steps=steps, warmup=warmup,
                          sets=sets, out_dir=Path(out_dir), plot=Path(plot) if plot else None, device=device,
                          memory_limit_mb=memory_limit_mb, exact_heap=exact_heap, data_dir=data_dir)
    sys.exit(profile_method(method, opts))


@cli.command("compare")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", default="rich", show_default=True,
              type=click.Choice(["rich", "md", "csv", "html"]), help="Output format.")
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
def compare_cmd(paths: tuple[str, ...], fmt: str, metrics: tuple[str, ...], ci: bool, reference: str | None,
                baseline: str | None, fails: tuple[str, ...], write_baseline: str | None, hardware_class: str,
                plot: str | None) -> None:
    """Compare run records (files or folders; default results/runs): mean ± std (n) over seeds.

    \b
    Exit status: 0 ok, 1 the gate failed (regression or not comparable), 2 bad input.
    \b
    sslbench compare results/runs --ci --reference
    sslbench compare results/runs --write-baseline results/baselines/cpu-2core.json
    sslbench compare results/runs --baseline results/baselines/cpu-2core.json --fail top1:1.0
    sslbench compare results/runs --plot results/plots
    """
    from .compare import CompareOptions, run_compare

    opts = CompareOptions(paths=paths, fmt=fmt, metrics=metrics, ci=ci, reference=reference, baseline=baseline,
                          fails=fails, write_baseline=write_baseline, hardware_class=hardware_class, plot=plot)
    sys.exit(run_compare(opts, echo=click.echo))


def main() -> None:
    cli(prog_name="sslbench")


if __name__ == "__main__":
    main()
