"""freshness: dbt-style `warn_after` / `error_after` on the newest timestamp of a table.

The age is the time from the newest `timestamp_column` value (optionally among the rows that
match `filter`) to now. Past `error_after` the outcome is `firing` with severity `critical`,
past `warn_after` (only) `firing` with severity `warning`, else `ok`: the severity moves with
the condition, as dbt's `error` / `warn` / `pass` do (the same rule: an age strictly greater
than a threshold crosses it, error wins over warn).

A table without rows (or without rows matching `filter`) has no newest value: dbt stops with a
runtime error there; here it is `firing` at the highest configured threshold, because data
that never arrived is as stale as data can be and must not read as "could not evaluate".

Timestamps are read like `sla_breach` reads them (`checks.instants.read_instants`): aware values
converted to UTC whatever the session zone, naive ones read as wall-clock times in
`timestamp_timezone` (default UTC, as dbt assumes), MySQL/MariaDB TIMESTAMPs as the instants
they store. Table, schema and column names are identifiers SQLAlchemy quotes; `filter` and
`query` are SQL the alert's author wrote, run read-only like a `sql` alert's query. One bounded
`SELECT max(column) FROM ... [WHERE filter]` per evaluation, computed by the database.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from datamantri_alerts.checks.base import CannotEvaluate, CheckConfig, CheckContext, Outcome
from datamantri_alerts.checks.base import Severity as SeverityName
from datamantri_alerts.checks.instants import read_instants
from datamantri_alerts.checks.values import (
    json_safe,
    parse_timestamp,
    truncate,
    valid_zone_name,
    zone_named,
)
from datamantri_alerts.clock import format_duration

if TYPE_CHECKING:
    from datamantri_alerts.checks.sources import QueryResult, SourceConnection

Period = Literal["minute", "hour", "day"]

#: Seconds per `period`, and the unit letter used in summaries ("6h").
PERIOD_SECONDS: dict[str, int] = {"minute": 60, "hour": 3_600, "day": 86_400}
_PERIOD_UNIT = {"minute": "m", "hour": "h", "day": "d"}
_UNIT_PERIOD = {unit: period for period, unit in _PERIOD_UNIT.items()}
_SHORT_THRESHOLD = re.compile(r"^(\d{1,6})\s*([mhdMHD])$")


class Threshold(BaseModel):
    """`{count, period}` as dbt writes it: `{count: 6, period: hour}` is six hours. The short
    text `6h` (`30m`, `2d`; `--config warn_after=6h`) means the same and is stored as the
    mapping."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=100_000)
    period: Period

    @model_validator(mode="before")
    @classmethod
    def _short_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _SHORT_THRESHOLD.match(value.strip())
        if match is None:
            raise ValueError(
                f"{value!r} is not a threshold: write {{count: 6, period: hour}} or 6h, 30m, 2d"
            )
        return {"count": int(match.group(1)), "period": _UNIT_PERIOD[match.group(2).lower()]}

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.count * PERIOD_SECONDS[self.period])

    def __str__(self) -> str:
        return f"{self.count}{_PERIOD_UNIT[self.period]}"


#: How `alerts types` shows a threshold (its schema would otherwise be a bare reference).
_THRESHOLD_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "count": {"type": "integer", "minimum": 1},
                    "period": {"enum": list(PERIOD_SECONDS)},
                },
                "required": ["count", "period"],
            },
            {"type": "string"},
            {"type": "null"},
        ],
        "default": None,
        "description": "{count, period: minute|hour|day}, or 6h / 30m / 2d",
    }
)


