"""PagerDuty through the Events API v2 (`POST /v2/enqueue`).

A recipient is a routing (integration) key, written as `${VAR}`; it is a secret as a whole.

One PagerDuty alert per episode: `dedup_key` is
`datamantri-alerts/<alert id>/<episode id>/<epoch>`, `<epoch>` the episode's `triggered_at` in
whole seconds since 1970 (UTC). Ids alone are not unique over time: a SQLite store reuses the ids
of deleted rows, so after `alerts delete --purge-history` a new alert's first episode could get
the ids of a deleted one whose incident is still open. Every message of an episode (FIRING,
REPEAT, ESCALATED, FLAPPING, ACKNOWLEDGED, RESOLVED) carries the episode's `triggered_at`, so all
of them name the same incident. An episode that was open when the store was upgraded from a
release without the epoch keeps the key its FIRING went out with,
`datamantri-alerts/<alert id>/<episode id>` (stored on the episode by the migration and given to
every message at delivery as `Message.incident_key`), so its RESOLVED still resolves it.

FIRING triggers it, REPEAT triggers the same key again (PagerDuty folds it into the open
incident instead of opening another), ACKNOWLEDGED (`alerts ack`) acknowledges it and RESOLVED
resolves it; `acknowledge` and `resolve` carry only routing_key, event_action and dedup_key, as
the Events API v2 documents (a payload is for `trigger`). A TEST message triggers a key of its
own, `datamantri-alerts/test/<alert>/<time>`, and is resolved right after (a test leaves no open
incident).

PagerDuty tracks incident state, so it is told acknowledgements (`tells_acknowledgements`; see
`services.signal.ack` for when). It has no un-acknowledge event: after `alerts unack` the
incident stays acknowledged in PagerDuty until its own acknowledgement timeout or a new trigger.

`payload.severity` maps info/warning/critical one to one; `payload.summary` is cut to 1024
characters, `payload.source` is the host, `payload.class` the alert type and
`payload.custom_details` the check's details.

Replies: 202 is accepted; 400 (invalid event) is permanent and keeps PagerDuty's `errors`;
429 and 5xx are retried. Settings: `PAGERDUTY_EVENTS_URL` (default the public endpoint; tests
point it at a stand-in), `ALERTS_HTTP_CONNECT_TIMEOUT`, `ALERTS_HTTP_READ_TIMEOUT`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Message,
    RecipientError,
    WebhookConfig,
)
from datamantri_alerts.channels.recipients import each_of, one_or_many
from datamantri_alerts.secrets import is_env_ref, mask_secret

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
#: Characters of details JSON sent as structured custom_details (PagerDuty caps events at 512 KB).
DETAILS_LIMIT = 64_000
TEXT_LIMIT = 4000
SEVERITIES = {"info": "info", "warning": "warning", "critical": "critical"}
ACTIONS = {
    "FIRING": "trigger",
    "REPEAT": "trigger",
    # The same key triggered again, now with the higher severity.
    "ESCALATED": "trigger",
    # A flapping notice is about the open incident: the same key, triggered again.
    "FLAPPING": "trigger",
    "TEST": "trigger",
    # `alerts ack`: someone is on it; PagerDuty stops escalating the incident.
    "ACKNOWLEDGED": "acknowledge",
    "RESOLVED": "resolve",
}
#: Actions whose event is only routing_key, event_action and dedup_key (no payload).
BARE_ACTIONS = ("acknowledge", "resolve")


class PagerDutyConfig(WebhookConfig):
    channel: ClassVar[str] = "pagerduty"

    events_url: str = Field(default=EVENTS_URL, alias="PAGERDUTY_EVENTS_URL")


class PagerDutyChannel(ChannelBase):
    name: ClassVar[str] = "pagerduty"
    recipient_is_secret: ClassVar[bool] = True
    config_model: ClassVar[type[ChannelConfig]] = PagerDutyConfig
    #: An incident tracker: `alerts ack` acknowledges the episode's incident.
    tells_acknowledgements: ClassVar[bool] = True
    tracks_incidents: ClassVar[bool] = True

    def normalize_recipients(self, value: Any) -> Any:
        return one_or_many(value, _routing_key, "routing key")

    def recipient_list(self, value: Any) -> list[str]:
        return each_of(value)

    def recipient_secrets(self, target: str) -> list[str]:
        return [target]

    def mask_recipient(self, recipient: str) -> str:
        return mask_secret(recipient)

    def preview(self, message: Message, config: PagerDutyConfig) -> dict[str, Any]:
        """The event, with a placeholder where each recipient's routing key goes."""
        return {"event": build_event(message, "<routing key>"), "url": config.events_url}

    def send(self, message: Message, recipient: str, config: PagerDutyConfig) -> None:
        from datamantri_alerts.channels.http import post_json, raise_for_reply
        from datamantri_alerts.channels.recipients import validate_webhook_url

        if not recipient.strip():
            raise DeliveryError("the routing key is empty", retryable=False, status="config")
        try:
            validate_webhook_url(config.events_url)
        except RecipientError as exc:
            raise DeliveryError(
                f"PAGERDUTY_EVENTS_URL is unusable: {exc}", retryable=False, status="config"
            ) from None
        event = build_event(message, recipient)
        reply = post_json(config.events_url, event, timeout=config.timeout, secrets=[recipient])
        raise_for_reply(reply, secrets=[recipient], detail=_detail(reply.text))
        if message.state == "TEST":
            self._resolve_test(event, config)

    def _resolve_test(self, event: dict[str, Any], config: PagerDutyConfig) -> None:
        """A test leaves no open incident: resolve it at once. The test was delivered either
        way, so a failure here is logged, not retried (retrying would trigger again)."""
        import logging

        from datamantri_alerts.channels.http import post_json

        resolve = {key: event[key] for key in ("routing_key", "dedup_key")}
        resolve["event_action"] = "resolve"
        secrets = [event["routing_key"]]
        try:
            reply = post_json(config.events_url, resolve, timeout=config.timeout, secrets=secrets)
        except DeliveryError as exc:
            reason, status = exc.reason, None
        else:
            reason, status = _detail(reply.text), reply.status
        if status != 202:
            logging.getLogger(__name__).warning(
                "pagerduty: the test incident was not resolved (HTTP %s: %s); resolve it in "
                "PagerDuty",
                status,
                reason,
            )


