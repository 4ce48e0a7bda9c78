"""``sslbench list``: registered entries with where they come from."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .errors import SSLBenchError
from .plugins import METHODS, PROTOCOLS, SUITES, load_method_class


def list_entries(kind: str, pattern: str | None) -> None:
    registry = {"methods": METHODS, "suites": SUITES, "protocols": PROTOCOLS}[kind]
    names = registry.names(pattern)
    if not names:
        raise SSLBenchError(f"No {kind} match '{pattern}'. Try: sslbench list {kind}")
    table = Table(title=f"sslbench {kind}")
    if kind == "methods":
        for col in ("name", "variants", "modality", "version", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            try:
                cls = load_method_class(n)
            except SSLBenchError:
                continue
            table.add_row(n, ", ".join(f"{n}.{v}" for v in cls.variants) or "-", cls.modality, str(cls.version),
                          registry.entry(n).origin)
    elif kind == "suites":
        from .suites import suite_summary

        for col in ("name", "version", "modality", "dataset", "encoder", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            try:
                s = suite_summary(n)
            except SSLBenchError as e:
                table.add_row(n, "?", "?", f"[red]{e}[/red]", "", registry.entry(n).origin)
                continue
            enc = s["encoder"]["name"] if isinstance(s["encoder"], dict) else s["encoder"]
            table.add_row(n, str(s["version"]), str(s["modality"]), str(s["dataset"]), str(enc), registry.entry(n).origin)
    else:
        for col in ("name", "version", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            table.add_row(n, str(registry.get(n).version), registry.entry(n).origin)
    Console(soft_wrap=True).print(table)
