"""One report document rendered twice: a self-contained HTML page (figures embedded as data URIs, inline
CSS, no script, nothing fetched) and a markdown page linking the same PNG files."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from viral.report.tables import Table


@dataclass
class Figure:
    path: Path  # a PNG file
    caption: str


@dataclass
class Section:
    heading: str
    blocks: list[str | Table | Figure] = field(default_factory=list)  # str: a paragraph


@dataclass
class Document:
    title: str
    sections: list[Section]


def _markdown_cell(text: str, bold: bool) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if bold and text else text


def table_markdown(table: Table) -> str:
    names = list(table.columns)
    if table.spans:
        expanded = [label for label, width in table.spans for _ in range(width)]
        names = [f"{group} {name}".strip() for group, name in zip(expanded, names)]
    lines = [f"**{table.title}**", "", "| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_markdown_cell(c.text, c.bold) for c in row) + " |" for row in table.rows]
    lines += ["", *(f"_{note}_" for note in table.notes)]
    return "\n".join(lines)


def to_markdown(document: Document, base: Path) -> str:
    """The document as markdown; figure links are relative to `base` (where the .md file lives)."""
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts.append(f"## {section.heading}")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(table_markdown(block))
            elif isinstance(block, Figure):
                parts.append(f"![{block.caption}]({block.path.relative_to(base).as_posix()})\n\n_{block.caption}_")
            else:
                parts.append(block)
    return "\n\n".join(parts) + "\n"


def table_html(table: Table) -> str:
    head = []
    if table.spans and any(label for label, _ in table.spans):
        head.append("<tr>" + "".join(f'<th colspan="{width}">{html.escape(label)}</th>' for label, width in table.spans)
                    + "</tr>")
    head.append("<tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in table.columns) + "</tr>")
    body = []
    for row in table.rows:
        cells = []
        for cell in row:
            text = html.escape(cell.text)
            cells.append(f"<td><b>{text}</b></td>" if cell.bold and text else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in table.notes)
    return (f"<figure class=\"table\"><figcaption>{html.escape(table.title)}</figcaption><table><thead>{''.join(head)}"
            f"</thead><tbody>{''.join(body)}</tbody></table>{notes}</figure>")


def figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    caption = html.escape(figure.caption)
    return f'<figure><img alt="{caption}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'


STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; text-align: center; }
td:first-child { text-align: left; }
figure { margin: 1.5em 0; overflow-x: auto; }
figcaption { font-size: 14px; margin: 0.4em 0; }
img { max-width: 100%; }
.note { font-size: 12px; color: #555; }
"""


def to_html(document: Document) -> str:
    """The document as one HTML file that needs nothing else: no stylesheet, script, font or image URL."""
    parts = [f"<h1>{html.escape(document.title)}</h1>"]
    for section in document.sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(table_html(block))
            elif isinstance(block, Figure):
                parts.append(figure_html(block))
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(document.title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
