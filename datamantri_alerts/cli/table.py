"""A plain, fast text table for long listings (rich's renderer costs ~1 ms a row).

Columns are padded to their widest cell; the flexible column is shortened with `…` to fit the
terminal. Colour is added only on a terminal. Cells and the title are data: control characters
in them are shown escaped (`escaping.terminal`), so they cannot recolour or move the cursor.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from datamantri_alerts.escaping import terminal

ANSI = {
    "red": "\x1b[1;31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "magenta": "\x1b[35m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Column:
    header: str
    align: str = "left"  # left | right
    flexible: bool = False


def _width() -> int:
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((160, 24)).columns
    return 160


def _cell(value: object) -> str:
    """A cell on one line, control characters escaped."""
    return terminal(str(value).replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[Sequence[str | None]] | None = None,
    title: str | None = None,
) -> str:
    """The table as text; `styles[r][c]` names an ANSI style for a cell (terminal only)."""
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(col.header) for col in columns]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    gap = 2
    total = sum(widths) + gap * (len(columns) - 1)
    available = _width()
    if total > available:
        for index, col in enumerate(columns):
            if col.flexible:
                widths[index] = max(len(col.header), widths[index] - (total - available), 12)
    lines: list[str] = []
    if title:
        lines.append(terminal(title))

    def line(values: Sequence[str], row_styles: Sequence[str | None] | None = None) -> str:
        parts = []
        for index, (col, value) in enumerate(zip(columns, values, strict=True)):
            text = _fit(value, widths[index])
            padded = (
                text.rjust(widths[index]) if col.align == "right" else text.ljust(widths[index])
            )
            style = row_styles[index] if row_styles else None
            if colour and style in ANSI:
                padded = f"{ANSI[style]}{padded}{RESET}"
            parts.append(padded)
        return (" " * gap).join(parts).rstrip()

    header = line([c.header for c in columns])
    lines.append(f"{ANSI['bold']}{header}{RESET}" if colour else header)
    lines.append((" " * gap).join("─" * w for w in widths))
    for index, row in enumerate(cells):
        lines.append(line(row, styles[index] if styles else None))
    return "\n".join(lines) + "\n"
