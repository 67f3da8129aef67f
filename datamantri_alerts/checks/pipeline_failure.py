"""pipeline_failure: one of the last N finished runs failed, or no run finished for too long."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity
from datamantri_alerts.checks.job_runs import evaluate_job
from datamantri_alerts.limits import Count, Hours, Line, TimeoutSeconds


class PipelineFailureConfig(CheckConfig):
    pipeline_id: Line = Field(min_length=1)
    check_last_n_runs: Count = 1
    max_hours_without_run: Hours | None = None
    timeout_seconds: TimeoutSeconds = 30


class PipelineFailureCheck:
    type_name: ClassVar[str] = "pipeline_failure"
    config_model: ClassVar[type[CheckConfig]] = PipelineFailureConfig
    default_severity: ClassVar[Severity] = "critical"
    description: ClassVar[str] = "Pipeline failure"

    def evaluate(self, config: PipelineFailureConfig, ctx: CheckContext) -> Outcome:
        return evaluate_job(
            ctx,
            "pipeline",
            config.pipeline_id,
            config.check_last_n_runs,
            config.max_hours_without_run,
            config.timeout_seconds,
        )


CHECK = PipelineFailureCheck()
