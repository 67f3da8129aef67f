"""Every line leaving the process passes the redactor: logging, stdout, stderr, tracebacks.

- Logging: warnings by default, more with -v; each record (message, traceback, stack) is
  redacted by `RedactingFilter` before the handler formats it.
- Output: `redacted_output()` puts a `RedactingStream` in front of sys.stdout and sys.stderr, so
  whatever writes there (click/typer, rich, print, `warnings`, Python's own traceback printing)
  is redacted line by line. stdout gets `redact_known` (registered and environment secrets,
  driver parameters; URLs in content such as runbook links kept), stderr the stricter
  `redact_text` (every URL's path and query masked too).
- Destinations and format: stderr always; `--log-file PATH` adds a `WatchedFileHandler` (it
  reopens the file when logrotate has moved it). `--log-format json` makes every line one JSON
  object: `time` (RFC 3339 UTC), `level`, `logger`, `message`, `run_id`, `alert_id`, and
  `exception` when there is a traceback - all after redaction.
- Context: `set_run_id` (the evaluator run) and `log_context(alert_id=...)` (the alert being
  checked or delivered, per thread) are attached to every record by `ContextFilter`.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The evaluator run this process is in (one at a time per process), for every record.
_run_id: int | None = None
#: The alert the current thread is working on.
_alert_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("alert_id", default=None)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, traceback (`exc_info`) and `stack_info` in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        from datamantri_alerts.secrets import redact_text

        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def set_run_id(run_id: int | None) -> None:
    """Attach run_id to every record from now on (None: outside a run)."""
    global _run_id
    _run_id = run_id


@contextmanager
def log_context(*, alert_id: int | None) -> Iterator[None]:
    """Records logged by this thread inside the block carry alert_id."""
    token = _alert_id.set(alert_id)
    try:
        yield
    finally:
        _alert_id.reset(token)


class ContextFilter(logging.Filter):
    """Sets `run_id` and `alert_id` on each record (values given with `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = _run_id
        if getattr(record, "alert_id", None) is None:
            record.alert_id = _alert_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "alert_id": getattr(record, "alert_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


def _formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def _prepare(handler: logging.Handler, log_format: str, level: int) -> logging.Handler:
    handler.setFormatter(_formatter(log_format))
    # Context first, then redaction: the formatter sees only redacted text.
    handler.filters = [ContextFilter(), RedactingFilter()]
    handler.setLevel(level)
    return handler


def configure_logging(
    verbose: int, *, log_file: str | None = None, log_format: str = "text"
) -> None:
    """stderr gets warnings (-v info, -vv debug); log_file, when given, gets info (-vv debug)
    and is reopened when it is moved away. log_format is "text" or "json".

    Raises OSError when log_file cannot be opened (the CLI reports it as bad input).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    file_level = logging.DEBUG if verbose >= 2 else logging.INFO
    logger = logging.getLogger("datamantri_alerts")
    for old in [h for h in logger.handlers if getattr(h, "_alerts_file_handler", False)]:
        logger.removeHandler(old)
        old.close()
    stderr = next((h for h in logger.handlers if getattr(h, "_alerts_handler", False)), None)
    if stderr is None:
        stderr = _StderrHandler()
        stderr._alerts_handler = True  # type: ignore[attr-defined]
        logger.addHandler(stderr)
    _prepare(stderr, log_format, level)
    lowest = level
    if log_file:
        from logging.handlers import WatchedFileHandler

        handler = _prepare(WatchedFileHandler(log_file, encoding="utf-8"), log_format, file_level)
        handler._alerts_file_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        lowest = min(level, file_level)
    logger.setLevel(lowest)


class RedactingStream(io.TextIOBase):
    """A text stream that redacts whole lines before passing them to `target`.

    Text is held until a line ends (`\\n` or `\\r`) so a secret split over two writes is still
    seen whole; `flush()` (prompts, progress, exit) passes a partial line on, redacted. There is
    deliberately no `buffer` attribute: click must not bypass the redactor by writing bytes.
    Writing bytes raises TypeError, as on any text stream.
    """

    def __init__(self, target: TextIO, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.target = target
        self._redact = redact
        self._pending = ""
        # Delivery threads log while the main thread prints. Reentrant: redacting can itself
        # write to this stream on the same thread (the redactor's first import under
        # `python -v` / PYTHONVERBOSE, a warning raised while redacting); such a write is
        # queued behind the text being redacted (`_passing`) instead of waiting for itself.
        self._lock = threading.RLock()
        self._passing = False

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending += text
            if not self._passing:
                self._pass_on(whole_lines=True)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._passing:
                return  # from inside the redactor: the outer write or flush passes it on
            self._pass_on(whole_lines=False)
        self.target.flush()

    def _pass_on(self, *, whole_lines: bool) -> None:
        """Redact and write what is pending: its whole lines, or all of it; also what the
        redaction itself wrote meanwhile. Called with the lock held."""
        self._passing = True
        try:
            while self._pending:
                cut = len(self._pending) - 1
                if whole_lines:
                    cut = max(self._pending.rfind("\n"), self._pending.rfind("\r"))
                    if cut < 0:
                        return
                ready, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
                self.target.write(self._redact(ready))
        finally:
            self._passing = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.target, "errors", None)

    @property
    def closed(self) -> bool:
        return bool(getattr(self.target, "closed", False))

    def close(self) -> None:
        # Never closes the stream it wraps; only passes on what is pending (also from __del__,
        # when the target may already be gone).
        with suppress(OSError, ValueError):
            self.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.target, name)


def _redact_stdout(text: str) -> str:
    from datamantri_alerts.secrets import redact_known

    return redact_known(text)


def _redact_stderr(text: str) -> str:
    from datamantri_alerts.secrets import redact_text

    return redact_text(text)


def install_redacted_output() -> bool:
    """Put the redactor in front of sys.stdout and sys.stderr; False if it already is."""
    if isinstance(sys.stdout, RedactingStream) and isinstance(sys.stderr, RedactingStream):
        return False
    # A stream that is None (no console at all) stays None: nothing leaves through it.
    if sys.stdout is not None and not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout, _redact_stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, _redact_stderr)
    return True


@contextmanager
def redacted_output() -> Iterator[None]:
    """sys.stdout and sys.stderr redacted for the duration (one command invocation)."""
    before = (sys.stdout, sys.stderr)
    installed = install_redacted_output()
    try:
        yield
    finally:
        if installed:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, RedactingStream):
                    with suppress(OSError, ValueError):
                        stream.flush()
            sys.stdout, sys.stderr = before


def write_unredacted(text: str) -> None:
    """Write text to the real stdout, past the redactor: only for what the user asked to see
    in full (`export --show-secrets`)."""
    stream: Any = sys.stdout
    if isinstance(stream, RedactingStream):
        stream.flush()
        stream = stream.target
    stream.write(text)
    stream.flush()
