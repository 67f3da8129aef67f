"""A plain, fast text table that chooses its layout by the terminal width.

rich's renderer costs ~1 ms a row and, when a table is too wide, narrows every column and
breaks words (and URLs) in the middle. This one fits the width in three steps, in order:

1. `detail` columns (summaries, descriptions) leave the grid and go on their own line under
   their row, indented;
2. columns are dropped, highest `drop` rank first (0: never dropped);
3. the `flexible` column wraps its cells onto more lines, at spaces only.

Text is wrapped at spaces and never inside a word or a URL: a single word longer than the
room it has stays whole. Colour is added only on a terminal. Cells and the title are data:
control characters in them are shown escaped (`escaping.terminal`), so they cannot recolour
or move the cursor.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
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
GAP = 2
#: Indent of detail lines under their row.
DETAIL_INDENT = 4
#: The flexible column is not narrowed below this many characters (nor below its header)
#: before other columns are dropped.
MIN_FLEXIBLE = 30


@dataclass(frozen=True)
class Column:
    """One column. `drop`: 0 never dropped, else dropped when the table is too wide, the
    highest rank first. `flexible`: takes the room left and wraps at spaces. `detail`: moved
    onto its own line under the row when the table does not fit (the header becomes a label)."""

    header: str
    align: str = "left"  # left | right
    flexible: bool = False
    drop: int = 0
    detail: bool = False
    #: Always shown under its row, one line per line of the cell (a list of changes).
    below: bool = False


def terminal_width() -> int:
    """Columns of the terminal (or $COLUMNS); 160 when piped, so logs are not cut at 80."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return shutil.get_terminal_size((160, 24)).columns
    return 160


def _cell(value: object) -> str:
    """A cell on one line, control characters escaped."""
    return terminal(str(value).replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def wrap_words(text: str, width: int) -> list[str]:
    """text in lines of at most width characters, broken at spaces only (a longer word or URL
    keeps its own, longer line)."""
    if len(text) <= width:
        return [text]
    lines = textwrap.wrap(text, max(width, 1), break_long_words=False, break_on_hyphens=False)
    return lines or [""]


def _longest_word(values: Sequence[str]) -> int:
    return max((len(word) for value in values for word in value.split()), default=0)


def _layout(
    columns: Sequence[Column], cells: Sequence[Sequence[str]], available: int
) -> tuple[list[int], list[int], dict[int, int]]:
    """(grid column indexes, detail column indexes, widths by column index)."""
    natural = {
        index: max([len(col.header), *(len(row[index]) for row in cells)])
        for index, col in enumerate(columns)
    }
    grid = list(range(len(columns)))
    details: list[int] = []

    def total(indexes: list[int], widths: dict[int, int]) -> int:
        return sum(widths[i] for i in indexes) + GAP * max(len(indexes) - 1, 0)

    def flexible_floor(index: int) -> int:
        # Never narrower than its longest word: words and URLs are not broken.
        col = columns[index]
        longest = _longest_word([row[index] for row in cells])
        return max(len(col.header), min(natural[index], MIN_FLEXIBLE), longest)

    def fits(indexes: list[int]) -> bool:
        floor = {i: flexible_floor(i) if columns[i].flexible else natural[i] for i in indexes}
        return total(indexes, floor) <= available

    below = [i for i in grid if columns[i].below]
    grid = [i for i in grid if not columns[i].below]
    if total(grid, natural) > available:
        details = [i for i in grid if columns[i].detail]
        grid = [i for i in grid if not columns[i].detail]
    details += below
    ranked = sorted((i for i in grid if columns[i].drop), key=lambda i: -columns[i].drop)
    for index in ranked:
        if fits(grid):
            break
        grid.remove(index)
    widths = dict(natural)
    flexible = [i for i in grid if columns[i].flexible]
    overflow = total(grid, widths) - available
    if overflow > 0 and flexible:
        index = flexible[0]
        widths[index] = max(flexible_floor(index), natural[index] - overflow)
    return grid, details, widths


def render_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[Sequence[str | None]] | None = None,
    title: str | None = None,
    width: int | None = None,
) -> str:
    """The table as text, fitted to width (default: the terminal's, see `terminal_width`);
    `styles[r][c]` names an ANSI style for a cell (terminal only)."""
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    available = width or terminal_width()
    cells = [[_cell(value) for value in row] for row in rows]
    # Cells of `below` columns keep their lines (the layout sees them only as detail lines).
    lines_below = {
        (r, i): [_cell(part) for part in str(row[i]).splitlines()]
        for r, row in enumerate(rows)
        for i, col in enumerate(columns)
        if col.below
    }
    grid, details, widths = _layout(columns, cells, available)

    def paint(text: str, style: str | None) -> str:
        return f"{ANSI[style]}{text}{RESET}" if colour and style in ANSI else text

    lines: list[str] = []
    if title:
        lines.extend(wrap_words(terminal(title), available))

    def emit(values: Sequence[str], row_styles: Sequence[str | None] | None) -> None:
        wrapped = {
            i: wrap_words(values[i], widths[i]) if columns[i].flexible else [values[i]]
            for i in grid
        }
        height = max(len(parts) for parts in wrapped.values())
        for n in range(height):
            parts = []
            for i in grid:
                text = wrapped[i][n] if n < len(wrapped[i]) else ""
                padded = (
                    text.rjust(widths[i]) if columns[i].align == "right" else text.ljust(widths[i])
                )
                parts.append(paint(padded, row_styles[i] if row_styles and text else None))
            lines.append((" " * GAP).join(parts).rstrip())

    header = (
        (" " * GAP)
        .join(
            columns[i].header.rjust(widths[i])
            if columns[i].align == "right"
            else columns[i].header.ljust(widths[i])
            for i in grid
        )
        .rstrip()
    )
    lines.append(paint(header, "bold"))
    lines.append((" " * GAP).join("─" * min(widths[i], available) for i in grid))
    for r, row in enumerate(cells):
        row_styles = styles[r] if styles else None
        emit(row, row_styles)
        for i in details:
            if not row[i] or row[i] == "-":
                continue
            label = f"{columns[i].header.lower()}: " if len(details) > 1 else ""
            parts = lines_below[(r, i)] if columns[i].below else [label + row[i]]
            for part in parts:
                for text in wrap_words(part, available - DETAIL_INDENT):
                    # A word (URL) too long for the indented line starts at the margin instead.
                    indent = DETAIL_INDENT if len(text) + DETAIL_INDENT <= available else 0
                    lines.append(" " * indent + paint(text, "dim"))
    return "\n".join(lines) + "\n"
