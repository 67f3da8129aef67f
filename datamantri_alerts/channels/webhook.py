"""Generic webhook: a documented JSON body per notification, optionally signed, optionally in
Alertmanager's webhook format so existing Alertmanager receivers work unchanged.

A recipient is a URL, or a mapping `{url, secret, format}`:

- `secret` (a `${VAR}` reference, never a literal): the body is signed with HMAC-SHA256 over
  `"<timestamp>." + body`, sent as `X-Alerts-Timestamp` (Unix seconds) and
  `X-Alerts-Signature: v1=<hex>`, as Stripe and Slack sign theirs; the receiver recomputes it
  and refuses old timestamps (see README, "Webhook channel").
- `format`: `native` (default, `NATIVE_VERSION` below) or `alertmanager` (payload version 4).

Acknowledgements (`alerts ack`) are sent to native recipients as `event: acknowledged`, with
`acknowledged_by`, `note` and `until` in `details` (`tells_acknowledgements`): a receiver tracking
incidents needs them. Alertmanager's webhook format has no acknowledgement (its alerts are only
firing or resolved, and a firing one re-sent would look like a new notification to its receivers),
so an `alertmanager` recipient is not sent one (`takes_acknowledgement`).

The native body (`build_native`):
`{"version": "1", "source", "event": firing|repeat|escalated|flapping|acknowledged|resolved|test,
"state", "severity",
"alert": {"id", "name", "description", "type"}, "labels", "summary", "details", "episode_id",
"times": {"at", "triggered_at"}, "host", "text"}` with times in RFC 3339 UTC and `text` a
link-free plain text of the whole notification.

Replies: any 2xx is delivered; classification, redirects, timeouts and the destination policy
are `channels.http`'s. Settings: `ALERTS_HTTP_CONNECT_TIMEOUT`, `ALERTS_HTTP_READ_TIMEOUT`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Message,
    RecipientError,
    WebhookConfig,
)
from datamantri_alerts.channels.recipients import each_of, one_or_many, validate_webhook_url
from datamantri_alerts.secrets import is_env_ref

NATIVE_VERSION = "1"
ALERTMANAGER_VERSION = "4"
TIMESTAMP_HEADER = "X-Alerts-Timestamp"
SIGNATURE_HEADER = "X-Alerts-Signature"
FORMATS = ("native", "alertmanager")
#: Alertmanager's zero time, which its receivers read as "not resolved yet".
ZERO_TIME = "0001-01-01T00:00:00Z"
NO_ALERTMANAGER_ACK = "not sent: Alertmanager's webhook format has no acknowledgement"

Format = Literal["native", "alertmanager"]


@dataclass(frozen=True)
class WebhookTarget:
    """One recipient: where to post, the signing secret (resolved), and the body format."""

    url: str
    secret: str | None = None
    format: Format = "native"


class WebhookChannelConfig(WebhookConfig):
    channel: ClassVar[str] = "webhook"


class WebhookChannel(ChannelBase):
    name: ClassVar[str] = "webhook"
    recipient_is_secret: ClassVar[bool] = True
    plain_recipient_keys: ClassVar[frozenset[str]] = frozenset({"format"})
    config_model: ClassVar[type[ChannelConfig]] = WebhookChannelConfig
    #: Receivers are machines tracking incidents: told acknowledgements (native format only).
    tells_acknowledgements: ClassVar[bool] = True
    tracks_incidents: ClassVar[bool] = True

    def takes_acknowledgement(self, recipient: str) -> bool:
        """Native recipients only: Alertmanager's format has no acknowledgement."""
        try:
            return parse_target(recipient).format != "alertmanager"
        except ValueError:  # not JSON: a plain URL is native
            return True

    def normalize_recipients(self, value: Any) -> Any:
        return one_or_many(value, _normalize_item, "webhook")

    def recipient_list(self, value: Any) -> list[str]:
        return [_encode(item) for item in each_of(value)]

    def resolve_recipient(self, recipient: str, environ: Mapping[str, str]) -> str:
        from datamantri_alerts.secrets import resolve_env

        if not recipient.lstrip().startswith("{"):
            return resolve_env(recipient, environ)
        data = json.loads(recipient)
        resolved = {
            k: v if k in self.plain_recipient_keys else resolve_env(v, environ)
            for k, v in data.items()
        }
        return json.dumps(resolved, sort_keys=True)

    def recipient_secrets(self, target: str) -> list[str]:
        from datamantri_alerts.channels.http import url_secrets

        parsed = parse_target(target)
        return [*url_secrets(parsed.url), *([parsed.secret] if parsed.secret else [])]

    def mask_recipient(self, recipient: str) -> str:
        from datamantri_alerts.secrets import mask_url

        parsed = parse_target(recipient)
        extras = [word for word in ("signed" if parsed.secret else "", parsed.format) if word]
        shown = mask_url(parsed.url)
        return (
            f"{shown} ({', '.join(extras)})"
            if parsed.secret or parsed.format != "native"
            else shown
        )

    def preview(self, message: Message, config: WebhookChannelConfig) -> dict[str, Any]:
        """Both bodies: which one a recipient gets depends on its `format` (an acknowledgement
        has no Alertmanager body: such recipients are not sent one)."""
        if message.state == "ACKNOWLEDGED":
            return {"native": build_native(message), "alertmanager": NO_ALERTMANAGER_ACK}
        return {"native": build_native(message), "alertmanager": build_alertmanager(message)}

    def send(self, message: Message, recipient: str, config: WebhookChannelConfig) -> None:
        from datamantri_alerts.channels.http import encode_json, post_json, raise_for_reply

        target = parse_target(recipient)
        try:
            validate_webhook_url(target.url)
        except RecipientError as exc:
            raise DeliveryError(f"unusable webhook URL: {exc}", retryable=False) from None
        if target.format == "alertmanager" and message.state == "ACKNOWLEDGED":
            raise DeliveryError(NO_ALERTMANAGER_ACK, retryable=False, status="config")
        payload = (
            build_alertmanager(message)
            if target.format == "alertmanager"
            else build_native(message)
        )
        body = encode_json(payload)
        headers = sign(body, target.secret, int(time.time())) if target.secret else {}
        secrets = [target.secret] if target.secret else []
        reply = post_json(
            target.url, body, timeout=config.timeout, secrets=secrets, headers=headers
        )
        raise_for_reply(reply, secrets=secrets)


