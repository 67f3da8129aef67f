"""`alerts status`: overdue warning, recent runs, channels configured or missing (names only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import EvaluatorRun
from tests.conftest import Cli

WEBHOOK = "https://hooks.slack.com/services/T0/B0/STATUSSECRET"


def add_run(url: str, finished_ago: timedelta | None, outcome: str = "ok") -> None:
    now = datetime.now(UTC)
    store = open_store(url)
    with store.transaction() as session:
        session.execute(
            insert(EvaluatorRun),
            [
                {
                    "host": "h1",
                    "pid": 4242,
                    "started_at": now - (finished_ago or timedelta()) - timedelta(seconds=3),
                    "finished_at": None if finished_ago is None else now - finished_ago,
                    "outcome": outcome,
                    "evaluated": 7,
                    "notifications_sent": 2,
                }
            ],
        )
    store.dispose()


def test_no_run_yet_is_overdue(cli: Cli) -> None:
    result = cli("status")
    assert result.exit_code == 1
    assert "overdue" in result.stderr and "no run has ever finished" in result.stderr
    assert cli("status", "--json").json()["overdue"] is True


def test_recent_run_is_healthy_and_stale_one_is_overdue(cli: Cli, sqlite_url: str) -> None:
    add_run(sqlite_url, timedelta(seconds=30))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "evaluator: ok" in result.stdout and "h1:4242" in result.stdout
    data = cli("status", "--json").json()
    assert data["overdue"] is False
    assert data["runs"][0]["evaluated"] == 7 and data["runs"][0]["duration_seconds"] == 3.0

    stale = cli("status", "--expected-interval", "10s", "--json")
    assert stale.exit_code == 1 and stale.json()["overdue"] is True
    assert cli("status", "--expected-interval", "often").exit_code == 2


def test_channels_report_names_never_values(
    cli: Cli, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_run(sqlite_url, timedelta(seconds=5))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-status")
    data = cli("status", "--json").json()
    channels = {c["name"]: c for c in data["channels"]}
    assert channels["slack"]["configured"] is True
    assert channels["slack"]["fallback_set"] is True
    assert channels["teams"]["fallback_set"] is False
    assert channels["email"]["configured"] is False
    assert any("SMTP_HOST" in p for p in channels["email"]["problems"])
    table = cli("status")
    for output in (table.output, cli("status", "--json").output):
        assert "STATUSSECRET" not in output and "hunter2-status" not in output
    assert "SLACK_WEBHOOK_URL set" in table.stdout
    assert "TEAMS_WEBHOOK_URL not set" in table.stdout
