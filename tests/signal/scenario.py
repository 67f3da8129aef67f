"""A scripted day for the no-spam scenarios: a frozen clock, cron every minute (20 s after the
tick), alerts on a 5-minute interval, a Slack stand-in on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import Notification
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0)


def run(store: Any, clock: FrozenClock) -> Any:
    as_a_new_process()
    summary = run_evaluation(store, clock, RunOptions(host="test-host"))
    assert not summary.problems, summary.problems
    return summary


def drive(
    store: Any,
    clock: FrozenClock,
    flags: Flags,
    key: str,
    outcome_at: Callable[[int], str],
    until_minute: int,
) -> None:
    """Cron every minute up to T0 + until_minute; before each run the source shows
    `outcome_at(minute)`."""
    while clock.now() < T0 + timedelta(minutes=until_minute):
        clock.advance(minutes=1)
        minute = int((clock.now() - T0).total_seconds() // 60)
        flags.set(**{key: outcome_at(minute)})
        run(store, clock)


def states(sink: Sink, name: str) -> list[str]:
    return [slack_state(body) for body in sink.bodies(name)]


def texts(sink: Sink, name: str) -> list[str]:
    return [str(body.get("text", "")) for body in sink.bodies(name)]


def told(store: Any) -> list[tuple[str, str, datetime]]:
    """(kind, message state, created_at) of the notifications sent, in order."""
    with store.session() as session:
        rows = session.scalars(
            select(Notification).where(Notification.status == "sent").order_by(Notification.id)
        ).all()
        return [(row.kind, row.payload["state"], row.created_at) for row in rows]


def outbox(store: Any) -> list[tuple[str, str, str | None]]:
    with store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        return [(row.kind, row.status, row.last_error) for row in rows]
