"""PagerDuty Events API v2: one incident per episode, severity, limits, error classes."""

from __future__ import annotations

import pytest

from datamantri_alerts.channels import RecipientError, get_channel
from datamantri_alerts.channels.retry import DeliveryResult, RecipientPacer, RetryPolicy, deliver
from tests.channels.conftest import (
    PD_ROUTING_KEY,
    PagerDutyStandIn,
    Reply,
    pagerduty_environ,
    sample_message,
)

ONCE = RetryPolicy(attempts=1, jitter=0)
KEY = "${PAGERDUTY_ROUTING_KEY}"


def _send(server: PagerDutyStandIn, **message: object) -> DeliveryResult:
    return deliver(
        "pagerduty",
        sample_message(**message),
        KEY,
        environ=pagerduty_environ(server),
        policy=ONCE,
        pacer=RecipientPacer(),
    )


def test_firing_repeat_resolved_is_one_incident(pagerduty_server: PagerDutyStandIn) -> None:
    for state in ("FIRING", "REPEAT", "REPEAT"):
        result = _send(pagerduty_server, state=state, episode_id=12)
        assert result.status == "delivered", result.error
    assert pagerduty_server.opened == 1  # REPEAT did not open a new incident
    (key,) = pagerduty_server.incidents
    assert key == "datamantri-alerts/7/12"
    assert pagerduty_server.incidents[key] == {"status": "triggered", "events": 3}

    resolved = _send(pagerduty_server, state="RESOLVED", episode_id=12)
    assert resolved.status == "delivered", resolved.error
    assert pagerduty_server.incidents[key]["status"] == "resolved"
    resolve_event = pagerduty_server.requests[-1].json()
    assert resolve_event["event_action"] == "resolve"
    assert "payload" not in resolve_event

    # The next episode of the same alert is a new incident.
    _send(pagerduty_server, state="FIRING", episode_id=13)
    assert pagerduty_server.opened == 2
    assert pagerduty_server.incidents["datamantri-alerts/7/13"]["status"] == "triggered"


def test_firing_acknowledged_resolved_is_one_incident(pagerduty_server: PagerDutyStandIn) -> None:
    """`alerts ack` acknowledges the incident its FIRING triggered: the same dedup_key, only
    routing_key/event_action/dedup_key (the stand-in refuses anything else), then RESOLVED."""
    assert _send(pagerduty_server, state="FIRING", episode_id=12).status == "delivered"
    acked = _send(
        pagerduty_server,
        state="ACKNOWLEDGED",
        episode_id=12,
        summary="acknowledged by alice: restarting the loader",
        details={"acknowledged_by": "alice", "note": "restarting the loader"},
    )
    assert acked.status == "delivered", acked.error
    trigger, acknowledge = (r.json() for r in pagerduty_server.requests)
    assert acknowledge == {
        "routing_key": PD_ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": trigger["dedup_key"],
    }
    assert pagerduty_server.incidents[trigger["dedup_key"]]["status"] == "acknowledged"

    assert _send(pagerduty_server, state="RESOLVED", episode_id=12).status == "delivered"
    assert pagerduty_server.actions == {
        "datamantri-alerts/7/12": ["trigger", "acknowledge", "resolve"]
    }
    assert pagerduty_server.incidents["datamantri-alerts/7/12"]["status"] == "resolved"
    assert pagerduty_server.opened == 1


def test_acknowledge_is_retried_like_every_send(pagerduty_server: PagerDutyStandIn) -> None:
    pagerduty_server.script(Reply(503, "{}", content_type="application/json"))
    result = deliver(
        "pagerduty",
        sample_message(state="ACKNOWLEDGED", episode_id=5),
        KEY,
        environ=pagerduty_environ(pagerduty_server),
        policy=RetryPolicy(attempts=2, initial_delay=0, jitter=0),
        sleep=lambda _s: None,
        pacer=RecipientPacer(),
    )
    assert (result.status, result.attempts) == ("delivered", 2)
    assert [r.json()["event_action"] for r in pagerduty_server.requests] == ["acknowledge"] * 2
    assert PD_ROUTING_KEY not in result.recipient_display


@pytest.mark.parametrize("severity", ["info", "warning", "critical"])
def test_trigger_fields(pagerduty_server: PagerDutyStandIn, severity: str) -> None:
    result = _send(pagerduty_server, severity=severity, episode_id=3, summary="s" * 5000)
    assert result.status == "delivered", result.error
    event = pagerduty_server.requests[0].json()
    assert event["routing_key"] == PD_ROUTING_KEY
    assert event["event_action"] == "trigger"
    payload = event["payload"]
    assert payload["severity"] == severity
    assert len(payload["summary"]) == 1024
    assert payload["summary"].startswith("Nightly ETL failed: sss")
    assert payload["source"] == "etl-runner-1"
    assert payload["class"] == "pipeline_failure"
    assert payload["timestamp"] == "2024-08-01T06:30:00Z"
    assert payload["custom_details"]["pipeline_id"] == "xyz-789"


