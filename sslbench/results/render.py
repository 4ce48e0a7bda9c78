"""Render comparison tables: rich (terminal), GitHub markdown, CSV, HTML.

``render_table(..., "html")`` gives one table as an HTML fragment; :func:`html_document` puts such
fragments, message lines and PNG plots (inlined as base64 ``data:`` URIs) into one complete,
standalone HTML5 document (doctype, ``<head>`` with charset, title and inline styles, ``<body>``):
what ``compare --format html`` writes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path
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


HTML_STYLE = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #1f2328; }
h3 { font-size: 1.1em; margin: 1.5em 0 0.4em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; }
thead th { background: #f6f8fa; }
tbody th { text-align: left; font-weight: 600; }
td { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
ul.notes, ul.messages { font-size: 0.85em; color: #57606a; }
ul.messages { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #57606a; }
"""


def html_messages(lines: Iterable[str]) -> str:
    """Message lines ("plot: ...", "gate passed: ...") as an escaped list."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<ul class="messages">{items}</ul>\n' if items else ""


def html_figure(png: str | Path) -> str:
    """A PNG file inlined as a ``data:`` URI (the document stays one file), its path as the caption."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    name = html.escape(Path(png).name, quote=True)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
            f"<figcaption>{html.escape(str(png))}</figcaption></figure>\n")


def html_document(parts: Iterable[str], title: str = "sslbench compare") -> str:
    """A complete HTML5 document around body ``parts`` (fragments of :func:`to_html`,
    :func:`html_messages`, :func:`html_figure`): doctype, charset, title, inline styles."""
    body = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
    head = (f'<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{HTML_STYLE}</style>\n")
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}</head>\n<body>\n{body}</body>\n</html>\n'
