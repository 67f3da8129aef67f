"""dashboard_failure: refresh runs of a dashboard (recorded), and refreshes that stopped."""

from __future__ import annotations

from datetime import timedelta

from tests.checks.conftest import Harness
from tests.conftest import utc

NOW = utc(2025, 6, 2, 12, 0)


def test_dashboard_failure_reads_dashboard_runs(harness: Harness) -> None:
    harness.add_job("dashboard", "kpis")
    harness.freeze(NOW)
    harness.record("kpis", "failed", NOW - timedelta(minutes=10), error="refresh timed out")
    result = harness.run("dashboard_failure", {"dashboard_id": "kpis"})
    assert result.outcome == "firing"
    assert "refresh run" in result.summary
    assert result.severity == "warning"
    assert result.details["dashboard_id"] == "kpis"


def test_dashboard_runs_are_not_pipeline_runs(harness: Harness) -> None:
    harness.add_job("dashboard", "kpis")
    harness.add_job("pipeline", "etl")
    harness.freeze(NOW)
    harness.record("etl", "failed", NOW - timedelta(minutes=10), error="pipeline broke")
    harness.record("kpis", "success", NOW - timedelta(hours=5))
    result = harness.run("dashboard_failure", {"dashboard_id": "kpis", "check_last_n_runs": 5})
    assert result.outcome == "ok", result.summary
    stale = harness.run("dashboard_failure", {"dashboard_id": "kpis", "max_hours_without_run": 4})
    assert stale.outcome == "firing"
