"""query_slow: a probe query takes too long, or a query on the database has run too long."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity


class QuerySlowConfig(CheckConfig):
    datasource_id: str = Field(min_length=1)
    threshold_seconds: float = Field(gt=0, le=86_400)
    query: str | None = Field(default=None, min_length=1)
    #: Probe mode cancels the query at this bound; default: twice the threshold, at least +5 s.
    timeout_seconds: float | None = Field(default=None, gt=0, le=3_600)

    def timeout(self) -> float:
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        return max(self.threshold_seconds * 2, self.threshold_seconds + 5)


class QuerySlowCheck:
    type_name: ClassVar[str] = "query_slow"
    config_model: ClassVar[type[CheckConfig]] = QuerySlowConfig
    default_severity: ClassVar[Severity] = "warning"
    description: ClassVar[str] = "Slow query"

    def evaluate(self, config: QuerySlowConfig, ctx: CheckContext) -> Outcome:
        raise NotImplementedError  # filled in by the checks work (issue 3)


CHECK = QuerySlowCheck()
