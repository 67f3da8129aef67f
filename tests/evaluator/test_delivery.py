"""Delivery through the CLI against a webhook sink that misbehaves: retried, waited, refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.conftest import Cli, dump_store
from tests.evaluator.conftest import Flags, Sink, make_alert


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALERTS_RETRY_INITIAL_DELAY", "0.1")
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def outbox(store: Any) -> list[Notification]:
    with store.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_503_twice_then_200_arrives_on_the_third_try(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    make_alert(store, flags, "a", recipients={"slack": sink.hook("a")})
    flags.set(a="firing")
    sink.on("a", 503, 503)
    result = cli("evaluate", "--json")
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["notifications"] == {"sent": 1, "failed": 0, "pending": 0, "suppressed": 0}
    assert [r.status for r in sink.received] == [503, 503, 200]
    [row] = outbox(store)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_429_retry_after_is_honoured(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    make_alert(store, flags, "b", recipients={"slack": sink.hook("b")})
    flags.set(b="firing")
    sink.on("b", (429, {"Retry-After": "1"}, "rate_limited"))
    result = cli("evaluate", "--json")
    assert result.exit_code == 0, result.output
    first, second = sink.received
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0


def test_404_is_not_retried_and_shows_in_history(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    make_alert(store, flags, "c", recipients={"slack": sink.hook("c")})
    flags.set(c="firing")
    sink.on("c", (404, {}, "no_service"))
    result = cli("evaluate", "--json")
    assert result.exit_code == 1
    assert result.json()["notifications"]["failed"] == 1
    assert len(sink.received) == 1
    [row] = outbox(store)
    assert row.status == "failed" and row.attempts == 1
    assert "404" in (row.last_error or "") and "no_service" in (row.last_error or "")

    # A later run does not try again.
    again = cli("evaluate", "--all", "--json")
    assert again.json()["notifications"]["failed"] == 0
    assert len(sink.received) == 1

    with store.session() as session:
        episode = session.scalars(select(AlertHistory)).one()
    shown = cli("history", "show", str(episode.id))
    assert shown.exit_code == 0, shown.output
    assert "no_service" in shown.stdout and "failed" in shown.stdout
    assert "/hook/c" not in shown.output  # the webhook path carries the token: masked
    as_json = cli("history", "show", str(episode.id), "--json").json()
    assert as_json["deliveries"][0]["status"] == "failed"
    assert as_json["attempts"][0]["reason"].count("no_service") == 1
    assert as_json["notification_errors"][0]["channel"] == "slack"


def test_transient_failure_left_pending_then_sent_by_a_later_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    make_alert(store, flags, "d", recipients={"slack": sink.hook("d")})
    flags.set(d="firing")
    sink.on("d", 503, 503, 503)
    first = cli("evaluate", "--json")
    assert first.exit_code == 0  # waiting for a retry is not a failure (until 15 minutes old)
    assert first.json()["notifications"]["pending"] == 1
    [row] = outbox(store)
    assert (row.status, row.attempts) == ("pending", 3)
    assert row.next_attempt_at > row.created_at
    # Time passes (made due now), the next cron run delivers it.
    with store.transaction() as session:
        session.execute(
            update(Notification).values(next_attempt_at=row.created_at - timedelta(seconds=1))
        )
    second = cli("evaluate", "--json")
    assert second.exit_code == 0, second.output
    assert second.json()["notifications"]["sent"] == 1
    [row] = outbox(store)
    assert (row.status, row.attempts) == ("sent", 4)


def test_dry_run_writes_nothing(store: Any, cli: Cli, flags: Flags, sink: Sink, sqlite_url: str):
    make_alert(store, flags, "e", recipients={"slack": sink.hook("e")})
    make_alert(store, flags, "f", recipients={"slack": sink.hook("f")})
    flags.set(e="firing")
    assert cli("evaluate").exit_code == 0  # some state, history, outbox and runs exist
    flags.set(e="ok", f="firing")
    before = dump_store(sqlite_url)
    result = cli("evaluate", "--dry-run", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert {r["name"]: r["outcome"] for r in result.json()["results"]} == {
        "e": "ok",
        "f": "firing",
    }
    assert dump_store(sqlite_url) == before
    assert len(sink.received) == 1


def test_evaluate_output_table_and_quiet(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    make_alert(store, flags, "g", recipients={"slack": sink.hook("g")})
    flags.set(g="firing")
    table = cli("evaluate")
    assert table.exit_code == 0
    assert "1 alerts evaluated, 1 firing" in table.stdout and "1 sent" in table.stdout
    quiet = cli("evaluate", "--all", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == ""
