"""A muted alert that is still firing speaks when its mute ends (expiry, unmute, an edit).

Frozen clock, service layer, real webhook receiver on 127.0.0.1; SQLite and PostgreSQL (the
release of held-back messages on MariaDB too).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.services.mute import mute_alert, unmute_alert
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.conftest import SERVER_DIALECTS_SLOW, utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0)


def run(store: Any, clock: FrozenClock) -> Any:
    as_a_new_process()
    summary = run_evaluation(store, clock, RunOptions(host="test-host"))
    assert not summary.problems, summary.problems
    return summary


def run_until(store: Any, clock: FrozenClock, minutes: int) -> None:
    """Cron every minute (20 s after the tick) up to T0 + minutes."""
    while clock.now() < T0 + timedelta(minutes=minutes):
        clock.advance(minutes=1)
        run(store, clock)


def mute(store: Any, alert_id: int, clock: FrozenClock, length: timedelta) -> None:
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        mute_alert(alert, length, "deploy", clock.now())


def states(sink: Sink, name: str) -> list[str]:
    return [slack_state(body) for body in sink.bodies(name)]


def outbox(store: Any) -> list[tuple[str, str]]:
    with store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        return [(row.kind, row.status) for row in rows]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(seconds=20))


def test_mute_expiry_sends_the_suppressed_firing_once_repeat_0(
    any_store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    store = any_store
    alert_id = make_alert(
        store, flags, "quiet", recipients={"slack": sink.hook("quiet")}, repeat_interval_minutes=0
    )
    run(store, clock)
    mute(store, alert_id, clock, timedelta(minutes=30))
    flags.set(quiet="firing")
    run_until(store, clock, 29)
    assert sink.received == []
    assert outbox(store) == [("firing", "suppressed")]
    # The first run after the mute ends sends the FIRING it held back; never again after that.
    run_until(store, clock, 30)
    assert states(sink, "quiet") == ["FIRING"]
    run_until(store, clock, 3 * 60)
    assert states(sink, "quiet") == ["FIRING"]
    assert outbox(store) == [("firing", "sent")]
    body = sink.bodies("quiet")[0]
    assert "quiet" in body["text"]


@SERVER_DIALECTS_SLOW
def test_mute_expiry_with_repeat_sends_firing_then_repeats_from_then(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    alert_id = make_alert(
        store,
        flags,
        "repeats",
        recipients={"slack": sink.hook("repeats")},
        repeat_interval_minutes=240,
    )
    mute(store, alert_id, clock, timedelta(minutes=30))
    flags.set(repeats="firing")
    run_until(store, clock, 30)
    assert states(sink, "repeats") == ["FIRING"]
    first = sink.received[0].body
    # Repeats count from the FIRING that was sent (minute 30), not from the suppressed one.
    run_until(store, clock, 30 + 239)
    assert states(sink, "repeats") == ["FIRING"]
    run_until(store, clock, 30 + 245)
    assert states(sink, "repeats") == ["FIRING", "REPEAT"]
    assert "repeats" in first["text"]


@SERVER_DIALECTS_SLOW
def test_unmute_before_expiry_sends_the_firing_on_the_next_run(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    alert_id = make_alert(
        store, flags, "early", recipients={"slack": sink.hook("early")}, repeat_interval_minutes=0
    )
    mute(store, alert_id, clock, timedelta(hours=2))
    flags.set(early="firing")
    run_until(store, clock, 10)
    assert sink.received == []
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert unmute_alert(alert) is True
    run_until(store, clock, 11)
    assert states(sink, "early") == ["FIRING"]
    run_until(store, clock, 3 * 60)
    assert states(sink, "early") == ["FIRING"]


@SERVER_DIALECTS_SLOW
def test_mute_cleared_by_an_edit_sends_the_firing_too(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    from datamantri_alerts.services.alerts import update_alert

    alert_id = make_alert(store, flags, "edited", recipients={"slack": sink.hook("edited")})
    mute(store, alert_id, clock, timedelta(hours=2))
    flags.set(edited="firing")
    run_until(store, clock, 5)
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        update_alert(session, alert, {"muted_until": None}, clock)
    run_until(store, clock, 6)
    assert states(sink, "edited") == ["FIRING"]


@SERVER_DIALECTS_SLOW
def test_episode_that_opened_and_resolved_while_muted_sends_nothing(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    alert_id = make_alert(store, flags, "blip", recipients={"slack": sink.hook("blip")})
    mute(store, alert_id, clock, timedelta(minutes=30))
    flags.set(blip="firing")
    run_until(store, clock, 10)
    flags.set(blip="ok")
    run_until(store, clock, 2 * 60)
    # Nothing the user was told about changed: no late FIRING, no RESOLVED.
    assert sink.received == []
    assert outbox(store) == [("firing", "suppressed"), ("resolved", "suppressed")]


def test_resolved_while_muted_after_a_sent_firing_is_sent_when_the_mute_ends(
    any_store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    store = any_store
    alert_id = make_alert(store, flags, "fixed", recipients={"slack": sink.hook("fixed")})
    flags.set(fixed="firing")
    run(store, clock)
    assert states(sink, "fixed") == ["FIRING"]
    mute(store, alert_id, clock, timedelta(minutes=30))
    run_until(store, clock, 10)
    flags.set(fixed="ok")
    run_until(store, clock, 29)
    assert states(sink, "fixed") == ["FIRING"]
    # As Alertmanager does when a silence ends: the user hears that it resolved, once.
    run_until(store, clock, 30)
    assert states(sink, "fixed") == ["FIRING", "RESOLVED"]
    run_until(store, clock, 3 * 60)
    assert states(sink, "fixed") == ["FIRING", "RESOLVED"]
    with store.session() as session:
        episode = session.scalars(select(AlertHistory)).one()
    assert episode.resolved_at == T0 + timedelta(minutes=15, seconds=20)  # the next 5-min point


@SERVER_DIALECTS_SLOW
def test_could_not_evaluate_while_muted_is_sent_when_the_mute_ends(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    alert_id = make_alert(store, flags, "broken", recipients={"slack": sink.hook("broken")})
    mute(store, alert_id, clock, timedelta(minutes=15))
    flags.set(broken="error")
    for _ in range(16):
        clock.advance(minutes=1)
        as_a_new_process()
        run_evaluation(store, clock, RunOptions(host="test-host"))
    bodies = sink.bodies("broken")
    assert [slack_state(b) for b in bodies] == ["FIRING"]
    assert "could not evaluate" in bodies[0]["text"]
