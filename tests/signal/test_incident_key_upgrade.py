"""An incident opened by a release before the dedup_key epoch is still resolved after upgrading.

The released version sent PagerDuty `datamantri-alerts/<alert id>/<episode id>`; this one sends
`.../<epoch>`. An episode open across the upgrade would otherwise be resolved and acknowledged
under a key PagerDuty never saw: the incident stays open forever, the on-call never told it
cleared. Each case runs the real migration (`incident_key`) on a real open episode (SQLite,
PostgreSQL, MariaDB) and watches the loopback PagerDuty stand-in.
"""

from __future__ import annotations

from typing import Any

import requests
from alembic import command
from sqlalchemy import create_engine, select

from datamantri_alerts.store.migrate import (
    SCHEMA_HEAD,
    _alembic_config,
    current_revision,
    upgrade,
)
from datamantri_alerts.store.models import AlertHistory
from tests.channels.conftest import PD_ROUTING_KEY, PagerDutyStandIn
from tests.conftest import Cli
from tests.evaluator.conftest import Flags, Sink
from tests.signal.test_ack_pagerduty import USER, Scene, pagerduty_server

__all__ = ["pagerduty_server"]

BEFORE = "nospam2_acknowledgement"


def open_under_the_released_key(scene: Scene) -> str:
    """Fire, then make the world the released version left: PagerDuty holds the incident under
    the old key, and the store is at the revision before `incident_key`, then upgraded."""
    scene.run(0, "firing")
    with scene.store.session() as session:
        episode = session.scalars(select(AlertHistory)).one()
        old_key = f"datamantri-alerts/{episode.alert_id}/{episode.id}"
    scene.pd.incidents.clear()
    scene.pd.actions.clear()
    event = {
        "routing_key": PD_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": old_key,
        "payload": {"summary": "etl: failed", "source": "old-host", "severity": "critical"},
    }
    reply = requests.post(scene.environ["PAGERDUTY_EVENTS_URL"], json=event, timeout=10)
    assert reply.status_code == 202
    # Back to the released schema on a plain engine: SQLite's batch mode rebuilds the table to
    # drop a column, and with the store's foreign keys on, that would unlink its notifications.
    plain = create_engine(scene.store.engine.url)
    try:
        command.downgrade(_alembic_config(plain), BEFORE)
        assert current_revision(plain) == BEFORE
    finally:
        plain.dispose()
    scene.store.engine.dispose()
    assert upgrade(scene.store.engine) == (BEFORE, SCHEMA_HEAD)  # as the new release opens it
    return old_key


def test_an_episode_open_across_the_upgrade_is_resolved_under_its_old_key(
    store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    scene = Scene(store, flags, sink, pagerduty_server)
    old_key = open_under_the_released_key(scene)
    scene.run(5, "ok")
    scene.run(10, "ok")  # the recovery confirmed: RESOLVED
    assert scene.pd.actions == {old_key: ["trigger", "resolve"]}
    assert scene.pd.incidents[old_key]["status"] == "resolved"


def test_an_episode_open_across_the_upgrade_is_acknowledged_under_its_old_key(
    store: Any, store_url: str, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    scene = Scene(store, flags, sink, pagerduty_server)
    old_key = open_under_the_released_key(scene)
    acked = Cli(store_url)("ack", "etl", env={**USER, **scene.environ})
    assert acked.exit_code == 0, acked.output
    assert scene.pd.actions == {old_key: ["trigger", "acknowledge"]}
    assert scene.pd.incidents[old_key]["status"] == "acknowledged"


def test_a_new_episode_after_the_upgrade_gets_the_epoch_key(
    store: Any, flags: Flags, sink: Sink, pagerduty_server: PagerDutyStandIn
) -> None:
    scene = Scene(store, flags, sink, pagerduty_server)
    old_key = open_under_the_released_key(scene)
    scene.run(5, "ok")
    scene.run(10, "ok")
    scene.run(20, "firing")
    with store.session() as session:
        episodes = session.scalars(select(AlertHistory).order_by(AlertHistory.id)).all()
    assert [e.incident_key for e in episodes] == [old_key, None]
    new = episodes[1]
    epoch = int(new.triggered_at.timestamp())
    new_key = f"datamantri-alerts/{new.alert_id}/{new.id}/{epoch}"
    assert scene.pd.actions == {old_key: ["trigger", "resolve"], new_key: ["trigger"]}
