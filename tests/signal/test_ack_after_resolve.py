"""What an outside tester found in `alerts ack` / PagerDuty acknowledge, each reproduced against
real stores (SQLite, PostgreSQL, MariaDB), the evaluator and the loopback PagerDuty stand-in:

1. an acknowledge left pending (429) must never go after the episode's RESOLVED;
2. an evaluation resolving the episode between ack's lookup and its write must win (locked
   re-check; PostgreSQL and MariaDB, a real concurrent commit);
3. a SQLite store reuses ids: a new alert after `delete --purge-history` must not touch the
   deleted alert's open incident (dedup_key carries the episode's start);
4. `alerts ack` makes one attempt and never waits out a Retry-After;
5. `alerts unack` refuses a resolved episode; its PagerDuty note only after a delivered ack;
   `ack` says when it waits behind a FIRING not yet delivered;
6. ALERTS_USER with a control character is refused like `--note`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.errors import InputError
from datamantri_alerts.services.delivery import deliver_pending
from datamantri_alerts.services.leases import Holder
from datamantri_alerts.services.signal.ack import RESOLVED_FIRST, acknowledge
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.channels.conftest import PD_ROUTING_KEY, PagerDutyStandIn, Reply, pagerduty_environ
from tests.conftest import Cli, dump_store
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.signal.test_ack_pagerduty import USER, Scene, pagerduty_server

__all__ = ["pagerduty_server"]


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def cli(store_url: str) -> Cli:
    return Cli(store_url)


@pytest.fixture
def scene(store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn) -> Scene:
    return Scene(store, flags, sink, pagerduty_server)


def episode_of(scene: Scene) -> AlertHistory:
    with scene.store.session() as session:
        (episode,) = session.scalars(select(AlertHistory))
        session.expunge(episode)
    return episode


def test_an_acknowledge_left_pending_never_goes_after_the_resolve(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    key = scene.key()
    throttled = Reply(429, '{"status":"throttled"}', {"Retry-After": "2"}, "application/json")
    scene.pd.script(throttled, throttled)  # the ack's attempt, then the next run's
    assert cli("ack", "etl", env=scene.env()).exit_code == 0
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "pending")]
    scene.run(5, "ok")  # a recovery to confirm: the episode is still open
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "pending")]

    # The check recovers: the RESOLVED is queued and the waiting acknowledge is withdrawn.
    scene.run(10, "ok")
    scene.run(70, "ok")
    assert scene.pd.actions == {key: ["trigger", "resolve"]}
    assert scene.ack_rows() == [("pagerduty", "suppressed", RESOLVED_FIRST)]


def test_delivery_never_sends_an_acknowledge_of_a_resolved_episode(scene: Scene, cli: Cli) -> None:
    """Whoever queued it (an older version, a process that lost the race), an ACKNOWLEDGED
    row whose episode is resolved is suppressed at delivery, not sent."""
    scene.run(0, "firing")
    key = scene.key()
    unavailable = Reply(503, "{}", content_type="application/json")
    scene.pd.script(unavailable, unavailable)
    assert cli("ack", "etl", env=scene.env()).exit_code == 0
    scene.run(5, "ok")
    scene.run(10, "ok")
    assert scene.pd.actions == {key: ["trigger", "resolve"]}
    # Put the acknowledge back in the outbox, due now, as a stray writer would leave it.
    with scene.store.transaction() as session:
        session.execute(
            update(Notification)
            .where(Notification.kind == "acknowledged")
            .values(
                status="pending", last_error=None, next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC)
            )
        )
    tally = deliver_pending(
        scene.store, scene.clock, Holder.current("test-host"), environ=scene.environ
    )
    assert tally.sent == 0
    assert scene.pd.actions == {key: ["trigger", "resolve"]}
    assert scene.ack_rows() == [("pagerduty", "suppressed", RESOLVED_FIRST)]


def test_an_evaluation_resolving_the_episode_during_ack_wins(scene: Scene, store_url: str) -> None:
    """The episode is looked up open, then a real evaluation resolves it and commits in its
    own transaction, then ack writes: the check after the row lock refuses it."""
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writing transaction at a time (BEGIN IMMEDIATE)")
    scene.run(0, "firing")
    key = scene.key()
    episode_id = episode_of(scene).id
    now = datetime.now(UTC)
    with (
        pytest.raises(InputError, match="already resolved"),
        scene.store.transaction() as session,
    ):
        # Looked up open and held (the identity map is weak): find_episode gets this object
        # back as it was read, as in a lookup that ran just before the concurrent commit.
        looked_up = session.get(AlertHistory, episode_id)
        assert looked_up is not None and looked_up.resolved_at is None
        scene.run(5, "ok")  # another transaction resolves the episode and commits
        scene.run(10, "ok")
        acknowledge(session, f"#{episode_id}", by="alice", now=now, note="race")
    episode = episode_of(scene)
    assert episode.resolved_at is not None and episode.acknowledged_at is None
    assert scene.ack_rows() == []
    assert scene.pd.actions == {key: ["trigger", "resolve"]}


def test_a_new_alert_with_reused_ids_does_not_touch_the_deleted_alerts_incident(
    scene: Scene, cli: Cli, store_url: str
) -> None:
    scene.run(0, "firing")
    old_key = scene.key()
    old = episode_of(scene)
    assert old_key == (
        f"datamantri-alerts/{old.alert_id}/{old.id}/{int(old.triggered_at.timestamp())}"
    )
    # Its history cannot be purged while PagerDuty is owed the RESOLVED (the incident would stay
    # open for ever): resolved by hand and told, then it can.
    assert cli("delete", "etl", "--yes", "--purge-history").exit_code == 2
    # Sent now, or (this shell has no routing key) left due for the next run: minutes after
    # the command's real time, whatever the second the test started at.
    assert cli("history", "resolve", str(old.id)).exit_code == 0
    scene.run(5, "ok")
    assert scene.pd.actions == {old_key: ["trigger", "resolve"]}
    gone = cli("delete", "etl", "--yes", "--purge-history")
    assert gone.exit_code == 0, gone.output
    make_alert(
        scene.store,
        scene.flags,
        "etl",
        channels=["pagerduty"],
        recipients={"pagerduty": "${PAGERDUTY_ROUTING_KEY}"},
    )
    scene.run(30, "firing")
    new = episode_of(scene)
    if store_url.startswith("sqlite"):
        assert (new.alert_id, new.id) == (old.alert_id, old.id)  # the ids came back
    assert cli("ack", "etl", env=scene.env()).exit_code == 0
    new_key = f"datamantri-alerts/{new.alert_id}/{new.id}/{int(new.triggered_at.timestamp())}"
    assert new_key != old_key
    # The deleted alert's incident is untouched; the new one was opened and acknowledged.
    assert scene.pd.actions == {
        old_key: ["trigger", "resolve"],
        new_key: ["trigger", "acknowledge"],
    }
    assert scene.pd.opened == 2
    scene.run(35, "ok")
    scene.run(40, "ok")
    assert scene.pd.actions[new_key] == ["trigger", "acknowledge", "resolve"]
    assert scene.pd.actions[old_key] == ["trigger", "resolve"]


@pytest.mark.serial  # wall-clock bound: one attempt, one request timeout
def test_ack_makes_one_attempt_and_never_waits_out_retry_after(
    scene: Scene, cli: Cli, store_url: str
) -> None:
    scene.run(0, "firing")
    key = scene.key()
    scene.pd.script(
        Reply(503, '{"status":"unavailable"}', {"Retry-After": "120"}, "application/json")
    )
    # The configured policy (3 attempts, Retry-After honoured up to 60 s) is for evaluate.
    env = {**USER, **pagerduty_environ(scene.pd)}
    started = time.monotonic()
    done = cli("ack", "etl", env=env)
    elapsed = time.monotonic() - started
    assert done.exit_code == 0, done.output
    assert elapsed < 15, elapsed
    (line,) = done.stderr.strip().splitlines()
    assert "not delivered yet" in line and "alerts evaluate" in line and "503" in line
    assert [r.json()["event_action"] for r in scene.pd.requests] == ["trigger", "acknowledge"]
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "pending")]
    # The next evaluate (after the asked-for 120 s) delivers it with the normal policy.
    scene.run(65, "firing")
    assert scene.pd.actions == {key: ["trigger", "acknowledge"]}
    assert PD_ROUTING_KEY not in done.output + str(dump_store(store_url))


def test_unack_refuses_a_resolved_episode_and_keeps_its_record(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    assert cli("ack", "etl", "--note", "on it", env=scene.env()).exit_code == 0
    scene.run(5, "ok")
    scene.run(10, "ok")
    episode_id = episode_of(scene).id
    refused = cli("unack", f"#{episode_id}", env=scene.env())
    assert refused.exit_code == 2 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "already resolved" in line and "REF" in line
    by_ref = cli("unack", "etl", env=scene.env())
    assert by_ref.exit_code == 2 and "no open episode to un-acknowledge" in by_ref.stderr
    episode = episode_of(scene)
    assert (episode.acknowledged_by, episode.ack_note) == ("alice", "on it")
    by_ack = cli("ack", "etl", env=scene.env())
    assert by_ack.exit_code == 2 and "no open episode to acknowledge" in by_ack.stderr


def test_unack_mentions_pagerduty_only_after_an_acknowledge_reached_it(
    scene: Scene, cli: Cli
) -> None:
    scene.run(0, "firing")
    scene.pd.script(Reply(503, "{}", content_type="application/json"))
    assert cli("ack", "etl", env=scene.env()).exit_code == 0  # not delivered
    undone = cli("unack", "etl", "--json", env=scene.env())
    assert undone.exit_code == 0 and undone.json()["pagerduty_stays_acknowledged"] is False
    assert cli("ack", "etl", env=scene.env()).exit_code == 0  # delivered this time
    undone = cli("unack", "etl", env=scene.env())
    assert undone.exit_code == 0 and "PagerDuty has no un-acknowledge" in undone.stdout


def test_ack_says_when_it_waits_behind_an_undelivered_firing(scene: Scene, cli: Cli) -> None:
    assert cli("mute", "etl", "--for", "30m").exit_code == 0
    scene.run(0, "firing")
    done = cli("ack", "etl", env=scene.env())
    assert done.exit_code == 0, done.output
    waiting = [line for line in done.stdout.splitlines() if "FIRING has not reached" in line]
    assert len(waiting) == 1 and "1 destination" in waiting[0] and "after it" in waiting[0]
    assert cli("ack", "etl", "--json", env=scene.env()).json()["waiting_for_firing"] == 0


@pytest.mark.parametrize("user", ["al\x1bice", "bob\nmallory", "eve\x07"])
def test_alerts_user_with_a_control_character_is_refused(scene: Scene, cli: Cli, user: str) -> None:
    scene.run(0, "firing")
    done = cli("ack", "etl", env={**scene.env(), "ALERTS_USER": user})
    assert done.exit_code == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "ALERTS_USER" in line
    assert "\x1b" not in done.stderr
    assert episode_of(scene).acknowledged_at is None
    assert scene.ack_rows() == []
    assert scene.pd.actions == {scene.key(): ["trigger"]}


def test_a_flapping_episode_is_one_incident_from_trigger_to_resolve(
    store: Any,
    flags: Flags,
    sink: Sink,
    pagerduty_server: PagerDutyStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The FLAPPING notice and the settling RESOLVED carry their episode's start like every
    message of it, so they name the FIRING's incident (the key is built from it)."""
    from datamantri_alerts.clock import FrozenClock
    from tests.signal.scenario import T0, drive, run, states
    from tests.signal.test_flapping_scenarios import flipping_for_an_hour

    for name, value in pagerduty_environ(pagerduty_server).items():
        monkeypatch.setenv(name, value)
    make_alert(
        store,
        flags,
        "flappy",
        channels=["slack", "pagerduty"],
        recipients={"slack": sink.hook("flappy"), "pagerduty": "${PAGERDUTY_ROUTING_KEY}"},
    )
    clock = FrozenClock(T0 + timedelta(seconds=20))
    run(store, clock)
    drive(store, clock, flags, "flappy", flipping_for_an_hour, 4 * 60)
    assert states(sink, "flappy") == ["FIRING", "FLAPPING", "RESOLVED"]
    with store.session() as session:
        (episode,) = session.scalars(select(AlertHistory))
    epoch = int(episode.triggered_at.timestamp())
    key = f"datamantri-alerts/{episode.alert_id}/{episode.id}/{epoch}"
    assert list(pagerduty_server.incidents) == [key]
    assert pagerduty_server.actions[key][-1] == "resolve"
    assert pagerduty_server.incidents[key]["status"] == "resolved"


