"""The exit-code rule of `alerts evaluate`: a notification waiting for its retry is not a failure;
one still undelivered after 15 minutes, a permanent delivery failure or a check error is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.delivery import OVERDUE_AFTER
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import EvaluatorRun, Notification
from tests.conftest import Cli, utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process

T0 = utc(2026, 3, 2, 9, 0)
RATE_LIMITED = (429, {"Retry-After": "120"}, "rate_limited")


@pytest.fixture
def store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALERTS_RETRY_ATTEMPTS", "1")  # one try per run: what a later run does
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def _run(store: Any, clock: FrozenClock) -> Any:
    as_a_new_process()
    return run_evaluation(store, clock, RunOptions(host="test-host"))


def _make_due(store: Any) -> None:
    with store.transaction() as session:
        session.execute(update(Notification).values(next_attempt_at=T0 - timedelta(days=1)))


def test_rate_limited_is_waiting_until_15_fake_minutes(
    store: Any, flags: Flags, sink: Sink
) -> None:
    assert timedelta(minutes=15) == OVERDUE_AFTER
    clock = FrozenClock(T0)
    make_alert(store, flags, "a", recipients={"slack": sink.hook("a")})
    flags.set(a="firing")
    sink.on("a", RATE_LIMITED, RATE_LIMITED, RATE_LIMITED, RATE_LIMITED)

    first = _run(store, clock)
    assert (first.notifications.pending, first.notifications.failed, first.overdue) == (1, 0, 0)
    assert first.ok  # waiting for a retry: exit 0

    for minutes, overdue in ((14, 0), (15, 1), (16, 1)):
        clock.set(T0 + timedelta(minutes=minutes))
        _make_due(store)
        summary = _run(store, clock)
        assert summary.notifications.pending == 1, minutes
        assert summary.overdue == overdue, minutes
        assert summary.ok is (overdue == 0), minutes
    assert [r.status for r in sink.received] == [429, 429, 429, 429]

    # Overdue counts even in a run that did not try it (its next attempt is later).
    clock.set(T0 + timedelta(minutes=16, seconds=30))
    idle = _run(store, clock)
    assert (idle.notifications.pending, idle.overdue, idle.ok) == (0, 1, False)
    with store.session() as session:
        outcomes = list(session.scalars(select(EvaluatorRun.outcome).order_by(EvaluatorRun.id)))
    assert outcomes == ["ok", "ok", "failed", "failed", "failed"]

    # Delivered at last: the run is a success again.
    clock.set(T0 + timedelta(minutes=20))
    _make_due(store)
    delivered = _run(store, clock)
    assert (delivered.notifications.sent, delivered.overdue, delivered.ok) == (1, 0, True)


def test_cli_exit_codes(store: Any, cli: Cli, flags: Flags, sink: Sink) -> None:
    make_alert(store, flags, "b", recipients={"slack": sink.hook("b")})
    flags.set(b="firing")
    sink.on("b", *[RATE_LIMITED] * 4)

    shown = cli("evaluate")
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == (
        "notifications: 1 waiting for a retry by a later run (not a failure until 15 minutes old)\n"
    )
    _make_due(store)
    waiting = cli("evaluate", "--quiet")
    assert waiting.exit_code == 0, waiting.output
    assert waiting.output == ""  # cron mails nothing
    _make_due(store)
    as_json = cli("evaluate", "--json")
    assert as_json.exit_code == 0
    assert as_json.json()["notifications"]["pending"] == 1
    assert as_json.json()["overdue_notifications"] == 0

    # Queued 16 minutes ago and still rate-limited: a failure.
    with store.transaction() as session:
        row = session.scalars(select(Notification)).one()
        session.execute(
            update(Notification).values(
                created_at=row.created_at - timedelta(minutes=16),
                next_attempt_at=row.created_at - timedelta(minutes=16),
            )
        )
    overdue = cli("evaluate", "--quiet")
    assert overdue.exit_code == 1, overdue.output
    assert overdue.stderr == (
        "notifications: 1 still undelivered after 15 minutes (retried by later runs; see "
        "`alerts history show ID`)\n"
    )
    assert [r.status for r in sink.received] == [429, 429, 429, 429]


def test_permanent_failure_and_check_error_fail_the_run(
    store: Any, cli: Cli, flags: Flags, sink: Sink
) -> None:
    make_alert(store, flags, "c", recipients={"slack": sink.hook("c")})
    flags.set(c="firing")
    sink.on("c", (404, {}, "no_service"))
    gone = cli("evaluate", "--quiet")
    assert gone.exit_code == 1
    assert gone.stderr == "notifications: 1 failed (see `alerts history show ID`)\n"

    make_alert(store, flags, "d")
    flags.set(d="error")
    broken = cli("evaluate", "--quiet")
    assert broken.exit_code == 1
    assert broken.stderr.startswith("error: alert ")
    assert "flag d is error" in broken.stderr


@pytest.mark.parametrize(("retry_after", "waits"), [("300", 5), ("7200", 30), ("10", 1)])
def test_a_later_run_retries_when_the_service_asked(
    store: Any, flags: Flags, sink: Sink, retry_after: str, waits: int
) -> None:
    """Retry-After beyond the in-run cap is honoured by the runs that follow (at least the
    usual 1 minute, at most 30), so cron does not hammer a rate-limited webhook."""
    clock = FrozenClock(T0)
    make_alert(store, flags, "e", recipients={"slack": sink.hook("e")})
    flags.set(e="firing")
    sink.on("e", (429, {"Retry-After": retry_after}, "rate_limited"))
    assert _run(store, clock).ok
    with store.session() as session:
        row = session.scalars(select(Notification)).one()
    assert row.next_attempt_at == T0 + timedelta(minutes=waits)
    clock.set(T0 + timedelta(minutes=waits) - timedelta(seconds=1))
    assert _run(store, clock).notifications.pending == 0  # not tried yet
    assert len(sink.received) == 1
    clock.set(T0 + timedelta(minutes=waits))
    assert _run(store, clock).notifications.sent == 1
