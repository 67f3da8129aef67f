"""sla_breach: past today's expected load time (+ tolerance) and the data is still stale.

"Today" is the calendar day in the configured time zone; the deadline is today's wall-clock
`expected_load_time` there (on a DST change day it moves with the clocks), plus the tolerance
as elapsed minutes. The data is fresh when the newest `timestamp_column` value is at or after the
start of today in that zone. A DATE column is compared as a date; every other value is read as
an instant by `checks.instants` (time-zone-aware values converted to UTC whatever the session zone,
naive ones read as wall-clock times in `timestamp_timezone`, default UTC).

Table and column names are identifiers from config: SQLAlchemy quotes them, they are never
formatted into SQL text. One `SELECT max(column) FROM table` per evaluation (and, for a
MySQL/MariaDB TIMESTAMP column, one `SELECT UNIX_TIMESTAMP(...)` to read it as UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from datamantri_alerts.checks.base import (
    CannotEvaluate,
    CheckConfig,
    CheckContext,
    Outcome,
    Severity,
)
from datamantri_alerts.checks.instants import read_instants
from datamantri_alerts.checks.values import json_safe, valid_zone_name, zone_named
from datamantri_alerts.limits import Line, TimeoutSeconds, ToleranceMinutes

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SlaBreachConfig(CheckConfig):
    datasource_id: Line = Field(min_length=1)
    expected_load_time: Line
    tolerance_minutes: ToleranceMinutes = 0
    timezone: Line = "UTC"
    #: The zone of a naive timestamp column (PostgreSQL `timestamp`, MySQL `DATETIME`, SQLite
    #: text); None: the data source's freshness `timestamp_timezone` for its own column, or UTC.
    timestamp_timezone: Line | None = None
    table: Line | None = Field(default=None, min_length=1, max_length=300)
    timestamp_column: Line | None = Field(default=None, min_length=1, max_length=300)
    timeout_seconds: TimeoutSeconds = 30

    @field_validator("expected_load_time")
    @classmethod
    def _valid_hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
        return value

    @field_validator("timezone", "timestamp_timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        return None if value is None else valid_zone_name(value)


class SlaBreachCheck:
    type_name: ClassVar[str] = "sla_breach"
    config_model: ClassVar[type[CheckConfig]] = SlaBreachConfig
    default_severity: ClassVar[Severity] = "critical"
    description: ClassVar[str] = "Data freshness SLA breach"

    def evaluate(self, config: SlaBreachConfig, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import load_datasource, open_source

        source = load_datasource(ctx, config.datasource_id)
        freshness = source.freshness or {}
        table_name = config.table or freshness.get("table")
        column_name = config.timestamp_column or freshness.get("column")
        if not table_name or not column_name:
            raise CannotEvaluate(
                "sla_breach needs table and timestamp_column, in the alert or as the data "
                f"source's freshness ({source.label} has none)"
            )
        stamp_zone = config.timestamp_timezone
        if stamp_zone is None and (table_name, column_name) == (
            freshness.get("table"),
            freshness.get("column"),
        ):
            stamp_zone = freshness.get("timestamp_timezone")
        stamp_zone = stamp_zone or "UTC"
        window = sla_window(
            ctx.clock.now(), config.expected_load_time, config.tolerance_minutes, config.timezone
        )
        bound = config.timeout_seconds
        with open_source(
            source, config.timeout_seconds, query_bound=bound, pool=ctx.sources
        ) as conn:
            sql = newest_value_query(table_name, column_name, conn.identifiers)
            result = conn.execute(sql, bound=bound)
            raw = result.rows[0][0] if result.rows else None
            newest: date | datetime | None = raw if _is_date(raw) else None
            try:
                if raw is not None and newest is None:
                    instants = read_instants(conn, result, [0], zone_named(stamp_zone), bound=bound)
                    newest = instants[0][0]
            except ValueError:
                raise CannotEvaluate(
                    f"{table_name}.{column_name} holds {raw!r}, which is not a timestamp"
                ) from None
        fresh = is_fresh(newest, window)

        zone = config.timezone
        deadline_text = f"{window.deadline_local:%Y-%m-%d %H:%M} {zone}"
        newest_text = "no rows" if newest is None else f"newest {column_name} {json_safe(newest)}"
        details: dict[str, Any] = {
            "datasource_id": source.id,
            "table": table_name,
            "timestamp_column": column_name,
            "timezone": zone,
            "timestamp_timezone": stamp_zone,
            "now": window.now.isoformat(),
            "deadline": window.deadline_local.isoformat(),
            "start_of_day": window.start_of_day_local.isoformat(),
            "newest_value": json_safe(newest),
            "fresh": fresh,
            "past_deadline": window.past_deadline,
        }
        if not window.past_deadline:
            return Outcome.ok(
                f"{table_name}: before the deadline {deadline_text} ({newest_text})", **details
            )
        if fresh:
            return Outcome.ok(
                f"{table_name}: loaded today ({newest_text}), deadline {deadline_text}", **details
            )
        return Outcome.firing(
            f"{table_name}: not loaded today by the deadline {deadline_text} ({newest_text}, "
            f"older than {window.start_of_day_local:%Y-%m-%d %H:%M %Z})",
            **details,
        )


class SlaWindow:
    """Today's deadline and start of day in a zone, for one moment."""

    def __init__(self, now: datetime, deadline: datetime, start_of_day: datetime, zone: ZoneInfo):
        self.now = now
        self.deadline = deadline
        self.start_of_day = start_of_day
        self.zone = zone

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    @property
    def past_deadline(self) -> bool:
        return self.now > self.deadline

    @property
    def deadline_local(self) -> datetime:
        return self.deadline.astimezone(self.zone)

    @property
    def start_of_day_local(self) -> datetime:
        return self.start_of_day.astimezone(self.zone)


def sla_window(now: datetime, expected: str, tolerance_minutes: int, zone_name: str) -> SlaWindow:
    zone = ZoneInfo(zone_name)
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    hours, minutes = (int(part) for part in expected.split(":"))
    # A wall time the clocks skip (02:30 on a spring-forward day) resolves with the offset
    # before the change (fold=0), i.e. just after the gap; a repeated one to its first occurrence.
    expected_at = datetime.combine(today, time(hours, minutes), tzinfo=zone).astimezone(UTC)
    start_of_day = datetime.combine(today, time(0, 0), tzinfo=zone).astimezone(UTC)
    deadline = expected_at + timedelta(minutes=tolerance_minutes)
    return SlaWindow(now, deadline, start_of_day, zone)


def _is_date(value: Any) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def is_fresh(newest: date | datetime | None, window: SlaWindow) -> bool:
    """Whether the newest value (a DATE, or an aware instant) is from today in the window's zone."""
    if newest is None:
        return False
    if not isinstance(newest, datetime):
        return newest >= window.today
    return newest >= window.start_of_day


def newest_value_query(table_name: str, column_name: str, identifiers: Any) -> str:
    """`SELECT max(column) FROM [schema.]table` (split at the last dot), names quoted by the
    dialect's `identifiers` (`checks.newest`)."""
    from datamantri_alerts.checks.newest import newest_value_sql

    schema, _, name = table_name.rpartition(".") if "." in table_name else ("", "", table_name)
    return newest_value_sql(identifiers, column_name, table=name, schema=schema or None)


CHECK = SlaBreachCheck()