def _routing_key(item: Any) -> str:
    if not isinstance(item, str) or not is_env_ref(item):
        raise RecipientError(
            "a routing key must be a ${ENV_VAR} reference (it is a secret), "
            "e.g. ${PAGERDUTY_ROUTING_KEY}"
        )
    return item.strip()


def dedup_key(message: Message) -> str:
    """One key per episode, `datamantri-alerts/<alert id>/<episode id>/<epoch>` (epoch: the
    episode's `triggered_at`, whole seconds since 1970 UTC; see the module docstring), at most
    255 characters. A TEST gets a key of its own."""
    if message.state == "TEST" or message.episode_id is None:
        key = f"datamantri-alerts/test/{message.alert_id}/{message.at.isoformat()}"
    elif message.incident_key is not None:  # the episode's own, stored (see the docstring)
        key = message.incident_key
    elif message.triggered_at is None:  # queued by a version before the epoch was added
        key = f"datamantri-alerts/{message.alert_id}/{message.episode_id}"
    else:
        epoch = int(message.triggered_at.timestamp())
        key = f"datamantri-alerts/{message.alert_id}/{message.episode_id}/{epoch}"
    return key[:DEDUP_KEY_LIMIT]


def build_event(message: Message, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for message: `trigger` with a payload; `acknowledge` and
    `resolve` only routing_key, event_action and dedup_key, as documented."""
    from datamantri_alerts.channels.render import truncate
    from datamantri_alerts.channels.webhook import rfc3339

    action = ACTIONS[message.state]
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(message),
    }
    if action in BARE_ACTIONS:
        return event
    prefix = "[TEST] " if message.state == "TEST" else ""
    headline = f"{prefix}{message.alert_name}: {message.summary or message.description}"
    event["client"] = "datamantri-alerts"
    event["payload"] = {
        "summary": truncate(" ".join(headline.split()), SUMMARY_LIMIT),
        "source": message.host or "datamantri-alerts",
        "severity": SEVERITIES[message.severity],
        "timestamp": rfc3339(message.at),
        "class": message.condition_type,
        "component": message.alert_name[:255],
        "custom_details": custom_details(message),
    }
    return event


def custom_details(message: Message) -> dict[str, Any]:
    """The check's details, kept well under PagerDuty's 512 KB event limit: past
    DETAILS_LIMIT characters of JSON they are sent as one shortened text."""
    from datamantri_alerts.channels.render import truncate

    base = {"description": truncate(message.description, TEXT_LIMIT), "state": message.state}
    details = {str(key): value for key, value in message.details.items()}
    text = json.dumps(details, ensure_ascii=False, default=str)
    if len(text) <= DETAILS_LIMIT:
        return {**base, **details}
    return {**base, "details": truncate(text, DETAILS_LIMIT)}


def _detail(text: str) -> str:
    """PagerDuty's error reply: `message` and its `errors` list, on one line."""
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if not isinstance(data, dict):
        return " ".join(text.split())[:300]
    parts = [str(data.get("message") or data.get("status") or "")]
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(str(e) for e in errors[:5]))
    return ": ".join(part for part in parts if part)[:300]


CHANNEL = PagerDutyChannel()
