"""Microsoft Teams through a Workflows (Power Automate) webhook, as an Adaptive Card 1.4.

The payload is the envelope Workflows' "Post to a channel when a webhook request is received"
expects: `{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}`. The card has a
title coloured by severity, the headline/description/summary, a fact set (type, severity,
state, when, host) and the details as a second fact set. TextBlocks and facts are Teams
markdown: every value from the alert or the check is escaped for it (`escaping.teams`).
The whole payload is kept under 28 KB (Teams' message limit) by shortening the details, then
dropping them, never by failing.

200 or 202 is delivered. Legacy Office 365 connector URLs (`outlook.office.com/webhook/...`,
`*.webhook.office.com`) still work where Microsoft has not switched them off yet: they are
accepted with a warning, and a failed send to one says how to move to Workflows.

Settings: `ALERTS_HTTP_CONNECT_TIMEOUT` (default 5 s), `ALERTS_HTTP_READ_TIMEOUT` (15 s).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlsplit

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Digest,
    Message,
    WebhookConfig,
)
from datamantri_alerts.channels.recipients import validate_webhook_url
from datamantri_alerts.escaping import teams as escape_markdown

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: Teams refuses messages above about 28 KB; stay a little under.
MAX_PAYLOAD_BYTES = 28 * 1024 - 512
TEXT_LIMIT = 4000
FACT_LIMIT = 1000
TITLE_LIMIT = 250
#: One digest item (state, name, severity, summary) is cut to this many characters.
DIGEST_ITEM_LIMIT = 600

LEGACY_HINT = (
    "this is a legacy Office 365 connector URL; Microsoft has retired Office 365 connectors in "
    "Teams. Create a Workflows webhook instead: in the Teams channel choose ... > Workflows > "
    "'Post to a channel when a webhook request is received', and use the URL it gives you"
)
SEVERITY_TEXT_COLOURS = {"critical": "attention", "warning": "warning", "info": "accent"}
#: Title colours that do not follow the severity: nobody needs to act on these.
STATE_TEXT_COLOURS = {"RESOLVED": "good", "ACKNOWLEDGED": "default"}


def is_legacy_connector(url: str) -> bool:
    """True for an Office 365 connector (incoming webhook) URL rather than a Workflows one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if host in ("outlook.office.com", "outlook.office365.com"):
        return parts.path.lower().startswith("/webhook")
    return host.endswith(".webhook.office.com")


class TeamsConfig(WebhookConfig):
    channel: ClassVar[str] = "teams"


class TeamsChannel(ChannelBase):
    name: ClassVar[str] = "teams"
    recipient_is_secret: ClassVar[bool] = True
    fallback_env: ClassVar[str | None] = "TEAMS_WEBHOOK_URL"
    config_model: ClassVar[type[ChannelConfig]] = TeamsConfig

    def normalize_recipients(self, value: Any) -> str:
        return validate_webhook_url(value)

    def recipient_list(self, value: Any) -> list[str]:
        return [value] if value else []

    def recipient_warnings(self, value: Any) -> list[str]:
        if isinstance(value, str) and is_legacy_connector(value):
            return [f"{LEGACY_HINT}."]
        return []

    def send(self, message: Message, recipient: str, config: TeamsConfig) -> None:
        self._post(build_payload(message, config), recipient, config)

    def digest_pages(self, digest: Digest, config: TeamsConfig) -> list[list[int]]:
        """As many items per card as keep the payload under MAX_PAYLOAD_BYTES."""
        items = _digest_items(digest, config)
        pages: list[list[int]] = []
        for index in range(len(digest.messages)):
            if pages:
                trial = pages[-1] + [index]
                if (
                    _size(_digest_envelope(digest.part(trial), config, [items[i] for i in trial]))
                    <= MAX_PAYLOAD_BYTES
                ):
                    pages[-1] = trial
                    continue
            pages.append([index])
        return pages

    def send_digest(self, digest: Digest, recipient: str, config: TeamsConfig) -> None:
        self._post(build_digest_payload(digest, config), recipient, config)

    def _post(self, payload: dict[str, Any], recipient: str, config: TeamsConfig) -> None:
        from datamantri_alerts.channels.http import post_json, raise_for_reply
        from datamantri_alerts.channels.recipients import RecipientError

        try:
            validate_webhook_url(recipient)
        except RecipientError as exc:
            raise DeliveryError(f"unusable webhook URL: {exc}", retryable=False) from None
        hint = LEGACY_HINT if is_legacy_connector(recipient) else None
        try:
            reply = post_json(recipient, payload, timeout=config.timeout)
        except DeliveryError as exc:
            if hint:
                exc.reason = f"{exc.reason} ({hint})"
            raise
        raise_for_reply(reply, hint=hint)

    def preview(self, message: Message, config: TeamsConfig) -> dict[str, Any]:
        return {"payload": build_payload(message, config)}


