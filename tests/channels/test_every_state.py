"""Every channel builds every message state, ESCALATED included (a state missing from a
channel's own table would fail only when an escalation is sent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from datamantri_alerts.channels import channel_names, get_channel
from datamantri_alerts.channels.base import Message, MessageState


@pytest.mark.parametrize("state", get_args(MessageState))
@pytest.mark.parametrize("name", channel_names())
def test_every_channel_previews_every_state(name: str, state: str) -> None:
    channel = get_channel(name)
    config = channel.config_model.model_construct(templates_dir=None)
    message = Message(
        alert_id=7,
        alert_name="orders are fresh",
        condition_type="freshness",
        severity="critical",
        state=state,  # type: ignore[arg-type]
        at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        summary="escalated from warning to critical: orders.loaded_at is 7h 12m old",
        details={"escalated_from": "warning"},
        host="h",
        episode_id=41,
        triggered_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    )
    content = channel.preview(message, config)
    assert content, (name, state)
    text = str(content)
    if name == "pagerduty" and state in ("RESOLVED", "ACKNOWLEDGED"):
        # Events API v2: acknowledge and resolve carry only these three fields.
        assert set(content["event"]) == {"routing_key", "event_action", "dedup_key"}
        # The episode's start (triggered_at, 09:00 UTC) in epoch seconds ends the key.
        epoch = int(datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp())
        assert content["event"]["dedup_key"] == f"datamantri-alerts/7/41/{epoch}"
    else:
        assert "orders are fresh" in text or "7h 12m" in text, (name, state, text[:300])


@pytest.mark.parametrize("name", channel_names())
def test_every_channel_says_who_acknowledged(name: str) -> None:
    """An ACKNOWLEDGED message reads "acknowledged by NAME: note" wherever it is rendered."""
    channel = get_channel(name)
    config = channel.config_model.model_construct(templates_dir=None)
    message = Message(
        alert_id=7,
        alert_name="orders are fresh",
        condition_type="freshness",
        severity="critical",
        state="ACKNOWLEDGED",
        at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        summary="acknowledged by alice: restarting the loader",
        details={"acknowledged_by": "alice", "note": "restarting the loader"},
        episode_id=41,
    )
    text = str(channel.preview(message, config))
    if name == "pagerduty":
        assert "acknowledge" in text and "alice" not in text  # no payload on acknowledge
        return
    assert "acknowledged by alice: restarting the loader" in text, text[:500]
    assert "ACKNOWLEDGED" in text or "acknowledged" in text.lower()


def test_pagerduty_triggers_the_same_key_again_on_escalation() -> None:
    from datamantri_alerts.channels.pagerduty import build_event

    message = Message(
        alert_id=7,
        alert_name="orders are fresh",
        condition_type="freshness",
        severity="critical",
        state="ESCALATED",
        at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        summary="escalated from warning to critical: ...",
        episode_id=41,
    )
    event = build_event(message, "key")
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "datamantri-alerts/7/41"
    assert event["payload"]["severity"] == "critical"
