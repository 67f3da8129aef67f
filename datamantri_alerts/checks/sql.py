"""sql: a query on a data source returns at least one row.

The first `max_rows` rows go into the details (values made JSON-safe); the query is cancelled
once it runs `timeout_seconds`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity
from datamantri_alerts.checks.values import json_safe, truncate
from datamantri_alerts.limits import Count, Line, Text, TimeoutSeconds


class SqlConfig(CheckConfig):
    datasource_id: Line = Field(min_length=1)
    query: Text = Field(min_length=1)
    max_rows: Count = 20
    timeout_seconds: TimeoutSeconds = 30


class SqlCheck:
    type_name: ClassVar[str] = "sql"
    config_model: ClassVar[type[CheckConfig]] = SqlConfig
    default_severity: ClassVar[Severity] = "warning"
    description: ClassVar[str] = "SQL query returns rows"

    def evaluate(self, config: SqlConfig, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import load_datasource, open_source

        source = load_datasource(ctx, config.datasource_id)
        with open_source(
            source, config.timeout_seconds, query_bound=config.timeout_seconds, pool=ctx.sources
        ) as conn:
            result = conn.execute(
                config.query, bound=config.timeout_seconds, max_rows=config.max_rows
            )
        rows = [
            {column: json_safe(value) for column, value in zip(result.columns, row, strict=False)}
            for row in result.rows
        ]
        count = f"{len(rows)}+" if result.truncated else str(len(rows))
        details = {
            "datasource_id": source.id,
            "query": truncate(config.query),
            "columns": result.columns,
            "rows": rows,
            "row_count": len(rows),
            "truncated": result.truncated,
            "duration_seconds": round(result.duration, 3),
        }
        if not rows:
            return Outcome.ok(f"query on {source.label} returned no rows", **details)
        noun = "row" if count == "1" else "rows"
        return Outcome.firing(f"query on {source.label} returned {count} {noun}", **details)


CHECK = SqlCheck()
