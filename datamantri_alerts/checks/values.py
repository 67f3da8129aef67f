"""Turning what a database or a file hands back into values a check can compare and store."""

from __future__ import annotations

import base64
import math
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: How much of a query text or error goes into details and summaries.
TEXT_LIMIT = 500
#: How much of one value (a cell, a detail) is kept in details: history, outbox rows,
#: notifications and the redactor never see more, whatever a query or a check returns.
VALUE_LIMIT = 1000


def truncate(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. `Europe/Berlin`, `UTC`).

    Raises ValueError with a readable message for an unknown or malformed name, so config
    validators can use it as is.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def valid_zone_name(name: str) -> str:
    """`name` unchanged when it is an IANA time zone; ValueError otherwise (for validators)."""
    zone_named(name)
    return name


def parse_timestamp(value: Any, naive_zone: tzinfo = UTC) -> datetime | None:
    """A database or JSON timestamp as an aware UTC datetime; None for NULL or empty text.

    - aware datetimes (PostgreSQL `timestamptz`, ISO text with an offset or `Z`) are converted
      to UTC: the session time zone they were rendered in does not matter;
    - naive datetimes (PostgreSQL `timestamp`, MySQL `DATETIME`, SQLite text) are wall-clock
      times in `naive_zone` (default UTC); a wall time the clocks skip or repeat there is read
      with the offset before the change (`fold=0`);
    - numbers (int, float, Decimal, numeric text) are Unix epoch seconds;
    - dates are their midnight in `naive_zone`.

    Raises ValueError for anything else (a value that is not a timestamp).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=naive_zone) if value.tzinfo is None else value
        return aware.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=naive_zone).astimezone(UTC)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return _from_epoch(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _EPOCH_TEXT.match(text):
            return _from_epoch(Decimal(text))
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {truncate(value, 80)!r}") from None
        return parse_timestamp(parsed, naive_zone)
    raise ValueError(f"not a timestamp: {truncate(repr(value), 80)}")


_EPOCH_TEXT = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _from_epoch(value: float | Decimal) -> datetime:
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a timestamp: {value!r} is out of range as Unix seconds") from None


def clip(text: str, limit: int = VALUE_LIMIT) -> str:
    """text cut to at most `limit` characters (the last one `…` when cut); lines kept."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_safe(value: Any) -> Any:
    """A value that `json.dumps` accepts and a person can read in a notification.

    Strings (and the text of other values) are clipped to VALUE_LIMIT characters, binary
    data to its first 1024 bytes, so one huge cell cannot bloat history, notifications or
    the time it takes to redact them.
    """
    kind = type(value)
    # The common cases first, by exact type (a check's details: a dict of text and numbers).
    if kind is str:
        return value if len(value) <= VALUE_LIMIT else clip(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or len(key) > VALUE_LIMIT:
                key = clip(str(key))
            item_kind = type(item)
            if item_kind is str:
                out[key] = item if len(item) <= VALUE_LIMIT else clip(item)
            elif item is None or item_kind is int or item_kind is bool:
                out[key] = item
            elif item_kind is float:
                out[key] = item if math.isfinite(item) else str(item)
            else:
                out[key] = json_safe(item)
        return out
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return clip(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw[:1024]).decode("ascii")
    if isinstance(value, dict):
        return {clip(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return clip(str(value))


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None
