"""A report as a few plain blocks, written as markdown and as self-contained HTML with playable audio.

Every file a report points to (pictures, audio) is written as a path relative to the report's
folder, so the links keep working when the folder (with what it points to) is moved or copied.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    path: Path


@dataclass(frozen=True)
class Audio:
    """A WAV file: a link in markdown, a player (``<audio controls>``) in HTML."""

    path: Path


Inline = str | Code | Strong | Link | Audio
Text = Inline | tuple[Inline, ...]  # a paragraph or a table cell


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Image:
    alt: str
    path: Path


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Text, ...], ...]
    align: str = ""  # "l" or "r" per column; default: all left


@dataclass(frozen=True)
class Bullets:
    items: tuple[Text, ...]


Block = Heading | Paragraph | Image | Table | Bullets


def relative_url(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (``../`` where it lies outside), percent-encoded for a link."""
    rel = os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    return quote(Path(rel).as_posix(), safe="/")


def _parts(text: Text) -> tuple[Inline, ...]:
    return text if isinstance(text, tuple) else (text,)


# -- markdown --------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*[]<|" else c for c in text)


def _md_inline(part: Inline, folder: Path) -> str:
    if isinstance(part, Code):
        return f"`{part.text}`" if "`" not in part.text else f"`` {part.text} ``"
    if isinstance(part, Strong):
        return f"**{_md_escape(part.text)}**"
    if isinstance(part, Link):
        return f"[{_md_escape(part.text)}]({relative_url(part.path, folder)})"
    if isinstance(part, Audio):
        return f"[{_md_escape(part.path.name)}]({relative_url(part.path, folder)})"
    return _md_escape(part)


def _md_text(text: Text, folder: Path) -> str:
    return "".join(_md_inline(p, folder) for p in _parts(text)).replace("\n", " ")


def to_markdown(title: str, blocks: Sequence[Block], folder: Path) -> str:
    """The report as markdown; links relative to ``folder`` (the report's own)."""
    lines = [f"# {_md_escape(title)}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines.append(f"{'#' * block.level} {_md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            lines.append(_md_text(block.text, folder))
        elif isinstance(block, Image):
            lines.append(f"![{_md_escape(block.alt)}]({relative_url(block.path, folder)})")
        elif isinstance(block, Table):
            align = block.align or "l" * len(block.header)
            lines.append("| " + " | ".join(_md_escape(h) for h in block.header) + " |")
            lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
            lines += ["| " + " | ".join(_md_text(c, folder).strip() for c in row) + " |" for row in block.rows]
        elif isinstance(block, Bullets):
            lines += [f"- {_md_text(item, folder)}" for item in block.items]
        lines.append("")
    return "\n".join(lines)


# -- HTML ------------------------------------------------------------------------------------------

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}"
    "td.r,th.r{text-align:right}img{max-width:100%}audio{display:block;width:16em}code{font-size:90%}"
)


def _html_inline(part: Inline, folder: Path) -> str:
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>"
    if isinstance(part, Strong):
        return f"<strong>{html.escape(part.text)}</strong>"
    if isinstance(part, Link):
        return f'<a href="{html.escape(relative_url(part.path, folder))}">{html.escape(part.text)}</a>'
    if isinstance(part, Audio):
        src = html.escape(relative_url(part.path, folder))
        return f'<audio controls preload="none" src="{src}"></audio><a href="{src}">{html.escape(part.path.name)}</a>'
    return html.escape(part)


def _html_text(text: Text, folder: Path) -> str:
    return "".join(_html_inline(p, folder) for p in _parts(text))


def to_html(title: str, blocks: Sequence[Block], folder: Path) -> str:
    """The report as one HTML page (no scripts, nothing fetched from elsewhere); paths relative to ``folder``."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_html_text(block.text, folder)}</p>")
        elif isinstance(block, Image):
            src = html.escape(relative_url(block.path, folder))
            out.append(f'<p><img src="{src}" alt="{html.escape(block.alt)}"></p>')
        elif isinstance(block, Table):
            align = block.align or "l" * len(block.header)
            out.append("<table>")
            out.append(
                "<tr>"
                + "".join(f'<th class="{a}">{html.escape(h)}</th>' for h, a in zip(block.header, align))
                + "</tr>"
            )
            for row in block.rows:
                cells = (f'<td class="{a}">{_html_text(c, folder)}</td>' for c, a in zip(row, align))
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_html_text(item, folder)}</li>" for item in block.items) + "</ul>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