class FreshnessConfig(CheckConfig):
    model_config = ConfigDict(serialize_by_alias=True)

    datasource_id: str = Field(min_length=1, description="The database data source to read")
    table: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="The table to read (without schema: `schema.table` is split at the dot)",
    )
    schema_name: str | None = Field(
        default=None,
        alias="schema",
        min_length=1,
        max_length=300,
        description="The table's schema (MySQL: database), named exactly",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=20_000,
        description="Instead of table: a SELECT whose rows are read as the table",
    )
    timestamp_column: str = Field(
        min_length=1,
        max_length=300,
        validation_alias=AliasChoices("timestamp_column", "loaded_at_field"),
        description="The load timestamp column (dbt's loaded_at_field is accepted too)",
    )
    timestamp_timezone: str = Field(
        default="UTC", description="The IANA zone of a naive timestamp column"
    )
    warn_after: Annotated[Threshold | None, _THRESHOLD_SCHEMA] = None
    error_after: Annotated[Threshold | None, _THRESHOLD_SCHEMA] = None
    filter: str | None = Field(
        default=None,
        min_length=1,
        max_length=5_000,
        description="A SQL boolean expression: only matching rows count (dbt's filter)",
    )
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @field_validator("timestamp_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return valid_zone_name(value)

    @field_validator("query")
    @classmethod
    def _one_statement(cls, value: str | None) -> str | None:
        # It is read as a subquery: a trailing `;` would end the statement early.
        return None if value is None else value.rstrip().rstrip(";").rstrip() or None

    @model_validator(mode="after")
    def _complete(self) -> FreshnessConfig:
        if self.table is None and self.query is None:
            raise ValueError("needs table (or query): what to read the timestamp column from")
        if self.table is not None and self.query is not None:
            raise ValueError("takes table or query, not both")
        if self.schema_name is not None and self.table is None:
            raise ValueError("schema goes with table, not with query")
        if self.warn_after is None and self.error_after is None:
            raise ValueError("needs warn_after or error_after (or both), as {count, period}")
        return self


class FreshnessCheck:
    type_name: ClassVar[str] = "freshness"
    config_model: ClassVar[type[CheckConfig]] = FreshnessConfig
    #: Used for `error` outcomes (could not evaluate); a firing outcome carries its own.
    default_severity: ClassVar[SeverityName] = "warning"
    description: ClassVar[str] = "Data older than warn_after / error_after (dbt-style)"
    #: The outcome's severity (warning or critical, by the threshold crossed) is the one used.
    severity_from_outcome: ClassVar[bool] = True

    def group_key(self, config: FreshnessConfig) -> tuple[str, float] | None:
        """Alerts on a table (no `query`, no `filter`) of one data source with one timeout are
        read together (`checks.base.GroupedCheck`); the others alone."""
        if config.table is None or config.filter is not None:
            return None
        return config.datasource_id, config.timeout_seconds

    def evaluate_group(
        self, configs: list[FreshnessConfig], contexts: list[CheckContext]
    ) -> list[Outcome | None]:
        """The newest load instant of every table in one statement (`newest_values_sql`),
        judged as `evaluate` judges one; None for every member when the statement could not
        answer (each is then evaluated alone and reports its own error), and for a member whose
        value is not a timestamp. Raises CannotEvaluate when the data source cannot be found or
        reached: every member's error, as it would be alone."""
        from datamantri_alerts.checks.base import GROUP_BOUND_SECONDS
        from datamantri_alerts.checks.instants import session_rendered_columns
        from datamantri_alerts.checks.newest import newest_values_sql
        from datamantri_alerts.checks.sources import load_datasource, open_source

        ctx = contexts[0]
        timeout = min(config.timeout_seconds for config in configs)
        bound = min(GROUP_BOUND_SECONDS, timeout)
        names = [split_table_name(c.table or "", c.schema_name) for c in configs]
        expected = [f"n{i}" for i in range(len(configs))]
        newest: list[datetime | ValueError | None] = []
        # Not finding or not reaching the data source is every member's answer, as it would
        # be alone (CannotEvaluate: the runner gives each member that error).
        source = load_datasource(ctx, configs[0].datasource_id)
        with open_source(source, timeout, query_bound=bound, pool=ctx.sources) as conn:
            tables = [
                (c.timestamp_column, table, schema)
                for c, (schema, table) in zip(configs, names, strict=True)
            ]
            try:
                result = conn.execute(
                    newest_values_sql(conn.identifiers, tables), bound=bound, max_rows=1
                )
            except CannotEvaluate:
                # A missing table or column, a lock, the group's bound: each member alone
                # says which, with its own timeout.
                return [None] * len(configs)
            if len(result.rows) != 1 or [c.lower() for c in result.columns] != expected:
                return [None] * len(configs)
            rendered = session_rendered_columns(conn, result)
            converted = _session_rendered_instants(conn, result, rendered, bound)
            [row] = result.rows
            for i, config in enumerate(configs):
                if i in converted:
                    newest.append(converted[i])
                    continue
                try:
                    zone = zone_named(config.timestamp_timezone)
                    if i in rendered:
                        newest.append(read_instants(conn, result, [i], zone, bound=bound)[0][0])
                    else:  # what read_instants does with a column the session did not render
                        newest.append(parse_timestamp(row[i], zone))
                except ValueError as exc:
                    newest.append(exc)
        now = ctx.clock.now()
        now_text = now.isoformat()
        outcomes: list[Outcome | None] = []
        for config, (_, table), value in zip(configs, names, newest, strict=True):
            if isinstance(value, ValueError):
                outcomes.append(None)
                continue
            # `table` is `_display_name(config)`: every member has a table.
            label = f"{table}.{config.timestamp_column}"
            details = {"datasource_id": source.id}
            outcomes.append(judge(config, label, value, now, details, now_text=now_text))
        return outcomes

    def evaluate(self, config: FreshnessConfig, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import load_datasource, open_source

        source = load_datasource(ctx, config.datasource_id)
        label = f"{_display_name(config)}.{config.timestamp_column}"
        bound = config.timeout_seconds
        with open_source(
            source, config.timeout_seconds, query_bound=bound, pool=ctx.sources
        ) as conn:
            sql = newest_loaded_at_sql(config, conn.identifiers)
            result = conn.execute(sql, bound=bound, max_rows=1)
            raw = result.rows[0][0] if result.rows else None
            try:
                newest = (
                    read_instants(
                        conn, result, [0], zone_named(config.timestamp_timezone), bound=bound
                    )[0][0]
                    if raw is not None
                    else None
                )
            except ValueError:
                raise CannotEvaluate(f"{label} holds {raw!r}, which is not a timestamp") from None
        now = ctx.clock.now()
        return judge(config, label, newest, now, details={"datasource_id": source.id})


def _session_rendered_instants(
    conn: SourceConnection, result: QueryResult, rendered_columns: set[int], bound: float
) -> dict[int, datetime | None]:
    """A group's MySQL/MariaDB TIMESTAMP values (renderings in the session's zone: no member's
    `timestamp_timezone` applies to them) as instants, by column, converted by the server in
    one statement for the whole group rather than one per member (`read_instants`). Empty on
    every other dialect, and when a value does not convert: each member then converts its own
    and reports its own error, as alone. `rendered_columns`: `session_rendered_columns`."""
    rendered = sorted(rendered_columns)
    if not rendered:
        return {}
    try:
        [values] = read_instants(conn, result, rendered, bound=bound)
    except ValueError:
        return {}
    return dict(zip(rendered, values, strict=True))


def judge(
    config: FreshnessConfig,
    label: str,
    newest: datetime | None,
    now: datetime,
    details: dict[str, Any] | None = None,
    *,
    now_text: str | None = None,
) -> Outcome:
    """The outcome for a newest load instant (aware, or None: no rows) seen at `now`
    (`now_text`: `now.isoformat()`, when the caller judges many at one `now`)."""
    warn_after, error_after = config.warn_after, config.error_after
    warn = None if warn_after is None else _threshold_parts(warn_after)
    error = None if error_after is None else _threshold_parts(error_after)
    # One dict, filled in the order the details have always had (the outcome keeps it).
    base: dict[str, Any] = {
        **(details or {}),
        "table": config.table,
        "schema": config.schema_name,
        "query": truncate(config.query) if config.query else None,
        "timestamp_column": config.timestamp_column,
        "timestamp_timezone": config.timestamp_timezone,
        "filter": truncate(config.filter) if config.filter else None,
        "warn_after": warn[0] if warn else None,
        "error_after": error[0] if error else None,
        "now": now.isoformat() if now_text is None else now_text,
        "newest_value": newest.isoformat() if type(newest) is datetime else json_safe(newest),
    }
    if newest is None:
        crossed, highest = ("error_after", error) if error is not None else ("warn_after", warn)
        assert highest is not None  # the config validator requires one of them
        none_text = "no rows match the filter" if config.filter else "no rows"
        base["age_seconds"] = None
        base["status"] = _DBT_STATUS[crossed]
        base["threshold_crossed"] = crossed
        return Outcome(
            "firing", f"{label}: {none_text}, past {crossed} {highest[0]}", base, _SEVERITY[crossed]
        )
    age = now - newest
    seconds = age.total_seconds()
    base["age_seconds"] = round(seconds, 3)
    if error is not None and age > error[1]:
        text = f"{label} is {format_duration(int(seconds))} old, past error_after {error[0]}"
        base["status"] = "error"
        base["threshold_crossed"] = "error_after"
        return Outcome("firing", text, base, "critical")
    if warn is not None and age > warn[1]:
        text = f"{label} is {format_duration(int(seconds))} old, past warn_after {warn[0]}"
        base["status"] = "warn"
        base["threshold_crossed"] = "warn_after"
        return Outcome("firing", text, base, "warning")
    lowest, within_parts = ("warn_after", warn) if warn is not None else ("error_after", error)
    assert within_parts is not None
    within = f"{lowest} {within_parts[0]}"
    if age < _NO_TIME:
        text = f"{label} is {format_age(-age)} in the future (clock skew?), within {within}"
    else:
        text = f"{label} is {format_duration(int(seconds))} old, within {within}"
    base["threshold_crossed"] = None
    base["status"] = "pass"
    return Outcome("ok", text, base)


_DBT_STATUS = {"error_after": "error", "warn_after": "warn"}
_SEVERITY: dict[str, SeverityName] = {"error_after": "critical", "warn_after": "warning"}
_NO_TIME = timedelta(0)
#: (text, delta) per (count, period): a run's thresholds are a handful of values, judged
#: thousands of times. Bounded: cleared when full (at most 300,000 distinct thresholds exist).
_THRESHOLD_PARTS: dict[tuple[int, str], tuple[str, timedelta]] = {}
_THRESHOLD_PARTS_MAX = 1_024


def _threshold_parts(threshold: Threshold) -> tuple[str, timedelta]:
    """(`str(threshold)`, `threshold.delta`), computed once per distinct threshold."""
    key = (threshold.count, threshold.period)
    parts = _THRESHOLD_PARTS.get(key)
    if parts is None:
        if len(_THRESHOLD_PARTS) >= _THRESHOLD_PARTS_MAX:
            _THRESHOLD_PARTS.clear()
        parts = _THRESHOLD_PARTS[key] = (str(threshold), threshold.delta)
    return parts


def format_age(age: timedelta) -> str:
    """An age as people read it (`clock.format_duration`): `45s`, `12m`, `7h 12m`, `3d 4h`."""
    return format_duration(int(age.total_seconds()))


def _display_name(config: FreshnessConfig) -> str:
    if config.table is None:
        return "query"
    return split_table_name(config.table, config.schema_name)[1]


def split_table_name(table_name: str, schema_name: str | None) -> tuple[str | None, str]:
    """(schema, table): with no schema given, `schema.table` is split at the last dot."""
    if schema_name is not None or "." not in table_name:
        return schema_name, table_name
    schema, _, name = table_name.rpartition(".")
    return schema or None, name


def newest_loaded_at_sql(config: FreshnessConfig, identifiers: Any) -> str:
    """`SELECT max(column) FROM <table or (query) AS loads> [WHERE (filter)]`, names quoted by
    the dialect's `identifiers` (`checks.newest`)."""
    from datamantri_alerts.checks.newest import newest_value_sql

    if config.table is not None:
        schema, name = split_table_name(config.table, config.schema_name)
        return newest_value_sql(
            identifiers, config.timestamp_column, table=name, schema=schema, where=config.filter
        )
    return newest_value_sql(
        identifiers, config.timestamp_column, query=config.query, where=config.filter
    )


CHECK = FreshnessCheck()
