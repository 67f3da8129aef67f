"""`alerts history`: list with filters, show, resolve, prune in batches, the per-day chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.conftest import Cli

NOW = datetime.now(UTC)


@pytest.fixture
def seeded(sqlite_url: str, cli: Cli) -> Any:
    for name in ("etl", "dash"):
        result = cli(
            "create", "--name", name, "--type", "pipeline_failure",
            "--config", "pipeline_id=p1", "--channel", "slack",
            "--slack", "https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
        )  # fmt: skip
        if result.exit_code != 0 and "pipeline" in result.output:
            cli("pipelines", "add", "p1", "--name", "P1")
            result = cli(
                "create", "--name", name, "--type", "pipeline_failure",
                "--config", "pipeline_id=p1", "--channel", "slack",
                "--slack", "https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
            )  # fmt: skip
        assert result.exit_code == 0, result.output
    store = open_store(sqlite_url)
    with store.transaction() as session:
        etl = session.scalars(select(Alert).where(Alert.name == "etl")).one()
        dash = session.scalars(select(Alert).where(Alert.name == "dash")).one()

        def episode(alert: Alert, hours_ago: float, **fields: Any) -> AlertHistory:
            row = AlertHistory(
                alert_id=alert.id,
                alert_name=alert.name,
                triggered_at=NOW - timedelta(hours=hours_ago),
                severity=fields.pop("severity", "warning"),
                summary=fields.pop("summary", "run 42 failed"),
                details={"run_id": 42},
                notifications_sent=[],
                notification_errors=[],
                **fields,
            )
            session.add(row)
            session.flush()
            return row

        old = episode(etl, 30 * 24, resolved_at=NOW - timedelta(days=29))
        mid = episode(dash, 48, severity="critical", resolved_at=NOW - timedelta(hours=47))
        open_ = episode(etl, 2)
        etl.state, etl.current_episode_id = "firing", open_.id
        session.add(
            Notification(
                dedup_key=f"{open_.id}:firing::slack:x",
                alert_id=etl.id,
                history_id=open_.id,
                channel="slack",
                recipient="https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
                kind="firing",
                status="failed",
                payload={},
                attempts=1,
                last_error="HTTP 404: no_service",
                created_at=NOW,
                next_attempt_at=NOW,
            )
        )
        ids = {"old": old.id, "mid": mid.id, "open": open_.id, "etl": etl.id}
    yield store, ids
    store.dispose()


def test_list_newest_first_with_filters(seeded: Any, cli: Cli) -> None:
    _, ids = seeded
    rows = cli("history", "--json").json()
    assert [r["id"] for r in rows] == [ids["open"], ids["mid"], ids["old"]]
    assert rows[0]["alert_name"] == "etl" and rows[0]["resolved_at"] is None
    assert rows[0]["channels"] == {"slack": "failed"}
    assert rows[1]["duration_seconds"] == 3600
    assert [r["id"] for r in cli("history", "--open", "--json").json()] == [ids["open"]]
    assert [r["id"] for r in cli("history", "--severity", "critical", "--json").json()] == [
        ids["mid"]
    ]
    assert [r["id"] for r in cli("history", "--since", "24h", "--json").json()] == [ids["open"]]
    since_iso = (NOW - timedelta(days=3)).isoformat()
    assert len(cli("history", "--since", since_iso, "--json").json()) == 2
    assert len(cli("history", "--alert", "etl", "--json").json()) == 2
    assert len(cli("history", "--limit", "1", "--json").json()) == 1

    table = cli("history")
    assert table.exit_code == 0
    assert "slack ✗" in table.stdout and "open" in table.stdout and "1h" in table.stdout
    assert "SECRETTOKEN" not in table.output

    assert cli("history", "--since", "yesterday").exit_code == 2
    assert cli("history", "--severity", "loud").exit_code == 2
    assert cli("history", "--alert", "nope").exit_code == 2


def test_show_lists_deliveries_with_reason_and_masks_recipient(seeded: Any, cli: Cli) -> None:
    _, ids = seeded
    shown = cli("history", "show", str(ids["open"]))
    assert shown.exit_code == 0, shown.output
    assert "HTTP 404: no_service" in shown.stdout
    assert "SECRETTOKEN" not in shown.output
    data = cli("history", "show", str(ids["open"]), "--json").json()
    assert data["deliveries"][0]["recipient"] == "https://hooks.slack.com/***"
    assert data["details"] == {"run_id": 42}
    assert cli("history", "show", "9999").exit_code == 2


def test_resolve_closes_episode_and_returns_alert_to_ok(seeded: Any, cli: Cli) -> None:
    store, ids = seeded
    result = cli("history", "resolve", str(ids["open"]), "--note", "fixed upstream")
    assert result.exit_code == 0, result.output
    with store.session() as session:
        episode = session.get(AlertHistory, ids["open"])
        alert = session.get(Alert, ids["etl"])
    assert episode is not None and episode.resolved_at is not None
    assert episode.resolution_notes == "fixed upstream"
    assert alert is not None and (alert.state, alert.current_episode_id) == ("ok", None)
    again = cli("history", "resolve", str(ids["open"]), "--note", "more")
    assert "already resolved" in again.stdout


def test_prune_deletes_old_closed_episodes_in_batches(seeded: Any, cli: Cli) -> None:
    store, ids = seeded
    with store.transaction() as session:
        session.execute(
            insert(AlertHistory),
            [
                {
                    "alert_id": ids["etl"],
                    "alert_name": "etl",
                    "triggered_at": NOW - timedelta(days=200, minutes=i),
                    "resolved_at": NOW - timedelta(days=199),
                    "severity": "info",
                    "notifications_sent": [],
                    "notification_errors": [],
                }
                for i in range(1_234)  # more than one delete batch
            ],
        )
    assert cli("history", "prune", "--older-than", "soon").exit_code == 2
    result = cli("history", "prune", "--older-than", "90d", "--json")
    assert result.exit_code == 0, result.output
    assert result.json()["episodes"] == 1_234
    with store.session() as session:
        left = set(session.scalars(select(AlertHistory.id)))
        notifications = session.scalar(select(func.count()).select_from(Notification))
    assert left == {ids["old"], ids["mid"], ids["open"]}
    assert notifications == 1
    # An open episode is never pruned, however old.
    result = cli("history", "prune", "--older-than", "1h", "--json")
    assert result.json()["episodes"] == 2
    with store.session() as session:
        assert set(session.scalars(select(AlertHistory.id))) == {ids["open"]}


def test_chart_counts_triggers_per_day(seeded: Any, cli: Cli) -> None:
    data = cli("history", "--alert", "etl", "--chart", "--json").json()
    assert len(data["days"]) == 30  # the last 30 days, today included
    assert sum(d["triggers"] for d in data["days"]) == 1  # the 30-day-old one is outside
    by_day = {d["date"]: d["triggers"] for d in data["days"]}
    assert by_day[(NOW - timedelta(hours=2)).date().isoformat()] == 1
    wider = cli("history", "--alert", "etl", "--chart", "--since", "31d", "--json").json()
    assert sum(d["triggers"] for d in wider["days"]) == 2
    drawn = cli("history", "--alert", "etl", "--chart", "--since", "31d")
    assert drawn.exit_code == 0 and "█" in drawn.stdout and "total 2" in drawn.stdout
    assert cli("history", "--chart").exit_code == 2
