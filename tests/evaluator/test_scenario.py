"""ok → firing → firing (within repeat) → firing (past repeat) → ok, on a frozen clock, against a
real webhook receiver on 127.0.0.1: exactly FIRING, REPEAT, RESOLVED, one closed episode."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import Alert, AlertHistory, EvaluatorRun, Notification
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0)


def run(store: Any, clock: FrozenClock, **kwargs: Any) -> Any:
    as_a_new_process()
    return run_evaluation(store, clock, RunOptions(host="test-host", **kwargs))


def test_flip_yields_firing_repeat_resolved_once_each(store: Any, flags: Flags, sink: Sink) -> None:
    clock = FrozenClock(T0)
    alert_id = make_alert(
        store,
        flags,
        "etl",
        recipients={"slack": sink.hook("etl")},
        repeat_interval_minutes=60,
        description="Nightly ETL must not fail",
    )
    seen_states = []
    # Firing on three evaluations in a row is an established incident: its recovery is told at
    # the first ok evaluation (only a younger episode waits for a second one, flap detection).
    steps = ((0, "ok"), (5, "firing"), (10, "firing"), (70, "firing"), (75, "ok"))
    for minutes, flag in steps:
        clock.set(T0 + timedelta(minutes=minutes))
        flags.set(etl=flag)
        summary = run(store, clock)
        assert [r.outcome for r in summary.results] == [flag], minutes
        assert summary.ok, summary.problems
        seen_states.append(summary.results[0].state)
        # A run in between, before the check interval has passed, evaluates nothing.
        clock.advance(minutes=1)
        assert run(store, clock).results == []

    assert seen_states == ["ok", "firing", "firing", "firing", "ok"]
    bodies = sink.bodies("etl")
    assert [slack_state(b) for b in bodies] == ["FIRING", "REPEAT", "RESOLVED"]
    assert "etl" in bodies[0]["text"]

    with store.session() as session:
        episodes = session.scalars(select(AlertHistory)).all()
        alert = session.get(Alert, alert_id)
        notifications = session.scalars(select(Notification).order_by(Notification.id)).all()
        runs = session.scalars(select(EvaluatorRun)).all()
    assert len(episodes) == 1
    episode = episodes[0]
    assert episode.triggered_at == T0 + timedelta(minutes=5)
    assert episode.resolved_at == T0 + timedelta(minutes=75)
    assert episode.kind == "firing"
    assert [e["kind"] for e in episode.notifications_sent] == ["firing", "repeat", "resolved"]
    assert all(e["recipient"] == f"{sink.url}/***" for e in episode.notifications_sent)
    assert episode.notification_errors == []
    assert alert is not None
    assert alert.trigger_count == 1
    assert alert.state == "ok"
    assert alert.current_episode_id is None
    assert alert.last_triggered_at == T0 + timedelta(minutes=5)
    assert [(n.kind, n.status, n.attempts) for n in notifications] == [
        ("firing", "sent", 1),
        ("repeat", "sent", 1),
        ("resolved", "sent", 1),
    ]
    assert len(runs) == 10
    assert all(r.outcome == "ok" and r.finished_at is not None for r in runs)
    assert sum(r.notifications_sent for r in runs) == 3


def test_pending_evaluations_and_zero_repeat(store: Any, flags: Flags, sink: Sink) -> None:
    clock = FrozenClock(T0)
    make_alert(
        store,
        flags,
        "flaky",
        recipients={"slack": sink.hook("flaky")},
        pending_evaluations=3,
        repeat_interval_minutes=0,
        notify_on_resolve=False,
    )
    flags.set(flaky="firing")
    states = []
    for step in range(6):
        clock.set(T0 + timedelta(minutes=5 * step))
        states.append(run(store, clock).results[0].state)
    flags.set(flaky="ok")
    clock.advance(minutes=5)  # an established incident: resolved at the first ok evaluation
    states.append(run(store, clock).results[0].state)
    assert states == ["pending", "pending", "firing", "firing", "firing", "firing", "ok"]
    # Fired once; repeat 0 means never again; no RESOLVED when notify_on_resolve is off.
    assert [slack_state(b) for b in sink.bodies("flaky")] == ["FIRING"]


def test_error_is_its_own_episode_notified_once(store: Any, flags: Flags, sink: Sink) -> None:
    clock = FrozenClock(T0)
    alert_id = make_alert(store, flags, "broken", recipients={"slack": sink.hook("broken")})
    flags.set(broken="error")
    for step in range(3):
        clock.set(T0 + timedelta(minutes=5 * step))
        summary = run(store, clock)
        assert summary.results[0].state == "error"
        assert not summary.ok  # a check that could not evaluate fails the run
    clock.advance(minutes=5)
    flags.set(broken="ok")
    assert run(store, clock).results[0].state == "ok"

    bodies = sink.bodies("broken")
    assert [slack_state(b) for b in bodies] == ["FIRING", "RESOLVED"]
    assert "could not evaluate" in bodies[0]["text"]
    with store.session() as session:
        episodes = session.scalars(select(AlertHistory)).all()
        alert = session.get(Alert, alert_id)
    assert [(e.kind, e.condition_met, e.resolved_at is not None) for e in episodes] == [
        ("error", False, True)
    ]
    assert alert is not None and alert.trigger_count == 0  # errors are not triggers


def test_muted_alert_moves_but_sends_nothing(store: Any, flags: Flags, sink: Sink) -> None:
    clock = FrozenClock(T0)
    alert_id = make_alert(store, flags, "quiet", recipients={"slack": sink.hook("quiet")})
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.muted_until = T0 + timedelta(hours=2)
        alert.mute_reason = "maintenance"
    flags.set(quiet="firing")
    summary = run(store, clock)
    assert summary.results[0].state == "firing"
    assert summary.notifications.suppressed == 1
    assert summary.notifications.sent == 0
    assert summary.ok
    assert sink.received == []
    with store.session() as session:
        rows = session.scalars(select(Notification)).all()
        episodes = session.scalars(select(AlertHistory)).all()
    assert [(n.status, n.last_error) for n in rows] == [
        ("suppressed", f"muted until {(T0 + timedelta(hours=2)).isoformat()}: maintenance")
    ]
    assert len(episodes) == 1
    # After the mute ends, the first run sends the FIRING it held back (once), and the repeat
    # interval counts from then: no REPEAT in the same run or the next ones within 240 minutes.
    clock.advance(hours=5)
    run(store, clock)
    assert [slack_state(b) for b in sink.bodies("quiet")] == ["FIRING"]
    clock.advance(minutes=235)
    run(store, clock)
    assert [slack_state(b) for b in sink.bodies("quiet")] == ["FIRING"]
    clock.advance(minutes=10)
    run(store, clock)
    assert [slack_state(b) for b in sink.bodies("quiet")] == ["FIRING", "REPEAT"]


def test_flip_over_email_and_slack(
    store: Any, flags: Flags, sink: Sink, smtp_starttls: Any, monkeypatch: Any
) -> None:
    """The same flip with a real SMTP server (STARTTLS + AUTH) next to Slack."""
    import email

    for key, value in smtp_starttls.environ.items():
        monkeypatch.setenv(key, value)
    clock = FrozenClock(T0)
    make_alert(
        store,
        flags,
        "warehouse",
        channels=["email", "slack"],
        recipients={"email": ["data-team@example.com"], "slack": sink.hook("warehouse")},
        repeat_interval_minutes=60,
    )
    steps = ((0, "ok"), (5, "firing"), (10, "firing"), (70, "firing"), (75, "ok"), (80, "ok"))
    for minutes, flag in steps:
        clock.set(T0 + timedelta(minutes=minutes))
        flags.set(warehouse=flag)
        assert run(store, clock).ok

    subjects = [
        str(email.message_from_bytes(m.content)["Subject"]) for m in smtp_starttls.recorder.messages
    ]
    assert [s.split("]")[0] + "]" for s in subjects] == ["[FIRING]", "[REPEAT]", "[RESOLVED]"]
    assert all("warehouse" in s for s in subjects)
    assert all(
        m.tls and m.rcpt_tos == ["data-team@example.com"] for m in smtp_starttls.recorder.messages
    )
    assert [slack_state(b) for b in sink.bodies("warehouse")] == ["FIRING", "REPEAT", "RESOLVED"]
    with store.session() as session:
        episode = session.scalars(select(AlertHistory)).one()
    assert sorted((e["kind"], e["channel"]) for e in episode.notifications_sent) == [
        ("firing", "email"), ("firing", "slack"), ("repeat", "email"),
        ("repeat", "slack"), ("resolved", "email"), ("resolved", "slack"),
    ]  # fmt: skip
