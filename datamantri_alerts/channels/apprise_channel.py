"""Any service Apprise supports (Discord, Google Chat, Mattermost, Telegram, ntfy, Pushover, ...).

A recipient is an Apprise URL (`discord://...`, `tgram://...`, `ntfy://...`, `json://...`), or
a list of them; each URL is a secret as a whole: it is shown as `scheme://***` everywhere and
every part of it is redacted from errors and logs. Write it as `${VAR}` to keep it out of the
alert file. We use the Apprise library (apprise, BSD-2) for the services; we do not talk to
them ourselves.

Per URL, before sending: the URL must be one Apprise knows; the hosts it will connect to (the
URL's host and the service's fixed API host) must pass the webhook destination policy
(`net.destinations`); redirects are switched off and the connect/read timeouts are ours
(`ALERTS_HTTP_CONNECT_TIMEOUT`, `ALERTS_HTTP_READ_TIMEOUT`). Apprise's own requests do not go
through `net.session`: the addresses are checked when resolved here, and Apprise resolves the
host again when it connects (a DNS answer that changes in between is not caught).

Apprise answers a send with a bool; the reason is read from its log: `error=<HTTP status>` is
classified as the webhook channels classify statuses (408/429/5xx retried, other 4xx
permanent), a connection error or timeout is retried, anything else is permanent. Apprise does
not expose `Retry-After`, so a 429 waits the retry policy's backoff.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Message,
    RecipientError,
    WebhookConfig,
)
from datamantri_alerts.channels.recipients import each_of, one_or_many
from datamantri_alerts.secrets import MASK, has_env_ref, is_env_ref

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_STATUS = re.compile(r"error=(\d{3})")
_CONNECTION = ("Connection error", "connection error", "timed out", "Timeout")
TITLE_LIMIT = 250


class AppriseConfig(WebhookConfig):
    channel: ClassVar[str] = "apprise"


class AppriseChannel(ChannelBase):
    name: ClassVar[str] = "apprise"
    recipient_is_secret: ClassVar[bool] = True
    config_model: ClassVar[type[ChannelConfig]] = AppriseConfig

    def normalize_recipients(self, value: Any) -> Any:
        return one_or_many(value, _validate, "Apprise URL")

    def recipient_list(self, value: Any) -> list[str]:
        return each_of(value)

    def recipient_secrets(self, target: str) -> list[str]:
        return url_parts(target)

    def mask_recipient(self, recipient: str) -> str:
        if is_env_ref(recipient):
            return recipient
        match = _SCHEME.match(recipient.strip())
        return f"{match.group(1)}://{MASK}" if match else MASK

    def preview(self, message: Message, config: AppriseConfig) -> dict[str, Any]:
        """Title, body and notification type; each service then formats them its own way."""
        return {
            "title": title_of(message),
            "body": body_of(message),
            "type": str(getattr(notify_type(message), "value", notify_type(message))),
        }

    def send(self, message: Message, recipient: str, config: AppriseConfig) -> None:
        import apprise

        from datamantri_alerts.net.destinations import DestinationRefused, webhook_policy
        from datamantri_alerts.net.destinations import resolve as resolve_host

        server = apprise.Apprise.instantiate(recipient, suppress_exceptions=True)
        if server is None:
            raise DeliveryError(
                f"not an Apprise URL Apprise can use ({self.mask_recipient(recipient)})",
                retryable=False,
                status="config",
            )
        server.socket_connect_timeout, server.socket_read_timeout = config.timeout
        server.redirects = False
        server.overflow_mode = apprise.OverflowMode.TRUNCATE
        policy = webhook_policy()
        try:
            for host in destination_hosts(server):
                for address in resolve_host(host):
                    policy.check_address(host, address)
        except DestinationRefused as exc:
            raise DeliveryError(str(exc), retryable=False, status="destination") from None
        with apprise.LogCapture(level=logging.INFO) as captured:
            ok = server.notify(
                body=body_of(message), title=title_of(message), notify_type=notify_type(message)
            )
        if not ok:
            raise failure(captured.getvalue())


def _validate(item: Any) -> str:
    if not isinstance(item, str) or not item.strip():
        raise RecipientError("expected an Apprise URL (e.g. ${DISCORD_URL})")
    value = item.strip()
    if is_env_ref(value) or has_env_ref(value):
        return value
    if not _SCHEME.match(value):
        raise RecipientError("not an Apprise URL: expected scheme://... (e.g. discord://...)")
    import apprise

    if apprise.Apprise.instantiate(value, suppress_exceptions=True) is None:
        scheme = value.split("://", 1)[0]
        raise RecipientError(f"Apprise does not accept this {scheme}:// URL")
    return value


def url_parts(url: str) -> list[str]:
    """The pieces of an Apprise URL that may carry its secret: the URL, everything after the
    scheme, and every token-like piece (tokens sit in the host part, the path or the query,
    depending on the service). Host names and addresses (with dots) and short words stay
    readable, so a refusal can still name the host."""
    rest = url.split("://", 1)[-1]
    pieces = [url, rest]
    for piece in re.split(r"[/@?&#=:]", rest):
        if "." in piece:
            continue
        if len(piece) >= 16 or (len(piece) >= 8 and any(ch.isdigit() for ch in piece)):
            pieces.append(piece)
    return pieces


def destination_hosts(server: Any) -> list[str]:
    """The hosts an Apprise plugin instance will connect to: its URL's host when the service
    is self-hosted, and the service's fixed API host."""
    hosts = []
    host = getattr(server, "host", None)
    if isinstance(host, str) and host:
        hosts.append(host)
    for attribute in ("notify_url", "cloud_notify_url"):
        fixed = getattr(type(server), attribute, None)
        if isinstance(fixed, str) and "://" in fixed:
            name = urlsplit(fixed).hostname
            if name and "{" not in name:
                hosts.append(name)
    return hosts


def notify_type(message: Message) -> str:
    import apprise

    if message.state == "RESOLVED":
        return apprise.NotifyType.SUCCESS
    if message.state in ("TEST", "ACKNOWLEDGED") or message.severity == "info":
        return apprise.NotifyType.INFO
    return (
        apprise.NotifyType.WARNING if message.severity == "warning" else apprise.NotifyType.FAILURE
    )


def title_of(message: Message) -> str:
    from datamantri_alerts.channels.render import truncate

    return truncate(" ".join(f"[{message.state}] {message.alert_name}".split()), TITLE_LIMIT)


def body_of(message: Message) -> str:
    from datamantri_alerts.channels.webhook import plain_text

    return plain_text(message)


def failure(log_text: str) -> DeliveryError:
    """A DeliveryError from what Apprise logged about a failed send (redacted by the caller)."""
    lines = [line.split(" - ", 2)[-1] for line in log_text.splitlines() if " - WARNING - " in line]
    lines += [line.split(" - ", 2)[-1] for line in log_text.splitlines() if " - ERROR - " in line]
    reason = " ".join(" ".join(lines).split())[:300] or "Apprise reported a failed send"
    match = _STATUS.search(log_text)
    if match:
        status = int(match.group(1))
        retryable = status in (408, 429) or status >= 500
        return DeliveryError(f"HTTP {status}: {reason}", retryable=retryable, status=status)
    if any(marker in log_text for marker in _CONNECTION):
        return DeliveryError(reason, retryable=True, status="connection")
    return DeliveryError(reason, retryable=False, status="apprise")


CHANNEL = AppriseChannel()
