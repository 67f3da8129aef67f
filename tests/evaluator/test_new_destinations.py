"""A destination added while an episode is open (an edit or a sync changing channels or
recipients) is told the episode's FIRING once, as Alertmanager tells a new receiver; the
destinations already told are not told again.

Frozen clock, service layer, real webhook receiver on 127.0.0.1; SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.alerts import update_alert
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.services.mute import mute_alert
from datamantri_alerts.store.models import Alert, Notification
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0, 20)


def _run(store: Any, clock: FrozenClock) -> Any:
    as_a_new_process()
    summary = run_evaluation(store, clock, RunOptions(host="test-host"))
    assert not summary.problems, summary.problems
    return summary


def _every_minute(store: Any, clock: FrozenClock, minutes: int) -> None:
    for _ in range(minutes):
        clock.advance(minutes=1)
        _run(store, clock)


def _edit(store: Any, alert_id: int, clock: FrozenClock, **changes: Any) -> None:
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        update_alert(session, alert, changes, clock)


def _states(sink: Sink, name: str) -> list[str]:
    """The message states a destination received (Slack or the generic webhook)."""
    return [body["state"] if "state" in body else slack_state(body) for body in sink.bodies(name)]


def _outbox(store: Any) -> list[tuple[str, str, str]]:
    with store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        return [(row.kind, row.recipient.rsplit("/", 1)[-1], row.status) for row in rows]


def test_recipient_changed_while_firing_repeat_0_tells_the_new_one_once(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store, clock = any_store, FrozenClock(T0)
    alert_id = make_alert(
        store,
        flags,
        "a",
        channels=["webhook"],
        recipients={"webhook": sink.hook("old")},
        repeat_interval_minutes=0,
    )
    flags.set(a="firing")
    _run(store, clock)
    assert _states(sink, "old") == ["FIRING"]

    _edit(store, alert_id, clock, recipients={"webhook": sink.hook("new")})
    _every_minute(store, clock, 60)
    assert _states(sink, "new") == ["FIRING"]  # once, at the first run after the edit
    assert _states(sink, "old") == ["FIRING"]  # not told twice
    first_new = sink.bodies("new")[0]
    assert (first_new["alert"]["name"], first_new["event"]) == ("a", "firing")

    # Both destinations, then the recovery: RESOLVED to the destinations of the moment.
    _edit(
        store,
        alert_id,
        clock,
        recipients={"webhook": [sink.hook("old"), sink.hook("new")]},
    )
    _every_minute(store, clock, 10)
    assert _states(sink, "old") == ["FIRING"]
    assert _states(sink, "new") == ["FIRING"]
    flags.set(a="ok")
    _every_minute(store, clock, 15)
    assert _states(sink, "old") == ["FIRING", "RESOLVED"]
    assert _states(sink, "new") == ["FIRING", "RESOLVED"]
    assert _outbox(store) == [
        ("firing", "old", "sent"),
        ("firing", "new", "sent"),
        ("resolved", "old", "sent"),
        ("resolved", "new", "sent"),
    ]


def test_channel_added_while_firing_repeat_240_is_told_at_once_not_at_the_repeat(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store, clock = any_store, FrozenClock(T0)
    alert_id = make_alert(
        store,
        flags,
        "b",
        channels=["webhook"],
        recipients={"webhook": sink.hook("hook")},
        repeat_interval_minutes=240,
    )
    flags.set(b="firing")
    _run(store, clock)
    _edit(
        store,
        alert_id,
        clock,
        channels=["webhook", "slack"],
        recipients={"webhook": sink.hook("hook"), "slack": sink.hook("slack")},
    )
    clock.advance(minutes=1)
    _run(store, clock)
    assert _states(sink, "slack") == ["FIRING"]
    assert _states(sink, "hook") == ["FIRING"]
    _every_minute(store, clock, 60)
    assert len(sink.received) == 2


def test_a_destination_added_while_muted_is_told_when_the_mute_ends(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store, clock = any_store, FrozenClock(T0)
    alert_id = make_alert(
        store,
        flags,
        "c",
        channels=["webhook"],
        recipients={"webhook": sink.hook("c1")},
        repeat_interval_minutes=0,
    )
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        mute_alert(alert, timedelta(minutes=30), "deploy", clock.now())
    flags.set(c="firing")
    _run(store, clock)
    _edit(store, alert_id, clock, recipients={"webhook": [sink.hook("c1"), sink.hook("c2")]})
    _every_minute(store, clock, 25)
    assert sink.received == []  # still muted: the new destination is not told either
    _every_minute(store, clock, 10)
    assert _states(sink, "c1") == ["FIRING"]
    assert _states(sink, "c2") == ["FIRING"]
    _every_minute(store, clock, 30)
    assert len(sink.received) == 2


def test_an_opening_message_already_queued_is_not_built_again(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    """Every evaluation of a firing alert queues its episode's opening message again, for a
    destination added meanwhile: for the destinations told already the message is not built
    and nothing is inserted; a new destination gets it, built once for all its rows."""
    from datamantri_alerts.services.outbox import Event, enqueue

    store, clock = any_store, FrozenClock(T0)
    alert_id = make_alert(
        store, flags, "a", channels=["webhook"], recipients={"webhook": sink.hook("old")}
    )
    flags.set(a="firing")
    _run(store, clock)
    with store.session() as session:
        episode_id = session.scalar(select(Alert.current_episode_id).where(Alert.id == alert_id))
    assert episode_id is not None
    built: list[int] = []

    def event(*hooks: str) -> Event:
        def message() -> dict[str, Any]:
            built.append(1)
            return {"state": "FIRING"}

        return Event(
            alert_id=alert_id,
            episode_id=episode_id,
            kind="firing",
            message=message,
            channels=["webhook"],
            recipients={"webhook": [sink.hook(name) for name in hooks]},
        )

    with store.transaction() as session:
        assert enqueue(session, [event("old")], clock.now()) == []
    assert built == []  # told already: no message built, no row
    with store.transaction() as session:
        rows = enqueue(session, [event("old", "new1", "new2")], clock.now())
    assert sorted(row["recipient"].rsplit("/", 1)[-1] for row in rows) == ["new1", "new2"]
    assert built == [1]  # one message for the event's two new rows
    with store.transaction() as session:
        assert enqueue(session, [event("old", "new1", "new2")], clock.now()) == []
    assert built == [1]
    assert [r for r in _outbox(store) if r[0] == "firing"] == [
        ("firing", "old", "sent"),
        ("firing", "new1", "pending"),
        ("firing", "new2", "pending"),
    ]
