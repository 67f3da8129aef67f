"""dashboard_failure: one of the last N finished refresh runs of a dashboard failed."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity
from datamantri_alerts.checks.job_runs import evaluate_job


class DashboardFailureConfig(CheckConfig):
    dashboard_id: str = Field(min_length=1)
    check_last_n_runs: int = Field(default=1, ge=1, le=1000)
    max_hours_without_run: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=30, gt=0, le=600)


class DashboardFailureCheck:
    type_name: ClassVar[str] = "dashboard_failure"
    config_model: ClassVar[type[CheckConfig]] = DashboardFailureConfig
    default_severity: ClassVar[Severity] = "warning"
    description: ClassVar[str] = "Dashboard refresh failure"

    def evaluate(self, config: DashboardFailureConfig, ctx: CheckContext) -> Outcome:
        return evaluate_job(
            ctx,
            "dashboard",
            config.dashboard_id,
            config.check_last_n_runs,
            config.max_hours_without_run,
            config.timeout_seconds,
        )


CHECK = DashboardFailureCheck()
