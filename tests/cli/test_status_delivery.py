"""`alerts status`: delivery success rate per channel over the last 24 h and 7 d."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Notification
from tests.conftest import Cli


def add_notifications(url: str, rows: list[tuple[str, str, timedelta]]) -> None:
    now = datetime.now(UTC)
    store = open_store(url)
    try:
        with store.transaction() as session:
            session.execute(
                insert(Notification),
                [
                    {
                        "dedup_key": f"k{i}",
                        "channel": channel,
                        "recipient": "${HOOK}",
                        "kind": "firing",
                        "status": status,
                        "payload": {},
                        "attempts": 1,
                        "created_at": now - ago,
                        "next_attempt_at": now - ago,
                    }
                    for i, (channel, status, ago) in enumerate(rows)
                ],
            )
    finally:
        store.dispose()


def test_success_rate_per_channel(cli: Cli, sqlite_url: str) -> None:
    hour, days = timedelta(hours=1), timedelta(days=3)
    add_notifications(
        sqlite_url,
        [("slack", "sent", hour)] * 3
        + [("slack", "failed", hour)]
        + [("slack", "failed", days)] * 2
        + [("slack", "sent", timedelta(days=8))] * 5  # outside both windows
        + [("slack", "pending", hour), ("slack", "suppressed", hour)]  # not outcomes
        + [("pagerduty", "sent", days)],
    )
    result = cli("status", "--json")
    assert result.exit_code == 1  # no run yet: overdue
    channels = {c["name"]: c for c in result.json()["channels"]}
    assert channels["slack"]["delivery"] == {
        "24h": {"sent": 3, "failed": 1, "rate": 0.75},
        "7d": {"sent": 3, "failed": 3, "rate": 0.5},
    }
    assert channels["pagerduty"]["delivery"]["24h"]["rate"] is None
    assert channels["pagerduty"]["delivery"]["7d"] == {"sent": 1, "failed": 0, "rate": 1.0}
    assert channels["webhook"]["delivery"]["7d"]["rate"] is None

    text = cli("status").stdout
    assert "75.0% (3/4)" in text
    assert "50.0% (3/6)" in text
    assert "100.0% (1/1)" in text
