"""The ``sslbench`` command line: a thin click group over the library."""

from __future__ import annotations

import sys

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
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(msg)}", highlight=False, markup=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugins", "plugins", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of plugin files (*.py methods/protocols, *.yaml suites). Also SSLBENCH_PLUGINS.")
@click.option("--allow-override", "overrides", multiple=True, metavar="NAME",
              help="Let a plugin replace the built-in NAME (a method, suite, protocol, modality, dataset or encoder; "
                   "KIND:NAME for one registry only, e.g. method:simclr). Repeatable. Also SSLBENCH_ALLOW_OVERRIDE "
                   "(comma-separated). Without it a plugin that takes a built-in's name is refused with a warning.")
@click.version_option(package_name="sslbench")
def cli(plugins: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """sslbench: benchmark and reproduce self-supervised representation learning.

    \b
    sslbench list methods 'sim*'
    sslbench run simclr                       # embedded default suite, offline, CPU
    sslbench run simclr --suite mnist-linear --seed 0 --seed 1 --set pretrain.epochs=5
    sslbench compare results/runs --format md
    """
    import os

    from .plugins import set_plugin_dirs
    from .registry import ALLOW_OVERRIDE_ENV

    if overrides:  # through the environment, so that profile's point processes allow the same names
        names = [n for n in os.environ.get(ALLOW_OVERRIDE_ENV, "").split(",") if n.strip()]
        os.environ[ALLOW_OVERRIDE_ENV] = ",".join(dict.fromkeys([*names, *overrides]))
    set_plugin_dirs(plugins)


from .commands.compare import compare_cmd  # noqa: E402
from .commands.list import list_cmd  # noqa: E402
from .commands.profile import profile_cmd  # noqa: E402
from .commands.run import run_cmd  # noqa: E402
from .commands.sweep import sweep_cmd  # noqa: E402

for _command in (list_cmd, run_cmd, profile_cmd, compare_cmd, sweep_cmd):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="sslbench")


if __name__ == "__main__":
    main()
