"""Checks of raw input that need no schema: control characters, nesting depth, durations.

Used by the document loader and the models (`schema.py`, `limits.py`) and by the CLI for option
values (`cli/input_text.py`); plain Python, so checking a command line imports nothing heavy.
Every refusal is an `InputError` (or, inside a pydantic validator, a ValueError) naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from datamantri_alerts.errors import InputError
from datamantri_alerts.fieldpath import field_path

#: The longest duration any input may ask for: 100 years (a `timedelta` overflows at 10**9 days,
#: a `datetime` at year 9999; `now` minus this stays far inside both).
MAX_DURATION = timedelta(days=36_525)
#: Times given as input lie between these (UTC), so converting and comparing them never overflows.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
#: How deeply a YAML/JSON document may nest mappings and lists.
MAX_DEPTH = 32
#: How many values (after YAML aliases are expanded) a document may hold.
MAX_VALUES = 500_000

#: C0 control characters (U+0000 to U+001F); tab and newline are allowed in free text. Other
#: invisible characters (DEL, C1, bidi overrides) are stored and escaped wherever text is shown.
_CONTROL = frozenset(chr(c) for c in range(0x20))
TEXT_ALLOWED = frozenset("\t\n\r")
NOTHING_ALLOWED: frozenset[str] = frozenset()


def bounded_duration(amount: float, unit: str, field: str) -> timedelta:
    """`amount` `unit`s (seconds, minutes, hours, days, weeks) as a timedelta.

    Raises InputError naming field when the amount is not finite, not positive, or longer
    than MAX_DURATION.
    """
    seconds_per = {"seconds": 1, "minutes": 60, "hours": 3_600, "days": 86_400, "weeks": 604_800}
    if amount != amount or amount <= 0:  # NaN or not positive
        raise InputError("must be more than zero", field)
    if amount * seconds_per[unit] > MAX_DURATION.total_seconds():
        raise InputError(f"at most {MAX_DURATION.days // 365} years", field)
    return timedelta(**{unit: amount})


def bounded_time(value: datetime) -> datetime:
    """value (aware) converted to UTC; ValueError unless it lies between MIN_TIME and MAX_TIME."""
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-01-31T09:00:00+00:00")
    try:
        utc_value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not MIN_TIME <= utc_value <= MAX_TIME:
        raise ValueError(
            f"must be between {MIN_TIME.date().isoformat()} and {MAX_TIME.date().isoformat()}"
        )
    return utc_value


def control_character(text: str, *, allow: frozenset[str] = TEXT_ALLOWED) -> str | None:
    """The first control character in text that allow does not admit, else None."""
    for ch in text:
        if ch in _CONTROL and ch not in allow:
            return ch
    return None


def describe_control(ch: str) -> str:
    """How a refusal names ch: `a NUL character`, `a control character (U+001B)`."""
    return "a NUL character" if ch == "\0" else f"a control character (U+{ord(ch):04X})"


def check_cli_text(value: str | None, field: str, *, multiline: bool = False) -> str | None:
    """A CLI flag's text: raises InputError naming field when it holds a control character."""
    if value is None:
        return None
    ch = control_character(value, allow=TEXT_ALLOWED if multiline else NOTHING_ALLOWED)
    if ch is not None:
        raise InputError(f"must not contain {describe_control(ch)}", field)
    return value


def check_document(document: Any, prefix: str = "") -> None:
    """Refuse a decoded YAML/JSON document nested deeper than MAX_DEPTH, holding more than
    MAX_VALUES values (YAML aliases can multiply a small file), or holding a string (value or
    key, at any depth) with a control character other than tab and newline.

    Walks iteratively, so a hostile document cannot exhaust the stack. Raises InputError naming
    the path of the offending value (e.g. `alerts[0].name`).
    """
    start: list[str | int] = [prefix] if prefix else []
    stack: list[tuple[Any, list[str | int]]] = [(document, start)]
    seen = 0
    while stack:
        value, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise InputError(f"the document holds more than {MAX_VALUES} values")
        depth = len(path) - len(start)
        if isinstance(value, str):
            ch = control_character(value)
            if ch is not None:
                where = field_path(*path) or None
                raise InputError(f"must not contain {describe_control(ch)}", where)
            continue
        if not isinstance(value, Mapping | list | tuple):
            continue
        if depth >= MAX_DEPTH:
            raise InputError(f"nested more than {MAX_DEPTH} levels deep", field_path(*path) or None)
        if isinstance(value, Mapping):
            for key, item in reversed(list(value.items())):
                key_path = [*path, key if isinstance(key, str) else str(key)]
                if isinstance(key, str):
                    ch = control_character(key, allow=NOTHING_ALLOWED)
                    if ch is not None:
                        raise InputError(
                            f"key {key!r} must not contain {describe_control(ch)}",
                            field_path(*path) or None,
                        )
                stack.append((item, key_path))
        else:
            for index in reversed(range(len(value))):
                stack.append((value[index], [*path, index]))
