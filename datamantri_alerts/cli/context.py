"""What every command shares: settings, the store (opened on first use), clock and consoles."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import typer

from datamantri_alerts.clock import Clock, SystemClock
from datamantri_alerts.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from datamantri_alerts.store.engine import Store


def _console(stderr: bool = False) -> Console:
    """Rich console for data: markup, emoji codes and highlighting are off, and control
    characters in any text are shown escaped (see `data_console_class`). When piped (cron
    logs, grep) lines are not wrapped at 80 columns. On stderr a printed line is never broken
    (soft wrap: the terminal folds it), so each error or warning stays one line at any width."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return data_console_class()(stderr=stderr, width=160 if piped else None, soft_wrap=stderr)


@cache
def data_console_class() -> type[Console]:
    """A rich Console whose every printed character is data-safe.

    Markup, emoji codes and highlighting are off whatever the caller asks for (also per
    call: `print(..., markup=True)` prints the brackets); style with `rich.text.Text`.
    Strings become Text through `render_str`, where `escaping.terminal` makes control
    characters visible before layout (so widths stay right). Text built elsewhere should use
    `data_text`; as a last line, every text segment rendered is escaped the same way, so an
    escape sequence in data can never reach the terminal. Styles and rich's own control
    segments (cursor movement of progress bars) are untouched."""
    from collections.abc import Iterable

    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

    from datamantri_alerts.escaping import terminal

    class DataConsole(Console):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Data is never markup: no [tags], no :emoji: codes, no repr highlighting.
            kwargs.update(markup=False, emoji=False, highlight=False)
            super().__init__(*args, **kwargs)

        def render_str(self, text: str, **kwargs: Any) -> Text:
            # Also when a caller passes markup=True: styles come from Text, not from strings.
            kwargs.update(markup=False, emoji=False, highlight=False)
            return super().render_str(terminal(text), **kwargs)

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control:
                    yield segment
                else:
                    safe = terminal(segment.text)
                    yield segment if safe == segment.text else Segment(safe, segment.style)

    return DataConsole


def data_text(value: Any, style: str = "") -> Text:
    """str(value) as a rich Text shown literally (control characters escaped), in style."""
    from rich.text import Text

    from datamantri_alerts.escaping import terminal

    return Text(terminal(str(value)), style=style)


@dataclass
class AppContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    _store: Store | None = None
    # Built on first use: commands that print plain text (list, --json) never import rich.
    _console: Console | None = None
    _err: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = _console()
        return self._console

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _console(stderr=True)
        return self._err

    @property
    def store(self) -> Store:
        if self._store is None:
            from datamantri_alerts.store.crypto import register_stored_secrets
            from datamantri_alerts.store.engine import open_store

            self._store = open_store(self.store_url())
            with self._store.session() as session:
                register_stored_secrets(session)
            from datamantri_alerts.cli.startup import resume_gc

            resume_gc()  # the command's imports are done; its work runs with the collector
        return self._store

    def store_url(self) -> str:
        """The store's URL; one line naming where it came from (`--db`, ALERTS_DATABASE_URL),
        exit 2, when it does not parse (`store.engine.parse_store_url`)."""
        from datamantri_alerts.store.engine import parse_store_url

        parse_store_url(self.settings.database_url, self.settings.database_field)
        return self.settings.database_url

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None

    def warn(self, message: str) -> None:
        """`warning: message` on stderr; message is data (never markup)."""
        from rich.text import Text

        line = Text("warning:", style="yellow")
        line.append(" ").append_text(data_text(message))
        self.err.print(line, soft_wrap=True)


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_object(AppContext)
    if obj is None:  # pragma: no cover - the callback always sets it
        raise RuntimeError("no application context")
    return obj


def print_json(data: Any) -> None:
    """JSON on stdout and nothing else (stable keys; ISO times; control characters in strings
    as `\\uXXXX` escapes, so data cannot drive the terminal)."""
    sys.stdout.write(json_document(data))
    sys.stdout.write("\n")
    sys.stdout.flush()


#: The ASCII characters `escaping.json_text` escapes (C0 controls but tab and newline, DEL);
#: a test holds it to `json_text` character by character.
JSON_TEXT_ESCAPES_ASCII = (*map(chr, range(0x09)), *map(chr, range(0x0B, 0x20)), "\x7f")


def _left_as_is_by_json_text(text: str) -> bool:
    """Whether `escaping.json_text(text)` is `text`: ASCII (known at once of a `str`) with none
    of `JSON_TEXT_ESCAPES_ASCII` (each looked for by `memchr`). `json_text`'s regular
    expression takes about fifteen instructions per character, most of `--json`'s cost for a
    large document (5,000 results: 84 M of 126 M instructions), and JSON text is mostly ASCII
    with no raw control character."""
    if not text.isascii():
        return False
    for character in JSON_TEXT_ESCAPES_ASCII:  # noqa: SIM110 - a loop, not a generator
        if character in text:
            return False
    return True


def json_document(data: Any) -> str:
    """What `print_json` prints of `data`: `escaping.json_text(json_dumps(data))`."""
    text = json_dumps(data)
    if _left_as_is_by_json_text(text):
        return text
    from datamantri_alerts.escaping import json_text

    return json_text(text)


def json_dumps(data: Any) -> str:
    """`json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)`, made by orjson:
    Python's indenting encoder is pure Python (0.1 s for the results of 5,000 alerts). Times,
    dates and dataclasses still go through `_json_default`, as with `json`; a value orjson
    refuses (an integer beyond 64 bits, say) is left to `json`. Floats that are not finite are
    written as `null` (valid JSON), not `NaN`; an exponent as `1e-7`, not `1e-07`."""
    import orjson

    options = (
        orjson.OPT_INDENT_2
        | orjson.OPT_NON_STR_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    try:
        return orjson.dumps(data, default=_json_default, option=options).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, float):  # a subclass, which orjson leaves to us: a number, as json
        return float(value)
    return str(value)


def fmt_time(value: Any) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M UTC")
