"""`alerts ack` tells PagerDuty (issue 15): through the CLI against a real store (SQLite,
PostgreSQL, MariaDB), the evaluator, the loopback PagerDuty stand-in (which validates every
event as the Events API v2 documents it) and the loopback Slack sink. The acknowledge carries
the FIRING's dedup_key; a 503 leaves it pending for the next `alerts evaluate`; Slack is not
told; no routing key anywhere in output or the store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.channels.conftest import (
    PD_ROUTING_KEY,
    PagerDutyStandIn,
    Reply,
    pagerduty_environ,
    pagerduty_server,
)
from tests.conftest import Cli, dump_store
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state
from tests.signal.test_ack import ScenarioClock

__all__ = ["pagerduty_server"]

USER = {"ALERTS_USER": "alice"}
#: One attempt per command: a 503 is left for the next run at once (no in-run backoff).
ONE_TRY = {"ALERTS_RETRY_ATTEMPTS": "1"}


@pytest.fixture
def cli(store_url: str) -> Cli:
    return Cli(store_url)


class Scene:
    """An alert `etl` sending to Slack (the sink) and PagerDuty (the stand-in)."""

    def __init__(self, store: Any, flags: Flags, sink: Sink, pd: PagerDutyStandIn) -> None:
        self.store, self.flags, self.sink, self.pd = store, flags, sink, pd
        self.environ = {**pagerduty_environ(pd), **ONE_TRY}
        make_alert(
            store,
            flags,
            "etl",
            channels=["slack", "pagerduty"],
            recipients={"slack": sink.hook("etl"), "pagerduty": "${PAGERDUTY_ROUTING_KEY}"},
            repeat_interval_minutes=60,
        )
        self.clock = ScenarioClock()

    def run(self, minutes: int, flag: str) -> None:
        self.clock.set(self.clock.start + timedelta(minutes=minutes))
        self.flags.set(etl=flag)
        as_a_new_process()
        summary = run_evaluation(
            self.store, self.clock, RunOptions(host="test-host", environ=self.environ)
        )
        assert summary.ok, summary.problems

    def env(self) -> dict[str, str]:
        return {**USER, **self.environ}

    def key(self) -> str:
        (key,) = self.pd.incidents
        return key

    def slack_states(self) -> list[str]:
        return [slack_state(b) for b in self.sink.bodies("etl")]

    def ack_rows(self) -> list[tuple[str, str, str | None]]:
        with self.store.session() as session:
            rows = session.execute(
                select(Notification.channel, Notification.status, Notification.last_error)
                .where(Notification.kind == "acknowledged")
                .order_by(Notification.id)
            ).all()
        return [tuple(row) for row in rows]


@pytest.fixture
def scene(store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn) -> Scene:
    return Scene(store, flags, sink, pagerduty_server)


def test_ack_acknowledges_the_firing_incident_and_slack_hears_nothing(
    scene: Scene, cli: Cli, store_url: str
) -> None:
    scene.run(0, "firing")
    key = scene.key()
    assert scene.pd.actions == {key: ["trigger"]}

    done = cli("ack", "etl", "--note", "restarting the loader", env=scene.env())
    assert done.exit_code == 0, done.output
    assert "acknowledged episode" in done.stdout
    assert "acknowledgement sent to 1 destination" in done.stdout
    assert done.stderr == ""
    # The acknowledge went at once, on the FIRING's incident, in the documented shape.
    assert scene.pd.actions == {key: ["trigger", "acknowledge"]}
    assert scene.pd.incidents[key]["status"] == "acknowledged"
    event = scene.pd.requests[-1].json()
    assert event == {"routing_key": PD_ROUTING_KEY, "event_action": "acknowledge", "dedup_key": key}
    assert scene.ack_rows() == [("pagerduty", "sent", None)]
    # Slack (people) is not told.
    assert scene.slack_states() == ["FIRING"]

    # The episode's history records the delivery like any other.
    with scene.store.session() as session:
        (episode,) = session.scalars(select(AlertHistory))
        kinds = [(e["kind"], e["channel"], e["status"]) for e in episode.notifications_sent]
    assert ("acknowledged", "pagerduty", "sent") in kinds

    # Resolution: one incident, trigger -> acknowledge -> resolve; Slack hears the RESOLVED.
    scene.run(70, "ok")
    scene.run(75, "ok")
    assert scene.pd.actions == {key: ["trigger", "acknowledge", "resolve"]}
    assert scene.pd.incidents[key]["status"] == "resolved" and scene.pd.opened == 1
    assert scene.slack_states() == ["FIRING", "RESOLVED"]

    as_json = cli("history", "show", str(episode.id), "--json")
    assert as_json.exit_code == 0
    for text in (done.output, as_json.output, str(dump_store(store_url))):
        assert PD_ROUTING_KEY not in text


def test_a_503_leaves_it_pending_and_the_next_run_delivers_it(
    scene: Scene, cli: Cli, store_url: str
) -> None:
    scene.run(0, "firing")
    key = scene.key()
    scene.pd.script(Reply(503, '{"status": "unavailable"}', content_type="application/json"))

    done = cli("ack", "etl", env=scene.env())
    assert done.exit_code == 0, done.output  # the acknowledgement is recorded
    (line,) = done.stderr.strip().splitlines()
    assert "not delivered yet" in line and "alerts evaluate" in line and "503" in line
    assert "${PAGERDUTY_ROUTING_KEY}" in line and PD_ROUTING_KEY not in done.output
    assert scene.pd.incidents[key]["status"] == "triggered"
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "pending")]
    with scene.store.session() as session:
        (episode,) = session.scalars(select(AlertHistory))
        assert episode.acknowledged_by == "alice"

    # The next evaluator run delivers the outbox, the acknowledge included (the ack also
    # stops the REPEAT this run would otherwise send).
    scene.run(65, "firing")
    assert scene.pd.actions == {key: ["trigger", "acknowledge"]}
    assert scene.pd.incidents[key] == {"status": "acknowledged", "events": 1}
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "sent")]
    assert scene.slack_states() == ["FIRING"]
    assert PD_ROUTING_KEY not in str(dump_store(store_url))


def test_acking_twice_sends_once_unack_then_ack_sends_again(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    key = scene.key()
    assert cli("ack", "etl", env=scene.env()).exit_code == 0
    again = cli("ack", "etl", "--note", "still on it", env=scene.env())
    assert again.exit_code == 0 and "acknowledgement sent" not in again.stdout
    assert scene.pd.actions[key] == ["trigger", "acknowledge"]

    undone = cli("unack", "etl", env=scene.env())
    assert undone.exit_code == 0, undone.output
    assert "no longer acknowledged" in undone.stdout
    assert "PagerDuty has no un-acknowledge" in undone.stdout
    assert cli("unack", "etl", "--json", env=scene.env()).json()["was_acknowledged"] is False
    assert scene.pd.actions[key] == ["trigger", "acknowledge"]  # nothing sent by unack

    # Given again after being taken back: a new acknowledgement, sent again.
    assert cli("ack", "etl", "--json", env=scene.env()).json()["notifications"]["sent"] == 1
    assert scene.pd.actions[key] == ["trigger", "acknowledge", "acknowledge"]
    assert scene.slack_states() == ["FIRING"]


def test_unack_withdraws_an_acknowledge_not_yet_sent(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    key = scene.key()
    scene.pd.script(Reply(503, "{}", content_type="application/json"))
    assert cli("ack", "etl", env=scene.env()).exit_code == 0
    assert cli("unack", "etl", env=scene.env()).exit_code == 0
    assert scene.ack_rows() == [
        ("pagerduty", "suppressed", "acknowledgement taken back before it was sent")
    ]
    scene.run(5, "firing")
    assert scene.pd.actions[key] == ["trigger"]  # the 503'd acknowledge never went


def test_a_muted_alerts_acknowledge_follows_its_firing_after_the_mute(
    scene: Scene, cli: Cli
) -> None:
    """Muted when it fired: PagerDuty has no incident, so `ack` sends nothing then; when the
    mute ends the held FIRING goes and its acknowledge right after, in the same run."""
    assert cli("mute", "etl", "--for", "30m").exit_code == 0
    scene.run(0, "firing")
    assert scene.pd.requests == []
    done = cli("ack", "etl", env=scene.env())
    assert done.exit_code == 0 and "acknowledgement sent" not in done.stdout
    assert scene.ack_rows() == []

    assert cli("unmute", "etl").exit_code == 0
    scene.run(5, "firing")
    key = scene.key()
    assert scene.pd.actions == {key: ["trigger", "acknowledge"]}
    assert scene.pd.incidents[key]["status"] == "acknowledged"
    assert scene.slack_states() == ["FIRING"]  # Slack gets the held FIRING, not the ack


def test_a_resolved_episode_is_not_acknowledged(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    scene.run(5, "ok")
    scene.run(10, "ok")
    with scene.store.session() as session:
        (episode,) = session.scalars(select(AlertHistory))
    refused = cli("ack", f"#{episode.id}", env=scene.env())
    assert refused.exit_code == 2 and "already resolved" in refused.stderr
    assert scene.pd.actions[scene.key()] == ["trigger", "resolve"]
    assert scene.ack_rows() == []


def test_native_webhooks_are_told_alertmanager_ones_are_not(
    store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn, cli: Cli
) -> None:
    make_alert(
        store,
        flags,
        "etl",
        channels=["webhook"],
        recipients={
            "webhook": [sink.hook("native"), {"url": sink.hook("am"), "format": "alertmanager"}]
        },
    )
    clock = ScenarioClock()
    flags.set(etl="firing")
    assert run_evaluation(store, clock, RunOptions(host="test-host", environ={})).ok
    done = cli("ack", "etl", "--note", "on it", env={**USER, **ONE_TRY})
    assert done.exit_code == 0, done.output
    assert "acknowledgement sent to 1 destination" in done.stdout
    native = [(b["event"], b["summary"]) for b in sink.bodies("native")]
    assert native == [("firing", native[0][1]), ("acknowledged", "acknowledged by alice: on it")]
    assert [b["status"] for b in sink.bodies("am")] == ["firing"]  # nothing more


def test_an_unusable_delivery_setting_still_records_the_ack(scene: Scene, cli: Cli) -> None:
    scene.run(0, "firing")
    done = cli("ack", "etl", env={**scene.env(), "ALERTS_DIGEST_THRESHOLD": "lots"})
    assert done.exit_code == 0, done.output
    (line,) = done.stderr.strip().splitlines()
    assert "ALERTS_DIGEST_THRESHOLD" in line and "alerts evaluate" in line
    assert [(c, s) for c, s, _ in scene.ack_rows()] == [("pagerduty", "pending")]
    scene.run(5, "firing")
    assert scene.pd.actions[scene.key()] == ["trigger", "acknowledge"]
