"""Render comparison tables: rich (terminal), GitHub markdown, CSV, HTML."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..errors import SSLBenchError

if TYPE_CHECKING:
    from rich.console import Console

    from .table import Table

FORMATS: tuple[str, ...] = ("rich", "md", "csv", "html")


def render_table(
    table: Table, fmt: str, title: str | None = None, console: Console | None = None
) -> str | None:
    """Render ``table`` as ``fmt``: "rich" prints to ``console`` and returns None; others return text."""
    if fmt not in FORMATS:
        raise SSLBenchError(f"Unknown format '{fmt}'; valid formats: {', '.join(FORMATS)}")
    if fmt == "rich":
        _print_rich(table, title, console)
        return None
    return {"md": to_markdown, "csv": to_csv, "html": to_html}[fmt](table, title)


def _print_rich(table: Table, title: str | None, console: Console | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    console = console or Console()
    frame = table.frame
    out = RichTable(title=title, show_lines=False)
    out.add_column(escape(str(frame.index.name or "")), style="bold")
    for col in frame.columns:
        out.add_column(escape(str(col)), justify="right", overflow="fold")
    for label, row in frame.iterrows():  # labels such as "[cfg 1a2b]" are text, not rich markup
        out.add_row(escape(str(label)), *(escape(str(v)) for v in row))
    console.print(out)
    for note in table.notes:
        console.print(note, style="dim", markup=False, highlight=False)


def _md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, title: str | None = None) -> str:
    """A GitHub markdown table (no tabulate needed), notes as lines after it."""
    frame = table.frame
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(map(_md_escape, header)) + " |")
    lines.append("|" + "|".join([" --- "] + [" ---: "] * len(frame.columns)) + "|")
    for label, row in frame.iterrows():
        lines.append("| " + " | ".join(_md_escape(v) for v in [label, *row]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(table.notes)
    return "\n".join(lines) + "\n"


def to_csv(table: Table, title: str | None = None) -> str:
    """CSV of the frame; title and notes as lines starting with ``# ``."""
    head = f"# {title}\n" if title else ""
    tail = "".join(f"# {note}\n" for note in table.notes)
    return head + table.frame.to_csv() + tail


def to_html(table: Table, title: str | None = None) -> str:
    """pandas ``to_html`` with an optional heading and the notes as a list."""
    head = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    body = table.frame.to_html()
    if table.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
        body += f'\n<ul class="notes">{items}</ul>'
    return head + body + "\n"
