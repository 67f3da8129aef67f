"""Maintenance windows and silences on a scripted clock (cron every minute, 5-minute alerts),
SQLite and PostgreSQL, Slack stand-in on 127.0.0.1: suppressed inside with the reason named,
and at the end an alert still firing sends its FIRING once (the end-of-mute rule)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.errors import InputError
from datamantri_alerts.services.maintenance import add_window
from datamantri_alerts.services.signal.silences import add_silence, expire_silence, parse_matcher
from datamantri_alerts.services.signal.windows import validate_window
from tests.conftest import SERVER_DIALECTS_SLOW
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.signal.scenario import T0, drive, outbox, run, states, texts


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(seconds=20))


def window(store: Any, clock: FrozenClock, **fields: Any) -> None:
    with store.transaction() as session:
        add_window(session, validate_window(fields), clock.now())


def silence(store: Any, clock: FrozenClock, *matchers: str, minutes: int) -> int:
    with store.transaction() as session:
        parsed = [parse_matcher(m) for m in matchers]
        return add_silence(session, parsed, timedelta(minutes=minutes), "deploy", clock.now()).id


def test_recurring_window_suppresses_then_firing_once_at_its_end(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    # T0 is Monday 2026-03-02 09:00 UTC = 10:00 in Berlin: the window is 10:10-10:40 there.
    window(store, clock, name="nightly-batch", times=["10:10-10:40"], location="Europe/Berlin")
    make_alert(
        store, flags, "etl", recipients={"slack": sink.hook("etl")}, mute_during=["nightly-batch"]
    )
    run(store, clock)
    drive(store, clock, flags, "etl", lambda m: "firing" if m >= 15 else "ok", 39)
    assert sink.received == []
    assert outbox(store) == [("firing", "suppressed", "maintenance window nightly-batch")]
    drive(store, clock, flags, "etl", lambda m: "firing" if m >= 15 else "ok", 41)
    assert states(sink, "etl") == ["FIRING"]
    drive(store, clock, flags, "etl", lambda m: "firing" if m >= 15 else "ok", 3 * 60)
    assert states(sink, "etl") == ["FIRING"]
    print(f"\nwindow: {states(sink, 'etl')} after the window (1 suppressed inside)")


@SERVER_DIALECTS_SLOW
def test_incident_inside_a_window_sends_nothing_afterwards(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    window(store, clock, name="short", times=["09:10-09:50"])
    make_alert(store, flags, "blip", recipients={"slack": sink.hook("blip")}, mute_during=["short"])
    run(store, clock)
    drive(store, clock, flags, "blip", lambda m: "firing" if 15 <= m < 25 else "ok", 3 * 60)
    assert sink.received == []
    assert [(k, s) for k, s, _ in outbox(store)] == [
        ("firing", "suppressed"),
        ("resolved", "suppressed"),
    ]


@SERVER_DIALECTS_SLOW
def test_one_off_window(store: Any, flags: Flags, sink: Sink, clock: FrozenClock) -> None:
    window(
        store,
        clock,
        name="migration",
        start=(T0 + timedelta(minutes=10)).isoformat(),
        end=(T0 + timedelta(minutes=30)).isoformat(),
    )
    make_alert(store, flags, "db", recipients={"slack": sink.hook("db")}, mute_during=["migration"])
    run(store, clock)
    drive(store, clock, flags, "db", lambda m: "firing" if m >= 10 else "ok", 29)
    assert sink.received == []
    drive(store, clock, flags, "db", lambda m: "firing" if m >= 10 else "ok", 31)
    assert states(sink, "db") == ["FIRING"]


def test_silence_by_matcher_holds_matching_alerts_now_and_created_later(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    make_alert(
        store,
        flags,
        "data-prod",
        recipients={"slack": sink.hook("data-prod")},
        labels={"team": "data", "env": "prod"},
    )
    make_alert(
        store,
        flags,
        "data-dev",
        recipients={"slack": sink.hook("data-dev")},
        labels={"team": "data", "env": "dev"},
    )
    silence_id = silence(store, clock, "team=data", "env=~pro.*", minutes=60)
    make_alert(
        store,
        flags,
        "later",
        recipients={"slack": sink.hook("later")},
        labels={"team": "data", "env": "prod"},
    )
    for key in ("data-prod", "data-dev", "later"):
        flags.set(**{key: "firing"})
    drive(store, clock, flags, "default", lambda m: "ok", 30)
    assert states(sink, "data-dev") == ["FIRING"]
    assert states(sink, "data-prod") == [] and states(sink, "later") == []
    reasons = {r for _, status, r in outbox(store) if status == "suppressed"}
    assert len(reasons) == 1
    assert reasons.pop().startswith(f"silence {silence_id} (team=data, env=~pro.*) until ")
    # Labels are shown in the message.
    assert "env=dev, team=data" in str(sink.bodies("data-dev")[0])
    # Expiring it sends each still-firing alert's FIRING once.
    with store.transaction() as session:
        assert expire_silence(session, silence_id, clock.now()) is True
    drive(store, clock, flags, "default", lambda m: "ok", 2 * 60)
    assert states(sink, "data-prod") == ["FIRING"] and states(sink, "later") == ["FIRING"]


@SERVER_DIALECTS_SLOW
def test_silence_ends_on_its_own_and_resolved_is_owed(
    store: Any, flags: Flags, sink: Sink, clock: FrozenClock
) -> None:
    make_alert(store, flags, "svc", recipients={"slack": sink.hook("svc")}, labels={"team": "x"})
    flags.set(svc="firing")
    run(store, clock)
    assert states(sink, "svc") == ["FIRING"]
    silence(store, clock, "team=x", minutes=30)
    drive(store, clock, flags, "svc", lambda m: "ok" if m >= 10 else "firing", 29)
    assert states(sink, "svc") == ["FIRING"]
    drive(store, clock, flags, "svc", lambda m: "ok" if m >= 10 else "firing", 2 * 60)
    assert states(sink, "svc") == ["FIRING", "RESOLVED"]
    assert "team=x" in texts(sink, "svc")[1] or "team=x" in str(sink.bodies("svc")[1])


def test_bad_matchers_and_windows_are_refused() -> None:
    with pytest.raises(InputError, match="--match"):
        parse_matcher("team")
    with pytest.raises(InputError, match="invalid regular expression"):
        parse_matcher("team=~(")
    with pytest.raises(InputError, match="unknown time zone"):
        validate_window({"name": "w", "times": ["01:00-02:00"], "location": "Mars/Base"})
    with pytest.raises(InputError, match="the end must be after the start"):
        validate_window({"name": "w", "times": ["03:00-02:00"]})
    with pytest.raises(InputError, match="weekdays"):
        validate_window({"name": "w", "weekdays": ["funday"]})
