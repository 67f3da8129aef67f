"""Maintenance windows: named recurring time intervals (as Alertmanager `time_intervals`) or
one-off periods, during which the alerts that name them (`mute_during`) notify nothing.

A recurring window matches an instant when every field it gives matches the instant's wall
clock in `location` (an IANA zone, default UTC); within a field, any one item matching is
enough, and a field left out matches everything:

* `times`: `HH:MM-HH:MM` ranges (or `{start_time, end_time}`), start inclusive, end exclusive,
  `24:00` allowed as an end;
* `weekdays`: names or `monday:friday` ranges;
* `days_of_month`: numbers or ranges, negative from the end of the month (`-1` the last day);
* `months`: names or numbers, or ranges (`june:august`).

The wall clock decides, as in Alertmanager: on the day the clocks go forward, a 02:00-03:00
window in Europe/Berlin does not happen (that hour does not exist there); on the day they go
back, it lasts the two real hours the wall clock shows 02:xx. A one-off window gives `start`
and `end` instants with an offset instead, end exclusive.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datamantri_alerts.errors import InputError

WEEKDAYS = [day.lower() for day in calendar.day_name]  # monday first, as date.weekday()
MONTHS = [name.lower() for name in calendar.month_name][1:]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"

#: How far `next_change` looks ahead for a recurring window.
HORIZON = timedelta(days=400)

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _minutes(text: str, *, end: bool) -> int:
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    total = hours * 60 + minutes
    if minutes > 59 or total > 24 * 60 or (total == 24 * 60 and not end):
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    return total


def _range(item: Any, names: list[str] | None, low: int, high: int) -> tuple[int, int]:
    """`a` or `a:b` (names or numbers) as an inclusive pair of numbers."""
    text = str(item).strip().lower()
    parts = text.split(":") if ":" in text[1:] else [text]
    if len(parts) > 2:
        raise ValueError(f"{item!r} is not a value or a range a:b")

    def one(part: str) -> int:
        part = part.strip()
        if names is not None and part in names:
            return names.index(part) + low
        try:
            number = int(part)
        except ValueError:
            known = f" (e.g. {names[0]}:{names[4]})" if names else ""
            raise ValueError(f"{item!r} is not a value or a range{known}") from None
        if not (low <= abs(number) <= high) or (number < 0 and names is not None):
            raise ValueError(f"{item!r} is out of range {low}..{high}")
        return number

    first, last = one(parts[0]), one(parts[-1])
    if (first > 0) == (last > 0) and first > last:
        raise ValueError(f"{item!r}: the range ends before it starts")
    return first, last


class WindowSpec(BaseModel):
    """One `maintenance_windows:` item as written."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=2_000)
    times: list[Any] | None = None
    weekdays: list[Any] | None = None
    days_of_month: list[Any] | None = None
    months: list[Any] | None = None
    location: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("times")
    @classmethod
    def _times(cls, value: list[Any] | None) -> list[Any] | None:
        for item in value or []:
            start, end = _edges(item)
            if _minutes(start, end=False) >= _minutes(end, end=True):
                raise ValueError(f"{item!r}: the end must be after the start")
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[Any] | None) -> list[Any] | None:
        for item in value or []:
            _range(item, WEEKDAYS, 0, 6)
        return value

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: list[Any] | None) -> list[Any] | None:
        for item in value or []:
            _range(item, None, 1, 31)
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[Any] | None) -> list[Any] | None:
        for item in value or []:
            _range(item, MONTHS, 1, 12)
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone offset, e.g. 2026-01-31T09:00:00+00:00")
        return value

    @model_validator(mode="after")
    def _kind(self) -> WindowSpec:
        recurring = any(
            field is not None
            for field in (self.times, self.weekdays, self.days_of_month, self.months)
        )
        if (self.start is None) != (self.end is None):
            raise ValueError("a one-off window needs both start and end")
        if self.start is not None and recurring:
            raise ValueError("give either start/end (one-off) or times/weekdays/... (recurring)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.start is None and not recurring:
            raise ValueError("give times, weekdays, days_of_month or months, or start and end")
        return self

    def stored(self) -> dict[str, Any]:
        """The definition as stored and exported (instants as ISO text, unset fields left out)."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"name"})
        if not data.get("description"):
            data.pop("description", None)
        return data


def validate_window(raw: Any, field: str = "maintenance_windows") -> WindowSpec:
    """A window document checked; InputError names the field and the problem."""
    from datamantri_alerts.schema import format_validation_error

    if not isinstance(raw, Mapping):
        raise InputError("a maintenance window must be a mapping of fields", field=field)
    try:
        return WindowSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise format_validation_error(exc, field) from None


@dataclass(frozen=True)
class Window:
    """A window ready to answer `contains(instant)`."""

    name: str
    spec: WindowSpec

    @classmethod
    def of(cls, name: str, stored: Mapping[str, Any]) -> Window:
        return cls(name, WindowSpec.model_validate({**stored, "name": name}))

    def contains(self, at: datetime) -> bool:
        """Whether the aware instant `at` is inside the window."""
        spec = self.spec
        if spec.start is not None and spec.end is not None:
            return spec.start <= at < spec.end
        local = at.astimezone(ZoneInfo(spec.location))
        return self._day_matches(local.date()) and self._time_matches(
            local.hour * 60 + local.minute
        )

    def _day_matches(self, day: date) -> bool:
        spec = self.spec
        if spec.weekdays is not None and not _any_in(
            day.weekday(), (_range(i, WEEKDAYS, 0, 6) for i in spec.weekdays)
        ):
            return False
        if spec.months is not None and not _any_in(
            day.month, (_range(i, MONTHS, 1, 12) for i in spec.months)
        ):
            return False
        if spec.days_of_month is not None:
            length = calendar.monthrange(day.year, day.month)[1]
            pairs = []
            for item in spec.days_of_month:
                first, last = _range(item, None, 1, 31)
                pairs.append(
                    (
                        first if first > 0 else length + 1 + first,
                        last if last > 0 else length + 1 + last,
                    )
                )
            if not _any_in(day.day, pairs):
                return False
        return True

    def _time_matches(self, minute: int) -> bool:
        if self.spec.times is None:
            return True
        for item in self.spec.times:
            start, end = _edges(item)
            if _minutes(start, end=False) <= minute < _minutes(end, end=True):
                return True
        return False

    def next_change(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(start, end) of the window's current or next occurrence from `now`: start is None
        while inside it (it started before), both None when it never comes again (within
        `HORIZON` for a recurring window)."""
        spec = self.spec
        if spec.start is not None and spec.end is not None:
            if now >= spec.end:
                return None, None
            return (None if now >= spec.start else spec.start), spec.end
        start: datetime | None = None
        inside = self.contains(now)
        for candidate in self._boundaries(now):
            if not inside and self.contains(candidate):
                start, inside = candidate, True
            elif inside and not self.contains(candidate):
                return start, candidate
        return (start, None) if start is not None else (None, None)

    def _boundaries(self, now: datetime) -> Iterable[datetime]:
        """Every instant after `now` at which the window may start or end, in order: on each
        local day that matches (or follows one that does), its midnight, its range edges (both
        readings of an ambiguous wall time) and the whole UTC hours (clock changes)."""
        zone = ZoneInfo(self.spec.location)
        edges = {0}
        for item in self.spec.times or []:
            start, end = _edges(item)
            edges.update({_minutes(start, end=False), _minutes(end, end=True)})
        day = now.astimezone(zone).date()
        last_day = (now + HORIZON).astimezone(zone).date()
        previous_matches = self._day_matches(day - timedelta(days=1))
        latest = now
        while day <= last_day:
            matches = self._day_matches(day)
            if matches or previous_matches:
                midnight = datetime.combine(day, time(0))
                found: set[datetime] = set()
                for minute in edges:
                    wall = midnight + timedelta(minutes=minute)
                    for fold in (0, 1):
                        found.add(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC))
                first = midnight.replace(tzinfo=zone).astimezone(UTC)
                found.update(first + timedelta(hours=h) for h in range(26))
                for candidate in sorted(found):
                    if candidate > latest:
                        latest = candidate
                        yield candidate
            previous_matches = matches
            day += timedelta(days=1)


def _edges(item: Any) -> tuple[str, str]:
    """(start, end) texts of a `times` item: `HH:MM-HH:MM` or {start_time, end_time}."""
    if isinstance(item, Mapping):
        return str(item.get("start_time", "")), str(item.get("end_time", ""))
    start, _, end = str(item).partition("-")
    return start, end


def _any_in(value: int, pairs: Iterable[tuple[int, int]]) -> bool:
    return any(first <= value <= last for first, last in pairs)


def active_windows(windows: Iterable[Window], names: Iterable[str], at: datetime) -> list[str]:
    """Names among `names` whose window contains `at` (unknown names match nothing)."""
    by_name = {w.name: w for w in windows}
    return [name for name in names if name in by_name and by_name[name].contains(at)]
