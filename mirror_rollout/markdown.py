"""The one way to put a value a person or an API supplied into markdown.

A reviewer's comment, a resource name or an error message is data, never
markup: without escaping, a comment holding a newline and ``|`` adds rows to
an approval table, and ``<img>`` or ``[x](…)`` turns into HTML or a link in
the Prefect UI. Every artifact builds its tables and headings here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

#: Characters that let a value change a document's structure: cells (``|``), code spans
#: (backtick), links and images (``[ ]``) and escapes themselves; a backslash makes each
#: literal. Emphasis markers (``*``, ``_``) are left alone: they can only restyle text, and
#: resource addresses and names stay as people search for them (``aws_sns_topic``).
#: (Line-start markers such as ``#`` or ``-`` cannot occur: a value never starts a line.)
_INLINE_SPECIAL = re.compile(r"([\\`\[\]|])")
_NEWLINES = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c|\x85")
#: C0/C1 controls other than the line breaks above: shown as nothing.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def inline(value: object) -> str:
    """``value`` as literal text on one line (safe in a table cell, a list item or a heading).

    HTML is entity-escaped, markdown punctuation backslash-escaped (``\\|`` stays a
    literal pipe inside a GFM table), and line breaks become ``<br>`` so a value
    can never start a new row, list item or heading.
    """
    text = _CONTROLS.sub("", str(value))
    text = html.escape(text, quote=False)
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    return _NEWLINES.sub("<br>", text).strip()


def code(value: object) -> str:
    """A short machine value (sha256, ARN, address) shown as code, escaped like any cell.

    Backticks inside the value cannot close the span early: such values are shown
    as plain escaped text instead.
    """
    text = str(value)
    if "`" in text or _NEWLINES.search(text) or "|" in text or "\\" in text:
        return inline(text)
    return f"`{_CONTROLS.sub('', text)}`"


def heading(level: int, value: object) -> str:
    """A heading whose text is ``value``, escaped (one line, no markup)."""
    return f"{'#' * max(1, min(level, 6))} {inline(value)}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a GFM table; every cell escaped with :func:`inline`.

    Cells already rendered with :func:`code` are passed as :class:`Raw`.
    """
    lines = [
        "| " + " | ".join(inline(h) for h in headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for row in rows:
        cells = [c.text if isinstance(c, Raw) else inline(c) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"row has {len(cells)} cells, the table {len(headers)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


class Raw:
    """A cell already escaped by this module (e.g. :func:`code`), inserted as is."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def code_cell(value: object) -> Raw:
    return Raw(code(value))


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of every GFM table in ``markdown`` (cells split on unescaped ``|``).

    What a reader (or a test) sees as rows: a forged row would show up here.
    """
    rows: list[list[str]] = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        is_separator = re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()) is not None
        next_is_separator = i + 1 < len(lines) and re.fullmatch(
            r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()
        )
        if is_separator or next_is_separator:
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip() for c in cells])
    return rows
