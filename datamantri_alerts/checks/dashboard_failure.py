"""dashboard_failure: one of the last N finished refresh runs of a dashboard failed."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity
from datamantri_alerts.checks.job_runs import evaluate_job
from datamantri_alerts.limits import Count, Hours, Line, TimeoutSeconds


class DashboardFailureConfig(CheckConfig):
    dashboard_id: Line = Field(min_length=1)
    check_last_n_runs: Count = 1
    max_hours_without_run: Hours | None = None
    timeout_seconds: TimeoutSeconds = 30


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
