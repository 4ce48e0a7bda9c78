"""Render comparison tables: rich (terminal), GitHub markdown, CSV, HTML.

``render_table(..., "html")`` gives one table as an HTML fragment; :func:`to_html` can hang a
:class:`CellDetail` on any cell (a hover ``title`` and an expandable ``<details>``: the provenance that
:mod:`.html_report` builds). :func:`html_document` puts such fragments, message lines and PNG plots
(inlined as base64 ``data:`` URIs) into one complete, standalone HTML5 document (doctype, ``<head>`` with
charset, title and inline styles, ``<body>``; no script, nothing fetched): what ``compare --format html``
writes. Every string from a record is escaped here (:func:`html.escape`): records are untrusted input.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CellDetail:
    """What a cell of an HTML table says about itself: ``title`` (plain text, shown on hover) and
    ``detail`` (an HTML fragment whose strings are already escaped, shown when the cell's ``<details>``
    is opened)."""

    title: str
    detail: str


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def to_html(
    table: Table, title: str | None = None, details: Mapping[tuple[int, int], CellDetail] | None = None
) -> str:
    """The table as ``<table>`` (header row: the index name and the columns; one ``<tr>`` per row, its
    label in a ``<th>``), with an optional heading and the notes as a list. ``details`` maps a cell's
    (row position, column position) to its :class:`CellDetail`: the cell gets a ``title`` and, after its
    text, a ``<details>`` element holding the fragment."""
    frame = table.frame
    out = [f"<h3>{_esc(title)}</h3>\n" if title else "", '<table class="report">\n<thead>\n<tr>']
    out.extend(f"<th>{_esc(name)}</th>" for name in [frame.index.name or "", *frame.columns])
    out.append("</tr>\n</thead>\n<tbody>\n")
    for i, (label, row) in enumerate(frame.iterrows()):
        out.append(f"<tr><th>{_esc(label)}</th>")
        for j, value in enumerate(row):
            text = "" if value is None or (isinstance(value, float) and value != value) else _esc(value)
            cell = (details or {}).get((i, j))
            if cell is None:
                out.append(f"<td>{text}</td>")
            else:
                out.append(f'<td class="prov" title="{_esc(cell.title)}">{text}<details>'
                           f'<summary title="provenance">runs</summary><div class="detail">{cell.detail}</div>'
                           "</details></td>")
        out.append("</tr>\n")
    out.append("</tbody>\n</table>\n")
    if table.notes:
        items = "".join(f"<li>{_esc(n)}</li>" for n in table.notes)
        out.append(f'<ul class="notes">{items}</ul>\n')
    return "".join(out)


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
td.prov { position: relative; }
td.prov details { display: inline-block; margin-left: 0.3em; }
td.prov summary { cursor: pointer; color: #0969da; list-style: none; font-size: 0.75em; text-decoration: underline dotted; }
td.prov summary::-webkit-details-marker { display: none; }
td.prov details[open] > summary { color: #cf222e; }
div.detail { position: absolute; z-index: 1; right: 0; top: 100%; min-width: 32em; max-width: 70em;
  background: #fff; border: 1px solid #d0d7de; box-shadow: 0 4px 12px rgba(0, 0, 0, 0.15);
  padding: 0.5em 0.8em; text-align: left; white-space: normal; font-size: 0.85em; }
div.detail dl { display: grid; grid-template-columns: max-content auto; gap: 0.15em 0.8em; margin: 0 0 0.5em; }
div.detail dt { color: #57606a; }
div.detail dd { margin: 0; overflow-wrap: anywhere; }
div.detail ul.runs { margin: 0; padding-left: 1.2em; }
div.detail li { overflow-wrap: anywhere; }
"""


def html_messages(lines: Iterable[str]) -> str:
    """Message lines ("plot: ...", "gate passed: ...") as an escaped list."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<ul class="messages">{items}</ul>\n' if items else ""


def html_figure(png: str | Path, caption: str | None = None) -> str:
    """A PNG file inlined as a ``data:`` URI (the document stays one file); ``caption`` (default: its path)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    name = html.escape(Path(png).name, quote=True)
    caption = str(png) if caption is None else caption
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>\n")


def html_document(parts: Iterable[str], title: str = "sslbench compare") -> str:
    """A complete HTML5 document around body ``parts`` (fragments of :func:`to_html`,
    :func:`html_messages`, :func:`html_figure`): doctype, charset, title, inline styles."""
    body = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
    head = (f'<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{HTML_STYLE}</style>\n")
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}</head>\n<body>\n{body}</body>\n</html>\n'
