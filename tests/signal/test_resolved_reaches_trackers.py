"""An episode's end reaches every incident it opened (`services.signal.closing`).

Each case runs the evaluator (and `alerts history resolve` through the CLI) against real stores
(SQLite, PostgreSQL, MariaDB), the loopback PagerDuty stand-in (which validates every event as
the Events API v2 documents it and keeps incidents by dedup_key) and the loopback Slack sink.
Before, each of these left a PagerDuty incident open for ever:

1. `alerts history resolve` queued nothing;
2. an alert with `notify_on_resolve: false` never sent PagerDuty its RESOLVED;
3. a silence in force when the episode closed held the RESOLVED back from PagerDuty too;
4. a FIRING retried after 429s went out after the RESOLVED had, re-opening the incident.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.services.delivery import (
    DeliveryTally,
    claim_pending,
    deliver_pending,
    record_results,
    send_one,
)
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.services.leases import Holder
from datamantri_alerts.services.signal.closing import RESOLVED_FIRST, RESOLVED_ONCE
from datamantri_alerts.services.signal.silences import add_silence, parse_matcher
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.channels.conftest import PagerDutyStandIn, Received, Reply, pagerduty_environ
from tests.conftest import Cli
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import slack_state
from tests.signal.test_ack import ScenarioClock
from tests.signal.test_ack_pagerduty import ONE_TRY, pagerduty_server

__all__ = ["pagerduty_server"]


class Stage:
    """An alert `etl` (labels team=data) sending to Slack (the sink) and PagerDuty."""

    def __init__(
        self, store: Any, flags: Flags, sink: Sink, pd: PagerDutyStandIn, **fields: Any
    ) -> None:
        self.store, self.flags, self.sink, self.pd = store, flags, sink, pd
        self.environ = {**pagerduty_environ(pd), **ONE_TRY}
        make_alert(
            store,
            flags,
            "etl",
            channels=["slack", "pagerduty"],
            recipients={"slack": sink.hook("etl"), "pagerduty": "${PAGERDUTY_ROUTING_KEY}"},
            labels={"team": "data"},
            **fields,
        )
        self.clock = ScenarioClock()

    def run(self, minutes: int, flag: str, *, clean: bool = True) -> None:
        """Evaluate at start + minutes with the flag set; `clean`: the run had no problem."""
        self.clock.set(self.clock.start + timedelta(minutes=minutes))
        self.flags.set(etl=flag)
        summary = run_evaluation(
            self.store, self.clock, RunOptions(host="test-host", environ=self.environ)
        )
        assert summary.ok or not clean, summary.problems

    def episode(self) -> AlertHistory:
        with self.store.session() as session:
            episode = session.scalars(select(AlertHistory).order_by(AlertHistory.id)).first()
            assert episode is not None
            session.expunge(episode)
        return episode

    def key(self) -> str:
        """The episode's PagerDuty dedup_key, as `channels.pagerduty.dedup_key` builds it."""
        episode = self.episode()
        epoch = int(episode.triggered_at.timestamp())
        return f"datamantri-alerts/{episode.alert_id}/{episode.id}/{epoch}"

    def slack_states(self) -> list[str]:
        return [slack_state(b) for b in self.sink.bodies("etl")]

    def open_incidents(self) -> list[str]:
        return [k for k, v in self.pd.incidents.items() if v["status"] != "resolved"]


