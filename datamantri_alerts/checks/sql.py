"""sql: a query on a data source returns at least one row."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity


class SqlConfig(CheckConfig):
    datasource_id: str = Field(min_length=1)
    query: str = Field(min_length=1)
    max_rows: int = Field(default=20, ge=1, le=1_000)
    timeout_seconds: float = Field(default=30, gt=0, le=600)


class SqlCheck:
    type_name: ClassVar[str] = "sql"
    config_model: ClassVar[type[CheckConfig]] = SqlConfig
    default_severity: ClassVar[Severity] = "warning"
    description: ClassVar[str] = "SQL query returns rows"

    def evaluate(self, config: SqlConfig, ctx: CheckContext) -> Outcome:
        raise NotImplementedError  # filled in by the checks work (issue 3)


CHECK = SqlCheck()