class WebhookScene:
    """An alert `etl` sending native-format webhooks to the sink (`hook/etl`)."""

    def __init__(self, store: Any, flags: Flags, sink: Sink) -> None:
        from tests.signal.test_ack import ScenarioClock

        self.store, self.flags, self.sink = store, flags, sink
        hook = {"webhook": sink.hook("etl")}
        make_alert(store, flags, "etl", channels=["webhook"], recipients=hook)
        self.clock = ScenarioClock()

    def run(self, minutes: int, flag: str) -> None:
        from datamantri_alerts.services.evaluate import RunOptions, run_evaluation

        self.clock.set(self.clock.start + timedelta(minutes=minutes))
        self.flags.set(etl=flag)
        options = RunOptions(host="test-host", environ={"ALERTS_RETRY_ATTEMPTS": "1"})
        assert run_evaluation(self.store, self.clock, options).ok

    def delivered_events(self) -> list[str]:
        return [r.body["event"] for r in self.sink.delivered() if r.path == "/hook/etl"]


def test_a_webhook_acknowledgement_left_pending_never_goes_after_the_resolve(
    store: Any, flags: Flags, sink: Sink, cli: Cli
) -> None:
    scene = WebhookScene(store, flags, sink)
    scene.run(0, "firing")
    throttled = (429, {"Retry-After": "2"}, "slow down")
    sink.on("etl", throttled, throttled)  # the ack's attempt, then the next run's
    assert cli("ack", "etl", env={**USER, "ALERTS_RETRY_ATTEMPTS": "1"}).exit_code == 0
    scene.run(5, "ok")
    scene.run(10, "ok")
    scene.run(70, "ok")
    assert scene.delivered_events() == ["firing", "resolved"]
    with store.session() as session:
        rows = session.execute(
            select(Notification.status, Notification.last_error).where(
                Notification.kind == "acknowledged"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("suppressed", RESOLVED_FIRST)]


@pytest.mark.serial  # wall-clock bound: one attempt, one request timeout
def test_ack_against_a_hanging_webhook_returns_after_one_request_timeout(
    store: Any, flags: Flags, sink: Sink, cli: Cli
) -> None:
    scene = WebhookScene(store, flags, sink)
    scene.run(0, "firing")
    sink.on("etl", "stall", "stall", "stall")
    env = {**USER, "ALERTS_HTTP_READ_TIMEOUT": "1", "ALERTS_RETRY_INITIAL_DELAY": "1"}
    started = time.monotonic()
    done = cli("ack", "etl", env=env)
    elapsed = time.monotonic() - started
    assert done.exit_code == 0, done.output
    # One request with its read timeout (1 s); three attempts and backoff would be > 4 s.
    assert elapsed < 3.5, elapsed
    stalled = [r for r in sink.received if r.path == "/hook/etl" and r.status == 0]
    assert len(stalled) == 1
    (line,) = done.stderr.strip().splitlines()
    assert "not delivered yet" in line and "alerts evaluate" in line