def test_a_hand_resolve_resolves_the_incident_and_tells_slack(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    assert stage.open_incidents() == [key]
    episode = str(stage.episode().id)
    cli = Cli(store_url)
    done = cli("history", "resolve", episode, "--note", "fixed upstream", env=stage.environ)
    assert done.exit_code == 0, done.output
    assert "RESOLVED sent to 2 destination(s)" in done.stdout
    # Told at once, by the command: no evaluator run is needed to close the incident.
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []
    assert stage.slack_states() == ["FIRING", "RESOLVED"]
    assert "resolved by hand: fixed upstream" in str(stage.sink.bodies("etl")[-1])
    stage.flags.set(etl="ok")
    stage.run(1, "ok")  # told once
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.slack_states() == ["FIRING", "RESOLVED"]
    stage.run(2, "ok")
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.slack_states() == ["FIRING", "RESOLVED"]


def test_a_hand_resolve_the_tracker_refuses_now_is_retried_by_the_next_run(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """`alerts history resolve` sends at once, one attempt each: PagerDuty answering 503 leaves
    its RESOLVED pending with one warning line naming the destination (masked), the episode is
    resolved anyway (exit 0), and the next evaluation delivers it."""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    stage.pd.script(Reply(503, "busy"))
    episode = str(stage.episode().id)
    done = Cli(store_url)("history", "resolve", episode, env=stage.environ)
    assert done.exit_code == 0, done.output
    assert "RESOLVED sent to 1 destination(s)" in done.stdout  # Slack
    warned = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warned) == 1, done.stderr
    assert warned[0].startswith("warning: the RESOLVED to pagerduty ")
    assert "was not delivered yet" in warned[0] and "retries it" in warned[0]
    assert pagerduty_environ(stage.pd)["PAGERDUTY_ROUTING_KEY"] not in done.output
    assert stage.open_incidents() == [key]
    assert stage.slack_states() == ["FIRING", "RESOLVED"]
    stage.run(30, "ok")  # past the retry delay of a failed try
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []
    assert stage.slack_states() == ["FIRING", "RESOLVED"]


def test_a_hand_resolve_from_a_shell_without_the_routing_key_leaves_it_to_the_evaluator(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """The person's shell lacks PAGERDUTY_ROUTING_KEY, which the evaluator's environment has:
    the RESOLVED to PagerDuty is not failed for good here (the incident would stay open for
    ever) but left pending, unleased and due, and the next evaluation sends it."""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    done = Cli(store_url)("history", "resolve", str(stage.episode().id))
    assert done.exit_code == 0, done.output
    assert "RESOLVED sent to 1 destination(s)" in done.stdout  # Slack's hook needs no variable
    [warned] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "PAGERDUTY_ROUTING_KEY is not set" in warned and "retries it" in warned
    with store.session() as session:
        row = session.execute(
            select(Notification.status, Notification.lease_holder).where(
                Notification.channel == "pagerduty", Notification.kind == "resolved"
            )
        ).one()
    assert tuple(row) == ("pending", None)
    stage.run(5, "ok")  # minutes after the command's real time: the row it left is due
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []


def test_a_hand_resolve_waits_for_the_firing_another_evaluator_is_sending(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """An evaluator on another host has claimed the episode's FIRING to PagerDuty and is still
    sending it when someone resolves the episode by hand. The RESOLVED must not overtake it
    (PagerDuty would drop the resolve of an unknown key, then open the incident for ever): the
    command leaves it for later, and once the FIRING is in, the next run closes the incident.
    (A reviewer's reproduction: `['resolve', 'trigger']` and an incident open for ever.)"""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.pd.script(Reply(503, "busy"))
    stage.run(0, "firing", clean=False)  # PagerDuty's FIRING left pending for its retry
    key = stage.key()
    other = Holder("evaluator-host", 4242)
    at = stage.clock.start + timedelta(minutes=3)
    scope = [Notification.channel == "pagerduty"]
    [firing] = claim_pending(store, other, at, 100, timedelta(hours=1), scope=scope)
    assert firing.kind == "firing"
    done = Cli(store_url)("history", "resolve", str(stage.episode().id), env=stage.environ)
    assert done.exit_code == 0, done.output
    assert "RESOLVED sent to 1 destination(s)" in done.stdout  # Slack
    [warned] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "the RESOLVED to pagerduty" in warned and "was not sent now" in warned, warned
    assert stage.pd.actions == {}  # nothing overtook the FIRING
    # The other evaluator's send ends: the FIRING is in.
    result = send_one(firing, environ=stage.environ, policy=None, sleep=None)
    record_results(store, other, [firing], [result], at, DeliveryTally(), 1)
    assert stage.pd.actions == {key: ["trigger"]}
    stage.run(40, "ok")
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []


def test_a_waiting_resolved_neither_stops_other_sends_nor_waits_past_a_lease(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """A RESOLVED waiting for a FIRING another evaluator is sending is passed over: a claim
    whose rows all wait takes the rows after them (a reviewer's case: with batches of one, the
    waiting RESOLVED ended delivery, and another alert's FIRING was never sent). And it waits
    at most a lease's length after it was queued: a send that never ends does not hold it for
    ever."""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.pd.script(Reply(503, "busy"))
    stage.run(0, "firing", clean=False)
    key = stage.key()
    other = Holder("evaluator-host", 4242)
    start = stage.clock.start
    scope = [Notification.channel == "pagerduty"]
    claim_pending(store, other, start + timedelta(minutes=3), 100, timedelta(hours=1), scope=scope)
    done = Cli(store_url)("history", "resolve", str(stage.episode().id), env=stage.environ)
    assert done.exit_code == 0, done.output
    make_alert(store, flags, "etl2", channels=["slack"], recipients={"slack": sink.hook("etl2")})
    sink.on("etl2", 503)  # its FIRING is left pending, behind the waiting RESOLVED
    flags.set(etl="ok", etl2="firing")  # etl, resolved by hand, opens no new episode
    stage.clock.set(start + timedelta(minutes=3))
    run_evaluation(store, stage.clock, RunOptions(host="test-host", environ=stage.environ))
    assert [slack_state(b) for b in sink.bodies("etl2")] == ["FIRING"]  # the 503

    me = Holder("test-host", 7)
    stage.clock.set(start + timedelta(minutes=5))
    deliver_pending(store, stage.clock, me, batch_size=1, environ=stage.environ)
    assert [slack_state(b) for b in sink.bodies("etl2")] == ["FIRING", "FIRING"]
    assert stage.pd.actions == {}  # the RESOLVED still waits for the FIRING being sent

    stage.clock.set(start + timedelta(minutes=15))  # past a lease's length since queued
    deliver_pending(store, stage.clock, me, batch_size=1, environ=stage.environ)
    assert stage.pd.actions == {key: ["resolve"]}


def test_notify_on_resolve_false_keeps_people_quiet_but_closes_the_incident(
    store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    stage = Stage(store, flags, sink, pagerduty_server, notify_on_resolve=False)
    stage.run(0, "firing")
    key = stage.key()
    for minute in (5, 10, 15):
        stage.run(minute, "ok")
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []
    assert stage.slack_states() == ["FIRING"]


def test_a_silence_at_the_end_holds_back_slack_not_the_incident(
    store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    with store.transaction() as session:
        matchers = [parse_matcher("team=data")]
        add_silence(session, matchers, timedelta(hours=2), "deploy", stage.clock.now())
    for minute in (5, 10, 15):
        stage.run(minute, "ok")
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []
    assert stage.slack_states() == ["FIRING"]
    with store.session() as session:
        slack_resolved = session.execute(
            select(Notification.status).where(
                Notification.channel == "slack", Notification.kind == "resolved"
            )
        ).all()
    assert [s for (s,) in slack_resolved] == ["suppressed"]


class TriggersThrottled(PagerDutyStandIn):
    """A PagerDuty that answers 429 to every `trigger` while `throttling`, and takes the rest."""

    throttling = True

    def _check(self, received: Received) -> Reply | None:
        if self.throttling and received.json().get("event_action") == "trigger":
            return Reply(429, '{"status":"throttled"}', {"Retry-After": "1"}, "application/json")
        return super()._check(received)


def test_a_firing_retried_after_429s_never_reopens_a_resolved_incident(
    store: Any, flags: Flags, sink: Sink
) -> None:
    pd = TriggersThrottled().start()
    assert isinstance(pd, TriggersThrottled)
    try:
        stage = Stage(store, flags, sink, pd)
        # Runs are not clean while PagerDuty throttles (a notification stays overdue).
        stage.run(0, "firing", clean=False)
        key = stage.key()
        for minute in (5, 10, 15):
            stage.run(minute, "ok", clean=False)
        # The FIRING was refused each time; the recovery is confirmed and its RESOLVED taken.
        assert pd.actions == {key: ["resolve"]}
        pd.throttling = False
        for minute in (20, 40, 80):
            stage.run(minute, "ok", clean=False)
        # Before, the FIRING retried now went out after the RESOLVED: an incident opened
        # after its episode ended, which nothing would ever close.
        assert pd.actions == {key: ["resolve"]}
        assert stage.open_incidents() == []
    finally:
        pd.stop()
    with store.session() as session:
        rows = session.execute(
            select(Notification.kind, Notification.status, Notification.last_error)
            .where(Notification.channel == "pagerduty")
            .order_by(Notification.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("firing", "suppressed", RESOLVED_FIRST),
        ("resolved", "sent", None),
    ]
    assert stage.slack_states() == ["FIRING", "RESOLVED"]


@pytest.mark.parametrize("how", [["disable", "etl"], ["delete", "etl", "--yes"]])
def test_disabling_or_deleting_the_alert_resolves_its_incident(
    store: Any,
    store_url: str,
    flags: Flags,
    sink: Sink,
    pagerduty_server: PagerDutyStandIn,
    how: list[str],
) -> None:
    """People are told nothing (README: "no RESOLVED is sent"); the incident still closes."""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    done = Cli(store_url)(*how)
    assert done.exit_code == 0, done.output
    # Minutes after the command's real time, whatever the second the test started at: the
    # RESOLVED it queued is due by then.
    stage.run(5, "firing")
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []
    assert stage.slack_states() == ["FIRING"]


def test_purging_the_history_of_an_alert_whose_incident_is_open_is_refused(
    store: Any,
    store_url: str,
    flags: Flags,
    sink: Sink,
    pagerduty_server: PagerDutyStandIn,
) -> None:
    """`delete --purge-history` deleted the RESOLVED that deleting queued for PagerDuty along
    with the history: the incident stayed open for ever. Refused (exit 2, nothing written);
    deleted with its history kept, the incident closes; a purge with nothing owed goes on."""
    stage = Stage(store, flags, sink, pagerduty_server)
    stage.run(0, "firing")
    key = stage.key()
    cli = Cli(store_url)
    refused = cli("delete", "etl", "--yes", "--purge-history")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("error: --purge-history: alert ")
    assert "incident open on pagerduty" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    with store.session() as session:  # nothing written: the alert and its episode are as they were
        assert session.scalars(select(AlertHistory.resolved_at)).all() == [None]
        assert not session.scalars(
            select(Notification.id).where(Notification.kind == "resolved")
        ).all()
    done = cli("delete", "etl", "--yes")
    assert done.exit_code == 0, done.output
    stage.run(5, "firing")  # minutes after the command's real time: its RESOLVED is due
    assert stage.pd.actions == {key: ["trigger", "resolve"]}
    assert stage.open_incidents() == []


def test_purging_an_alert_that_owes_no_tracker_anything(
    store: Any, store_url: str, flags: Flags, sink: Sink
) -> None:
    make_alert(store, flags, "plain", recipients={"slack": sink.hook("plain")})
    run_evaluation(store, ScenarioClock(), RunOptions(host="test-host"))
    done = Cli(store_url)("delete", "plain", "--yes", "--purge-history")
    assert done.exit_code == 0, done.output
    assert "history rows removed" in done.stdout
    with store.session() as session:
        assert session.scalars(select(AlertHistory.id)).all() == []


def test_webhooks_of_both_formats_track_incidents_slack_does_not(
    store: Any, flags: Flags, sink: Sink
) -> None:
    """notify_on_resolve false: Alertmanager-format and native webhooks (machines keeping an
    alert firing until told) get the RESOLVED; Slack (people) does not."""
    make_alert(
        store,
        flags,
        "etl",
        channels=["webhook", "slack"],
        recipients={
            "webhook": [sink.hook("native"), {"url": sink.hook("am"), "format": "alertmanager"}],
            "slack": sink.hook("etl"),
        },
        notify_on_resolve=False,
    )
    clock = ScenarioClock()
    for minute, flag in ((0, "firing"), (5, "ok"), (10, "ok"), (15, "ok")):
        clock.set(clock.start + timedelta(minutes=minute))
        flags.set(etl=flag)
        assert run_evaluation(store, clock, RunOptions(host="test-host", environ={})).ok
    assert [b["event"] for b in sink.bodies("native")] == ["firing", "resolved"]
    assert [b["status"] for b in sink.bodies("am")] == ["firing", "resolved"]
    assert [slack_state(b) for b in sink.bodies("etl")] == ["FIRING"]


def _flap_then_settle(stage: Stage, store_url: str, *, resolve_by_hand: bool) -> None:
    """Flip at every evaluation until FLAPPING is told, then stay ok until the flap settles
    (optionally closing the episode by hand while it still flaps)."""
    for step in range(7):
        stage.run(5 * step, "firing" if step % 2 == 0 else "ok")
    assert "FLAPPING" in stage.slack_states()
    if resolve_by_hand:
        done = Cli(store_url)("history", "resolve", str(stage.episode().id))
        assert done.exit_code == 0, done.output
    for step in range(7, 40):
        stage.run(5 * step, "ok")


def _ends_told(store: Any) -> list[tuple[str, str, str | None]]:
    with store.session() as session:
        rows = session.execute(
            select(Notification.channel, Notification.status, Notification.last_error)
            .where(Notification.payload["state"].as_string() == "RESOLVED")
            .order_by(Notification.id)
        ).all()
    return [tuple(row) for row in rows]


def test_a_flap_settling_after_the_incident_closed_does_not_resolve_it_again(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """notify_on_resolve false: the episode closes while it still flaps (PagerDuty is sent its
    RESOLVED), then the flap settles as resolved. The settling message went to PagerDuty as a
    second `resolve` (and a second `resolved` to webhooks) for the same episode."""
    stage = Stage(store, flags, sink, pagerduty_server, notify_on_resolve=False)
    _flap_then_settle(stage, store_url, resolve_by_hand=False)
    key = stage.key()
    assert stage.pd.actions == {key: ["trigger", "trigger", "resolve"]}
    assert stage.open_incidents() == []
    ends = _ends_told(store)
    assert [(c, s) for c, s, _ in ends if s == "sent"] == [
        ("pagerduty", "sent"),
        ("slack", "sent"),  # people hear the flap settle: notify_on_resolve sent them nothing
    ]
    assert ("pagerduty", "suppressed", RESOLVED_ONCE) in ends


def test_a_hand_resolve_while_flapping_is_told_once_to_everyone(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    """`alerts history resolve` during a flap queues the RESOLVED; the flap settling later
    as resolved told Slack and PagerDuty the same episode's end a second time."""
    stage = Stage(store, flags, sink, pagerduty_server)
    _flap_then_settle(stage, store_url, resolve_by_hand=True)
    key = stage.key()
    assert stage.pd.actions == {key: ["trigger", "trigger", "resolve"]}
    assert stage.slack_states() == ["FIRING", "FLAPPING", "RESOLVED"]
    assert [(c, s) for c, s, _ in _ends_told(store)] == [
        ("slack", "sent"),
        ("pagerduty", "sent"),
        ("slack", "suppressed"),
        ("pagerduty", "suppressed"),
    ]


def test_disabling_while_the_firing_is_retried_still_resolves(
    store: Any, store_url: str, flags: Flags, sink: Sink
) -> None:
    """A FIRING being retried may have reached PagerDuty already (a try that timed out): the
    disable cancels it and still queues the RESOLVED."""
    pd = TriggersThrottled().start()
    assert isinstance(pd, TriggersThrottled)
    try:
        stage = Stage(store, flags, sink, pd)
        stage.run(0, "firing", clean=False)
        key = stage.key()
        assert pd.actions == {}
        done = Cli(store_url)("disable", "etl")
        assert done.exit_code == 0, done.output
        pd.throttling = False
        stage.run(5, "firing", clean=False)
        assert pd.actions == {key: ["resolve"]}
    finally:
        pd.stop()
    with store.session() as session:
        rows = session.execute(
            select(Notification.kind, Notification.status)
            .where(Notification.channel == "pagerduty")
            .order_by(Notification.id)
        ).all()
    assert [tuple(r) for r in rows] == [("firing", "cancelled"), ("resolved", "sent")]