def test_test_message_has_its_own_key(pagerduty_server: PagerDutyStandIn) -> None:
    result = _send(pagerduty_server, state="TEST", episode_id=None)
    assert result.status == "delivered", result.error
    trigger, resolve = (r.json() for r in pagerduty_server.requests)
    assert trigger["dedup_key"].startswith("datamantri-alerts/test/7/")
    assert trigger["payload"]["summary"].startswith("[TEST] ")
    # The test incident is resolved right away: nobody is left paged.
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
    assert pagerduty_server.incidents[trigger["dedup_key"]]["status"] == "resolved"


def test_invalid_event_is_permanent_and_keeps_the_errors(
    pagerduty_server: PagerDutyStandIn,
) -> None:
    environ = {**pagerduty_environ(pagerduty_server), "PAGERDUTY_ROUTING_KEY": "wrong-key-123456"}
    result = deliver(
        "pagerduty", sample_message(episode_id=1), KEY, environ=environ, policy=RetryPolicy()
    )
    assert result.status == "failed"
    assert result.attempts == 1 and result.retryable is False and result.error_status == 400
    assert "Event object is invalid: Invalid routing key" in (result.error or "")
    assert "wrong-key-123456" not in (result.error or "")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttle_and_server_errors_are_retried(
    pagerduty_server: PagerDutyStandIn, status: int
) -> None:
    pagerduty_server.script(Reply(status, "{}", content_type="application/json"))
    result = deliver(
        "pagerduty",
        sample_message(episode_id=1),
        KEY,
        environ=pagerduty_environ(pagerduty_server),
        policy=RetryPolicy(attempts=2, initial_delay=0, jitter=0),
        sleep=lambda _s: None,
        pacer=RecipientPacer(),
    )
    assert result.status == "delivered", result.error
    assert result.attempts == 2


@pytest.mark.parametrize("value", [PD_ROUTING_KEY, "", ["${A}", "literal-key-0123"], 5])
def test_routing_key_must_be_an_env_reference(value: object) -> None:
    with pytest.raises(RecipientError) as info:
        get_channel("pagerduty").normalize_recipients(value)
    assert "${ENV_VAR}" in str(info.value)
    assert PD_ROUTING_KEY not in str(info.value)


def test_routing_key_is_masked() -> None:
    channel = get_channel("pagerduty")
    assert channel.mask_recipient("${PD_KEY}") == "${PD_KEY}"
    assert channel.mask_recipient(PD_ROUTING_KEY) == "***"
    assert channel.recipient_list(["${A}", "${B}"]) == ["${A}", "${B}"]


def test_events_url_goes_through_the_destination_policy(
    connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALERTS_ALLOW_PRIVATE_WEBHOOKS", raising=False)
    environ = {
        "PAGERDUTY_ROUTING_KEY": PD_ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": "https://169.254.169.254/v2/enqueue",
    }
    result = deliver("pagerduty", sample_message(episode_id=1), KEY, environ=environ)
    assert result.status == "failed"
    assert result.attempts == 1 and result.retryable is False
    assert "169.254.169.254: a link-local address" in (result.error or "")
    assert PD_ROUTING_KEY not in (result.error or "")
    assert connects == []


def test_dedup_key_is_unique_per_episode_start_and_shared_by_its_messages() -> None:
    """Ids come back on a SQLite store (`delete --purge-history`): the episode's start is in
    the key, and every message of the episode carries it, so they all name one incident."""
    from datetime import UTC, datetime

    from datamantri_alerts.channels.pagerduty import dedup_key

    started = datetime(2026, 11, 30, 9, 0, 0, 750000, tzinfo=UTC)
    keys = {
        dedup_key(sample_message(state=state, episode_id=12, triggered_at=started))
        for state in ("FIRING", "REPEAT", "ESCALATED", "FLAPPING", "ACKNOWLEDGED", "RESOLVED")
    }
    assert keys == {f"datamantri-alerts/7/12/{int(started.timestamp())}"}
    later = started.replace(hour=10)
    assert dedup_key(sample_message(state="FIRING", episode_id=12, triggered_at=later)) not in keys
    # A message queued before the start was in the key keeps the old form.
    legacy = sample_message(state="RESOLVED", episode_id=12, triggered_at=None)
    assert dedup_key(legacy) == "datamantri-alerts/7/12"
