"""datasource_failure: the data source cannot be reached (`SELECT 1`, or HTTP GET → 2xx).

An HTTP source that redirects is not reachable unless the alert sets `follow_redirects: true`
(then up to `checks.http_source.MAX_REDIRECTS` hops, each under the destination policy).

Fires after `failures_before_alert` failed evaluations in a row; the count is kept in the
alert's check_state (`consecutive_failures`), which the evaluator saves and dry runs only read.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from datamantri_alerts.checks.base import CheckConfig, CheckContext, Outcome, Severity
from datamantri_alerts.limits import Count, Line, TimeoutSeconds


class DatasourceFailureConfig(CheckConfig):
    datasource_id: Line = Field(min_length=1)
    timeout_seconds: TimeoutSeconds = 10
    failures_before_alert: Count = 1
    follow_redirects: bool = False


class DatasourceFailureCheck:
    type_name: ClassVar[str] = "datasource_failure"
    config_model: ClassVar[type[CheckConfig]] = DatasourceFailureConfig
    default_severity: ClassVar[Severity] = "critical"
    description: ClassVar[str] = "Data source connectivity failure"

    def evaluate(self, config: DatasourceFailureConfig, ctx: CheckContext) -> Outcome:
        from datamantri_alerts.checks.sources import load_datasource, probe

        source = load_datasource(ctx, config.datasource_id)
        result = probe(
            source,
            config.timeout_seconds,
            follow_redirects=config.follow_redirects,
            pool=ctx.sources,
        )
        previous = ctx.check_state.get("consecutive_failures", 0)
        previous = previous if isinstance(previous, int) and previous >= 0 else 0
        details = {
            "datasource_id": source.id,
            "duration_ms": result.duration_ms,
            "failures_before_alert": config.failures_before_alert,
            **result.details,
        }
        if result.reachable:
            outcome = Outcome.ok(result.summary, consecutive_failures=0, **details)
            outcome.check_state = {"consecutive_failures": 0}
            return outcome
        failures = previous + 1
        details["consecutive_failures"] = failures
        if failures >= config.failures_before_alert:
            outcome = Outcome.firing(result.summary, **details)
        else:
            outcome = Outcome.ok(
                f"{result.summary} (failure {failures} of {config.failures_before_alert} "
                "before alerting)",
                **details,
            )
        outcome.check_state = {"consecutive_failures": failures}
        return outcome


CHECK = DatasourceFailureCheck()
