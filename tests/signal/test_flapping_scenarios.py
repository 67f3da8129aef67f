"""Flapping on a scripted clock (interval 5 minutes, cron every minute), SQLite and PostgreSQL,
Slack stand-in on 127.0.0.1: the issue's three targets, plus per-alert thresholds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.signal.flapping import (
    FlapDetection,
    assess,
    percent_state_change,
    record,
)
from datamantri_alerts.store.models import Alert, AlertHistory
from tests.conftest import SERVER_DIALECTS_SLOW
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.signal.scenario import T0, drive, run, states, texts, told


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(seconds=20))


def flipping_for_an_hour(minute: int) -> str:
    """Firing on odd 5-minute slots, ok on even ones, for the first hour; then ok."""
    if minute > 60:
        return "ok"
    return "firing" if (minute // 5) % 2 == 1 else "ok"


def test_source_flipping_every_evaluation_for_an_hour(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    alert_id = make_alert(store, flags, "flappy", recipients={"slack": sink.hook("flappy")})
    run(store, clock)
    drive(store, clock, flags, "flappy", flipping_for_an_hour, 60)
    in_the_hour = states(sink, "flappy")
    print(f"\nflipping source: {len(in_the_hour)} notifications in the hour: {in_the_hour}")
    assert in_the_hour == ["FIRING", "FLAPPING"]
    notice = texts(sink, "flappy")[1]
    assert "flapping: 4 changes in the last 5 evaluations; notifications paused" in notice
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.flapping is True
        assert alert.flap_history == "OFOFOFOFOFOFO"  # every flip recorded
    # It settles (ok from minute 61): one more notification, saying where.
    drive(store, clock, flags, "flappy", flipping_for_an_hour, 4 * 60)
    after = states(sink, "flappy")
    print(f"flipping source: {len(after) - len(in_the_hour)} more when it settled: {after}")
    assert after == ["FIRING", "FLAPPING", "RESOLVED"]
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.flapping is False and alert.state == "ok"
        episodes = session.scalars(select(AlertHistory)).all()
    assert [e.resolved_at is not None for e in episodes] == [True]
    # Every flip inside the episode is in its history: 11 after the FIRING that opened it.
    flips = episodes[0].flips or []
    assert [f["outcome"] for f in flips] == ["ok", "firing"] * 5 + ["ok"]


@SERVER_DIALECTS_SLOW
def test_one_real_incident_is_firing_then_resolved(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    make_alert(store, flags, "incident", recipients={"slack": sink.hook("incident")})
    run(store, clock)
    drive(store, clock, flags, "incident", lambda m: "firing" if 30 <= m < 60 else "ok", 4 * 60)
    sent = told(store)
    print(f"\none incident: {[state for _, state, _ in sent]}")
    assert states(sink, "incident") == ["FIRING", "RESOLVED"]
    recovered = T0 + timedelta(minutes=60)
    resolved_at = sent[1][2]
    assert recovered <= resolved_at <= recovered + timedelta(minutes=5, seconds=20)


@SERVER_DIALECTS_SLOW
def test_two_incidents_two_hours_apart(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    def outcome(minute: int) -> str:
        return "firing" if 30 <= minute < 60 or 150 <= minute < 180 else "ok"

    make_alert(store, flags, "twice", recipients={"slack": sink.hook("twice")})
    run(store, clock)
    drive(store, clock, flags, "twice", outcome, 5 * 60)
    print(f"\ntwo incidents: {states(sink, 'twice')}")
    assert states(sink, "twice") == ["FIRING", "RESOLVED", "FIRING", "RESOLVED"]


@SERVER_DIALECTS_SLOW
def test_settling_while_firing_says_so(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    make_alert(store, flags, "stuck", recipients={"slack": sink.hook("stuck")})
    run(store, clock)
    drive(
        store,
        clock,
        flags,
        "stuck",
        lambda m: "firing" if m > 60 else flipping_for_an_hour(m),
        4 * 60,
    )
    assert states(sink, "stuck") == ["FIRING", "FLAPPING", "FIRING"]
    assert "flapping stopped; settled firing" in texts(sink, "stuck")[2]


@SERVER_DIALECTS_SLOW
def test_flap_detection_off_sends_every_flip(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    make_alert(
        store,
        flags,
        "plain",
        recipients={"slack": sink.hook("plain")},
        flap_detection={"enabled": False},
    )
    run(store, clock)
    drive(store, clock, flags, "plain", flipping_for_an_hour, 30)
    assert states(sink, "plain") == ["FIRING", "RESOLVED"] * 3


@SERVER_DIALECTS_SLOW
def test_per_alert_thresholds_are_used(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    # A high threshold of 90 % is not reached by an hour of flips with the default window.
    make_alert(
        store,
        flags,
        "lenient",
        recipients={"slack": sink.hook("lenient")},
        flap_detection={"high": 90, "low": 10},
    )
    run(store, clock)
    drive(store, clock, flags, "lenient", flipping_for_an_hour, 60)
    assert "FLAPPING" not in states(sink, "lenient")
    with store.session() as session:
        alert = session.scalars(select(Alert)).one()
    assert alert.flap_detection == {"high": 90.0, "low": 10.0}


# --------------------------------------------------------------------------- the arithmetic


def test_percent_state_change_weights_recent_changes_more() -> None:
    assert percent_state_change("O" * 21, 21) == 0
    assert percent_state_change("OF" * 10 + "O", 21) == pytest.approx(100.0)
    # The same two changes weigh more when recent than when old.
    assert percent_state_change("O" * 18 + "FO" + "O", 21) > percent_state_change(
        "OFO" + "O" * 18, 21
    )


def test_hysteresis_between_high_and_low() -> None:
    config = FlapDetection()
    history = ""
    for outcome in ["firing", "ok", "firing", "ok"]:
        history = record(history, outcome, 21)
    assert not assess(history, False, config).flapping  # 3 changes: 18 %
    history = record(history, "firing", 21)
    verdict = assess(history, False, config)
    assert verdict.flapping and verdict.started and verdict.changes == 4
    # Once flapping, it takes falling below the low threshold to stop.
    assert assess(history + "FFF", True, config).flapping
    assert record(history, "error", 21) == history  # errors say nothing about the condition


def test_bad_flap_settings_are_refused() -> None:
    from datamantri_alerts.errors import InputError
    from datamantri_alerts.schema import validate_alert

    with pytest.raises(InputError, match="flap_detection"):
        validate_alert(
            {
                "name": "x",
                "condition_type": "sql",
                "condition_config": {"datasource_id": "w", "query": "select 1"},
                "flap_detection": {"high": 10, "low": 20},
            }
        )
