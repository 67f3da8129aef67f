"""datasource_failure: the data source cannot be reached (`SELECT 1`, or HTTP GET → 2xx)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity


class DatasourceFailureConfig(CheckConfig):
    datasource_id: str = Field(min_length=1)
    timeout_seconds: float = Field(default=10, gt=0, le=600)
    failures_before_alert: int = Field(default=1, ge=1, le=1000)


class DatasourceFailureCheck:
    type_name: ClassVar[str] = "datasource_failure"
    config_model: ClassVar[type[CheckConfig]] = DatasourceFailureConfig
    default_severity: ClassVar[Severity] = "critical"
    description: ClassVar[str] = "Data source connectivity failure"

    def evaluate(self, config: DatasourceFailureConfig, ctx: CheckContext) -> Outcome:
        raise NotImplementedError  # filled in by the checks work (issue 3)


CHECK = DatasourceFailureCheck()