def sign(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """The signature headers for body sent at timestamp (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"v1={digest.hexdigest()}"}


def verify(
    body: bytes, headers: Mapping[str, str], secret: str, *, now: float, tolerance: float = 300
) -> bool:
    """What a receiver does: recompute the signature and refuse a timestamp older than
    tolerance seconds (replay). headers are matched case-insensitively."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(body, secret, timestamp)[SIGNATURE_HEADER]
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))


def parse_target(recipient: str) -> WebhookTarget:
    """A stored or resolved recipient (a URL or the JSON of a mapping) as a WebhookTarget."""
    if not recipient.lstrip().startswith("{"):
        return WebhookTarget(recipient.strip())
    data = json.loads(recipient)
    fmt = data.get("format") or "native"
    return WebhookTarget(str(data.get("url", "")), data.get("secret") or None, fmt)


def _normalize_item(item: Any) -> Any:
    if isinstance(item, str):
        return validate_webhook_url(item)
    if not isinstance(item, dict):
        raise RecipientError(f"expected a URL or a mapping with url, got {type(item).__name__}")
    unknown = sorted(set(item) - {"url", "secret", "format"})
    if unknown:
        raise RecipientError(f"unknown webhook field(s): {', '.join(unknown)}")
    out: dict[str, str] = {"url": validate_webhook_url(item.get("url"))}
    secret = item.get("secret")
    if secret is not None:
        if not is_env_ref(secret):
            raise RecipientError("secret must be a ${ENV_VAR} reference, not a literal")
        out["secret"] = secret.strip()
    fmt = item.get("format", "native")
    if fmt not in FORMATS:
        raise RecipientError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt != "native":
        out["format"] = fmt
    return out if len(out) > 1 else out["url"]


def _encode(item: Any) -> str:
    if isinstance(item, str):
        return item
    return json.dumps(dict(item), sort_keys=True)


def rfc3339(when: datetime | None) -> str | None:
    if when is None:
        return None
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def labels_of(message: Message) -> dict[str, str]:
    labels = {
        "alertname": message.alert_name,
        "condition_type": message.condition_type,
        "severity": message.severity,
    }
    if message.host:
        labels["host"] = message.host
    if message.alert_id is not None:
        labels["alert_id"] = str(message.alert_id)
    return labels


def plain_text(message: Message) -> str:
    """The notification as link-free plain text (no markup, no URLs added)."""
    from datamantri_alerts.channels.render import detail_items

    lines = [f"[{message.state}] {message.alert_name} ({message.severity})"]
    lines += [text for text in (message.description, message.summary) if text]
    lines += [f"{key}: {value}" for key, value in detail_items(message)]
    return "\n".join(lines)


def build_native(message: Message) -> dict[str, Any]:
    return {
        "version": NATIVE_VERSION,
        "source": "datamantri-alerts",
        "event": message.state.lower(),
        "state": message.state,
        "severity": message.severity,
        "alert": {
            "id": message.alert_id,
            "name": message.alert_name,
            "description": message.description,
            "type": message.condition_type,
        },
        "labels": labels_of(message),
        "summary": message.summary,
        "details": message.details,
        "episode_id": message.episode_id,
        "times": {"at": rfc3339(message.at), "triggered_at": rfc3339(message.triggered_at)},
        "host": message.host,
        "text": plain_text(message),
    }


def build_alertmanager(message: Message) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4, with this notification as its one alert."""
    labels = labels_of(message)
    resolved = message.state == "RESOLVED"
    status = "resolved" if resolved else "firing"
    annotations = {"summary": message.summary, "description": message.description}
    fingerprint = hashlib.sha256(
        json.dumps([labels, message.episode_id], sort_keys=True).encode()
    ).hexdigest()[:16]
    starts = message.triggered_at or message.at
    group_labels = {"alertname": message.alert_name}
    return {
        "version": ALERTMANAGER_VERSION,
        "groupKey": "{}:" + "{alertname=" + json.dumps(message.alert_name) + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "datamantri-alerts",
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(starts),
                "endsAt": rfc3339(message.at) if resolved else ZERO_TIME,
                "generatorURL": "",
                "fingerprint": fingerprint,
            }
        ],
    }


CHANNEL = WebhookChannel()
