"""WhatsApp through Twilio's Messages API, with the official `twilio` client.

Settings: `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` (secret), `TWILIO_WHATSAPP_FROM` (the
sender number; `whatsapp:` is added when missing), `TWILIO_API_BASE_URL` (default
`https://api.twilio.com`; tests and egress proxies point it elsewhere), `TWILIO_TIMEOUT`
(seconds, default 15), `TWILIO_WHATSAPP_BODY_LIMIT` (default 1600 characters).

By default the message is a free-form `Body`. WhatsApp refuses free-form business-initiated
messages outside the 24-hour customer service window (error 63016), so for alerts to people
who have not written recently set `TWILIO_WHATSAPP_CONTENT_SID` to an approved template and,
optionally, `TWILIO_WHATSAPP_RESOLVED_CONTENT_SID` for RESOLVED messages. The template gets
`content_variables` (a JSON string):
`{"1": alert name, "2": state, "3": severity, "4": summary (or description), "5": when,
"6": host}`.

Errors: Twilio codes 21211 (invalid number), 21608 (unverified number on a trial account),
20003 (authentication) and every other 4xx are permanent; 20429, HTTP 429 and 5xx, timeouts
and connection errors are retried.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Digest,
    Message,
)
from datamantri_alerts.channels.recipients import as_list, validate_e164

PERMANENT_CODES = {
    21211: "the 'To' number is not a valid phone number",
    21608: "the number is not verified for this trial account",
    20003: "authentication failed (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
    63016: "outside the 24-hour window WhatsApp allows free-form messages in; "
    "set TWILIO_WHATSAPP_CONTENT_SID to an approved template",
}
RETRYABLE_CODES = {20429}
VARIABLE_LIMIT = 500


class WhatsAppConfig(ChannelConfig):
    channel: ClassVar[str] = "whatsapp"

    account_sid: str = Field(alias="TWILIO_ACCOUNT_SID")
    auth_token: SecretStr = Field(alias="TWILIO_AUTH_TOKEN")
    from_number: str = Field(alias="TWILIO_WHATSAPP_FROM")
    content_sid: str | None = Field(default=None, alias="TWILIO_WHATSAPP_CONTENT_SID")
    resolved_content_sid: str | None = Field(
        default=None, alias="TWILIO_WHATSAPP_RESOLVED_CONTENT_SID"
    )
    api_base_url: str = Field(default="https://api.twilio.com", alias="TWILIO_API_BASE_URL")
    timeout: float = Field(default=15.0, alias="TWILIO_TIMEOUT", gt=0, le=300)
    body_limit: int = Field(default=1600, alias="TWILIO_WHATSAPP_BODY_LIMIT", ge=100, le=4096)

    @field_validator("from_number")
    @classmethod
    def _prefixed(cls, value: str) -> str:
        number = validate_e164(value.strip())
        return f"whatsapp:{number}"

    @field_validator("api_base_url")
    @classmethod
    def _usable_base(cls, value: str) -> str:
        from datamantri_alerts.channels.recipients import RecipientError, validate_webhook_url

        try:
            return validate_webhook_url(value).rstrip("/")
        except RecipientError as exc:
            raise ValueError(str(exc)) from None

    def content_sid_for(self, message: Message) -> str | None:
        if message.state == "RESOLVED" and self.resolved_content_sid:
            return self.resolved_content_sid
        return self.content_sid


class WhatsAppChannel(ChannelBase):
    name: ClassVar[str] = "whatsapp"
    recipient_is_secret: ClassVar[bool] = False
    fallback_env: ClassVar[str | None] = None
    config_model: ClassVar[type[ChannelConfig]] = WhatsAppConfig

    def normalize_recipients(self, value: Any) -> list[str]:
        return [validate_e164(item) for item in as_list(value, "phone numbers")]

    def recipient_list(self, value: Any) -> list[str]:
        return list(value or [])

    def send(self, message: Message, recipient: str, config: WhatsAppConfig) -> None:
        self._create(content_params(message, config), recipient, config)

    def digest_pages(self, digest: Digest, config: WhatsAppConfig) -> list[list[int]]:
        """As many lines per message as fit in config.body_limit (a template: 10 names)."""
        if config.content_sid:
            return [
                list(range(i, min(i + 10, len(digest.messages))))
                for i in range(0, len(digest.messages), 10)
            ]
        title, lines = _digest_text(digest, config)
        pages: list[list[int]] = []
        size = 0
        for index, line in enumerate(lines):
            if pages and size + 1 + len(line) <= config.body_limit:
                pages[-1].append(index)
                size += 1 + len(line)
            else:
                pages.append([index])
                size = len(title) + 1 + len(line)
        return pages

    def send_digest(self, digest: Digest, recipient: str, config: WhatsAppConfig) -> None:
        self._create(digest_params(digest, config), recipient, config)

    def _create(self, params: dict[str, Any], recipient: str, config: WhatsAppConfig) -> None:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        from datamantri_alerts.channels.http import redact, refused_error, transport_error
        from datamantri_alerts.channels.recipients import RecipientError
        from datamantri_alerts.channels.twilio_client import make_client
        from datamantri_alerts.net.destinations import DestinationRefused

        try:
            number = validate_e164(recipient)
        except RecipientError as exc:
            raise DeliveryError(str(exc), retryable=False, status=21211) from None
        secrets = config.secret_values()
        client, http_client = make_client(
            config.account_sid,
            config.auth_token.get_secret_value(),
            base_url=config.api_base_url,
            timeout=config.timeout,
        )
        try:
            client.messages.create(to=f"whatsapp:{number}", from_=config.from_number, **params)
        except DestinationRefused as exc:
            raise refused_error(exc) from None
        except TwilioRestException as exc:
            headers = http_client.last_response.headers if http_client.last_response else {}
            raise classify_twilio_error(exc, headers or {}, secrets) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise transport_error(exc, "Twilio", secrets, wait=f"{config.timeout:g} s") from None
        except (TwilioException, requests.RequestException) as exc:
            raise DeliveryError(
                redact(f"Twilio client error: {type(exc).__name__}: {exc}", secrets),
                retryable=False,
            ) from None

    def preview(self, message: Message, config: WhatsAppConfig) -> dict[str, Any]:
        return content_params(message, config)


def message_params(message: Message, number: str, config: WhatsAppConfig) -> dict[str, Any]:
    """The Messages API parameters: To/From and either ContentSid + variables or Body."""
    return {
        "to": f"whatsapp:{number}",
        "from_": config.from_number,
        **content_params(message, config),
    }


def content_params(message: Message, config: WhatsAppConfig) -> dict[str, Any]:
    """What the message says: ContentSid + variables (an approved template) or Body."""
    from datamantri_alerts.channels.render import format_when, render

    params: dict[str, Any] = {}
    content_sid = config.content_sid_for(message)
    if content_sid:
        params["content_sid"] = content_sid
        params["content_variables"] = json.dumps(
            {
                key: _variable(value)
                for key, value in {
                    "1": message.alert_name,
                    "2": message.state,
                    "3": message.severity,
                    "4": message.summary or message.description or message.condition_type,
                    "5": format_when(message),
                    "6": message.host or "unknown host",
                }.items()
            },
            ensure_ascii=False,
        )
        return params
    body = render("whatsapp", "body.txt.j2", message, templates_dir=config.templates_dir)
    params["body"] = _cut(body, config.body_limit)
    return params


def _digest_text(digest: Digest, config: WhatsAppConfig) -> tuple[str, list[str]]:
    from datamantri_alerts.channels.render import render, render_digest, truncate

    title = render_digest(
        "whatsapp", "digest_title.txt.j2", digest, templates_dir=config.templates_dir
    )
    room = max(20, config.body_limit - len(title) - 1)
    lines = [
        truncate(
            " ".join(
                render(
                    "whatsapp", "digest_item.txt.j2", m, templates_dir=config.templates_dir
                ).split()
            ),
            room,
        )
        for m in digest.messages
    ]
    return title, lines


def digest_params(digest: Digest, config: WhatsAppConfig) -> dict[str, Any]:
    """A digest page as one message: the title and one line per notification as `Body`, or,
    with an approved template, its variables (`{"1": "N alerts", "4": the names, ...}`)."""
    from datamantri_alerts.channels.render import format_when

    if config.content_sid:
        order = ["critical", "warning", "info"]
        first = digest.messages[0]
        names = ", ".join(m.alert_name for m in digest.messages)
        states = ", ".join(f"{n} {s}" for s, n in digest.counts.items())
        return {
            "content_sid": config.content_sid,
            "content_variables": json.dumps(
                {
                    "1": _variable(f"{len(digest.messages)} alerts"),
                    "2": _variable(states),
                    "3": min((m.severity for m in digest.messages), key=order.index),
                    "4": _variable(names),
                    "5": format_when(first),
                    "6": _variable(first.host or "unknown host"),
                },
                ensure_ascii=False,
            ),
        }
    title, lines = _digest_text(digest, config)
    return {"body": _cut("\n".join([title, *lines]), config.body_limit)}


def _cut(body: str, limit: int) -> str:
    """body cut to limit characters; a ``` block the cut leaves open is closed, or WhatsApp
    would apply its formatting to the (unescaped) details after the opening fence. Data holds
    no ``` of its own (`escaping.fence_safe`), so an odd count means ours was cut."""
    from datamantri_alerts.channels.render import truncate
    from datamantri_alerts.escaping import FENCE

    if len(body) <= limit:
        return body
    cut = truncate(body, limit - len(FENCE))
    return cut + FENCE if cut.count(FENCE) % 2 else truncate(body, limit)


def _variable(value: str) -> str:
    """A template variable: WhatsApp refuses newlines, tabs and runs of spaces in them, and
    would apply its formatting characters to the value (escaped with `escaping.whatsapp`)."""
    from datamantri_alerts.channels.render import truncate
    from datamantri_alerts.escaping import whatsapp

    return truncate(whatsapp(" ".join(str(value).split())), VARIABLE_LIMIT) or "-"


def classify_twilio_error(
    exc: Any, headers: dict[str, str] | Any, secrets: list[str]
) -> DeliveryError:
    from datamantri_alerts.channels.http import header, parse_retry_after, redact

    code, status = exc.code, exc.status
    detail = " ".join(str(exc.msg or "").split())
    reason = f"HTTP {status}: {detail}"
    if code:
        reason = f"Twilio error {code} (HTTP {status}): {detail}"
    if code in PERMANENT_CODES:
        reason += f" ({PERMANENT_CODES[code]})"
        return DeliveryError(redact(reason, secrets), retryable=False, status=code)
    if code in RETRYABLE_CODES or status == 429 or status >= 500:
        return DeliveryError(
            redact(reason, secrets),
            retryable=True,
            retry_after=parse_retry_after(header(dict(headers), "Retry-After")),
            status=code or status,
        )
    return DeliveryError(redact(reason, secrets), retryable=False, status=code or status)


CHANNEL = WhatsAppChannel()