def build_card(message: Message, config: TeamsConfig, *, fact_limit: int) -> dict[str, Any]:
    from datamantri_alerts.channels.render import (
        detail_items,
        format_when,
        labels_text,
        render,
        truncate,
    )

    def text(template: str) -> str:
        return render("teams", template, message, templates_dir=config.templates_dir)

    colour = STATE_TEXT_COLOURS.get(message.state) or SEVERITY_TEXT_COLOURS[message.severity]
    title = truncate(" ".join(text("title.txt.j2").split()), TITLE_LIMIT)
    facts = [
        ("Type", message.condition_type),
        ("Severity", message.severity),
        ("State", message.state),
        ("When", format_when(message)),
        ("Host", escape_markdown(message.host or "unknown host")),
    ]
    if message.labels:
        facts.append(("Labels", escape_markdown(labels_text(message))))
    if message.alert_id is not None:
        facts.append(("Alert", f"#{message.alert_id}"))
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title,
            "size": "Large",
            "weight": "Bolder",
            "color": colour,
            "wrap": True,
        },
        {"type": "TextBlock", "text": truncate(text("text.md.j2"), TEXT_LIMIT), "wrap": True},
        {
            "type": "FactSet",
            "facts": [{"title": k, "value": v} for k, v in facts],
        },
    ]
    items = detail_items(message)
    if items and fact_limit > 0:
        body.append(
            {
                "type": "TextBlock",
                "text": "What the check saw",
                "weight": "Bolder",
                "separator": True,
                "wrap": True,
            }
        )
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {
                        "title": escape_markdown(key),
                        "value": truncate(escape_markdown(value), fact_limit),
                    }
                    for key, value in items
                ],
            }
        )
    elif items:
        body.append(
            {"type": "TextBlock", "text": "(details omitted: too long for Teams)", "wrap": True}
        )
    return {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": truncate(text("fallback.txt.j2"), 1000),
        "body": body,
        "msteams": {"width": "Full"},
    }


def build_payload(message: Message, config: TeamsConfig) -> dict[str, Any]:
    """The Workflows envelope, shortened until it fits in MAX_PAYLOAD_BYTES."""
    fact_limit = FACT_LIMIT
    while True:
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": CARD_CONTENT_TYPE,
                    "contentUrl": None,
                    "content": build_card(message, config, fact_limit=fact_limit),
                }
            ],
        }
        size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
        if size <= MAX_PAYLOAD_BYTES or fact_limit == 0:
            return payload
        fact_limit = fact_limit // 2 if fact_limit > 50 else 0


def _size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def _digest_items(digest: Digest, config: TeamsConfig) -> list[str]:
    from datamantri_alerts.channels.render import render, truncate

    return [
        truncate(
            render("teams", "digest_item.md.j2", m, templates_dir=config.templates_dir),
            DIGEST_ITEM_LIMIT,
        )
        for m in digest.messages
    ]


def _digest_envelope(digest: Digest, config: TeamsConfig, items: list[str]) -> dict[str, Any]:
    from datamantri_alerts.channels.render import render_digest, truncate

    title = render_digest(
        "teams", "digest_title.txt.j2", digest, templates_dir=config.templates_dir
    )
    firing = any(m.state != "RESOLVED" for m in digest.messages)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": truncate(" ".join(title.split()), TITLE_LIMIT),
            "size": "Large",
            "weight": "Bolder",
            "color": "attention" if firing else "good",
            "wrap": True,
        }
    ]
    body.extend(
        {"type": "TextBlock", "text": item, "wrap": True, "separator": True, "spacing": "Small"}
        for item in items
    )
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_CONTENT_TYPE,
                "contentUrl": None,
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": CARD_SCHEMA,
                    "version": CARD_VERSION,
                    "fallbackText": truncate(" ".join(title.split()), 1000),
                    "body": body,
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


def build_digest_payload(digest: Digest, config: TeamsConfig) -> dict[str, Any]:
    """One Adaptive Card listing every notification of digest (one page of `digest_pages`):
    a title with the counts, then one TextBlock per notification (Teams markdown, escaped)."""
    return _digest_envelope(digest, config, _digest_items(digest, config))


CHANNEL = TeamsChannel()
