"""ok → firing → firing (past repeat) → ok through the evaluator, to PagerDuty, a signed
Alertmanager-format webhook and Apprise stand-ins on 127.0.0.1, on every store dialect: one
PagerDuty incident triggered, folded, resolved; one Alertmanager fingerprint; secrets nowhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.channels.webhook import verify
from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import Notification
from tests.channels.conftest import (
    APPRISE_TOKEN,
    PD_ROUTING_KEY,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    LoopbackHTTPServer,
    PagerDutyStandIn,
    Received,
    Reply,
    apprise_check,
    apprise_url,
)
from tests.conftest import utc
from tests.evaluator.conftest import Flags, make_alert

T0 = utc(2026, 3, 2, 9, 0)


@pytest.fixture
def services() -> Iterator[tuple[PagerDutyStandIn, LoopbackHTTPServer, LoopbackHTTPServer]]:
    def signed(received: Received) -> Reply | None:
        ok = verify(received.body, received.headers, WEBHOOK_SECRET, now=time.time())
        return None if ok else Reply(401, "bad signature")

    pagerduty = PagerDutyStandIn().start()
    webhook = LoopbackHTTPServer(Reply(200, ""), signed).start()
    apprise = LoopbackHTTPServer(Reply(200, "{}"), apprise_check).start()
    assert isinstance(pagerduty, PagerDutyStandIn)
    yield pagerduty, webhook, apprise
    for server in (pagerduty, webhook, apprise):
        server.stop()


def test_oncall_channels_through_the_evaluator(
    any_store: Any, flags: Flags, services: tuple[PagerDutyStandIn, Any, Any]
) -> None:
    pagerduty, webhook, apprise = services
    environ = {
        "PD_KEY": PD_ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": pagerduty.url("/v2/enqueue"),
        "HOOK_SECRET": WEBHOOK_SECRET,
        "CHAT_URL": apprise_url(apprise.port),
    }
    make_alert(
        any_store,
        flags,
        "etl",
        severity="critical",
        repeat_interval_minutes=60,
        channels=["pagerduty", "webhook", "apprise"],
        recipients={
            "pagerduty": "${PD_KEY}",
            "webhook": {
                "url": webhook.url(f"/am/{WEBHOOK_TOKEN}"),
                "secret": "${HOOK_SECRET}",
                "format": "alertmanager",
            },
            "apprise": "${CHAT_URL}",
        },
    )
    clock = FrozenClock(T0)
    for minutes, flag in ((0, "ok"), (5, "firing"), (10, "firing"), (70, "firing"), (75, "ok")):
        clock.set(T0 + timedelta(minutes=minutes))
        flags.set(etl=flag)
        summary = run_evaluation(any_store, clock, RunOptions(host="h", environ=environ))
        assert summary.ok, (minutes, summary.problems, summary.notifications.as_json())

    # PagerDuty: trigger, trigger (same key, folded), resolve - one incident, resolved.
    events = [r.json() for r in pagerduty.requests]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    assert pagerduty.opened == 1
    (incident,) = pagerduty.incidents.values()
    assert incident == {"status": "resolved", "events": 2}
    assert events[0]["payload"]["severity"] == "critical"

    # Webhook in Alertmanager format, signed: firing, firing, resolved, one fingerprint.
    bodies = [r.json() for r in webhook.requests]
    assert [b["status"] for b in bodies] == ["firing", "firing", "resolved"]
    assert len({b["alerts"][0]["fingerprint"] for b in bodies}) == 1
    assert bodies[-1]["alerts"][0]["endsAt"] == "2026-03-02T10:15:00Z"
    assert bodies[0]["alerts"][0]["startsAt"] == "2026-03-02T09:05:00Z"

    # Apprise: three messages, typed by state.
    assert [r.json()["type"] for r in apprise.requests] == ["failure", "failure", "success"]

    with any_store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        stored = json.dumps([[r.recipient, r.payload, r.last_error] for r in rows], default=str)
    assert {r.status for r in rows} == {"sent"}
    for secret in (PD_ROUTING_KEY, WEBHOOK_SECRET, APPRISE_TOKEN):
        assert secret not in stored
