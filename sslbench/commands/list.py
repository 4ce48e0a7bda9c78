"""``sslbench list``: registered entries with where they come from."""

from __future__ import annotations

import fnmatch

import click
from rich.console import Console
from rich.table import Table

from ..errors import SSLBenchError
from ..plugins import (
    DATASETS,
    ENCODERS,
    METHODS,
    MODALITIES,
    PERTURBATIONS,
    PROTOCOLS,
    SUITES,
    load_method_class,
)
from ..registry import Entry, Registry, warn_plugin_failure

KINDS = {"methods": METHODS, "suites": SUITES, "protocols": PROTOCOLS, "datasets": DATASETS, "encoders": ENCODERS,
         "modalities": MODALITIES, "perturbations": PERTURBATIONS}


@click.command("list")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("pattern", required=False)
def list_cmd(kind: str, pattern: str | None) -> None:
    """List registered methods, suites, protocols, datasets, encoders, modalities or perturbations (PATTERN:
    wildcards, 'sim*')."""
    list_entries(kind, pattern)


def describe(obj: object) -> str:
    """An entry's one-line description: its ``description`` attribute, else its docstring's first line."""
    text = getattr(obj, "description", "") or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
    return " ".join(str(text).split())


def shown_origin(entry: Entry) -> str:
    """Who supplied the entry (``builtin``, ``entry-point:<dist>==<version>``, ``plugins:<file>``), and whether it
    replaces a built-in (allowed by ``--allow-override``)."""
    return entry.origin + (f" (replaces {entry.replaced})" if entry.replaced else "")


def _modality_rows(registry: Registry, names: list[str]) -> list[tuple[str, str, str, str]]:
    """(name, modality, description, origin) of data sets, encoders or perturbations; one that fails to import
    is skipped with one warning."""
    rows = []
    for n in names:
        entry = registry.entry(n)
        try:
            obj = entry.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin warns once; the others are still listed
            warn_plugin_failure(f"{n} ({entry.origin})", e)
            continue
        rows.append((n, str(getattr(obj, "modality", "?")), describe(obj), shown_origin(entry)))
    return rows


def list_entries(kind: str, pattern: str | None) -> None:
    registry = KINDS[kind]
    names = registry.names(pattern)
    if kind == "datasets" and pattern:  # data set names fold case, _ and -: 'fashion*' finds FashionMNIST
        folded = registry.fold(pattern) if registry.fold else pattern
        names = sorted(set(names) | {n for n in registry.names() if fnmatch.fnmatch(registry.fold(n), folded)})
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
                          shown_origin(registry.entry(n)))
    elif kind == "suites":
        from ..suites import suite_summary

        for col in ("name", "version", "modality", "dataset", "encoder", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            try:
                s = suite_summary(n)
            except SSLBenchError as e:
                table.add_row(n, "?", "?", f"[red]{e}[/red]", "", shown_origin(registry.entry(n)))
                continue
            enc = s["encoder"]["name"] if isinstance(s["encoder"], dict) else s["encoder"]
            table.add_row(n, str(s["version"]), str(s["modality"]), str(s["dataset"]), str(enc),
                          shown_origin(registry.entry(n)))
    elif kind in ("datasets", "encoders", "perturbations"):
        for col in ("name", "modality", "description", "origin"):
            table.add_column(col, overflow="fold")
        for row in _modality_rows(registry, sorted(names, key=str.lower)):
            table.add_row(*row)
    elif kind == "modalities":
        for col in ("name", "throughput", "views", "fine-tuning", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            cls = registry.get(n)
            views = cls.view_config.__name__ if cls.view_config else "-"
            table.add_row(n, f"{cls.unit}/s", views, "yes" if cls.supports_finetune else "no",
                          shown_origin(registry.entry(n)))
    else:
        for col in ("name", "version", "origin"):
            table.add_column(col, overflow="fold")
        for n in names:
            table.add_row(n, str(registry.get(n).version), shown_origin(registry.entry(n)))
    Console(soft_wrap=True).print(table)
