"""Registry of notification channels. Modules are imported on first use.

What callers use:

- `get_channel(name)` / `channel_names()`: the registry.
- `delivery_targets(channels, recipients)`: the (channel, recipient) pairs an alert sends to,
  with the environment fallbacks (`SLACK_WEBHOOK_URL`, `TEAMS_WEBHOOK_URL`) filled in.
- `recipient_warnings(channel, value)`: warnings to print when a recipient is saved.
- `channels.retry.deliver(...)`: send one message to one recipient with the retry policy.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datamantri_alerts.channels.base import (
        Channel,
        ChannelConfig,
        DeliveryError,
        Message,
        NotConfiguredError,
        RecipientError,
    )

#: Names of `channels.base` offered here, imported on first use (PEP 562 `__getattr__`): the
#: registry's names (`channel_names`, for the digest thresholds read at every run) do not
#: load the message and settings models.
_FROM_BASE = frozenset(
    ("Channel", "ChannelConfig", "DeliveryError", "Message", "NotConfiguredError", "RecipientError")
)

__all__ = [
    "Channel",
    "ChannelConfig",
    "DeliveryError",
    "Message",
    "NotConfiguredError",
    "RecipientError",
    "channel_names",
    "delivery_targets",
    "get_channel",
    "recipient_warnings",
]

BUILTIN_CHANNELS: dict[str, str] = {
    "apprise": "datamantri_alerts.channels.apprise_channel",
    "email": "datamantri_alerts.channels.email",
    "pagerduty": "datamantri_alerts.channels.pagerduty",
    "slack": "datamantri_alerts.channels.slack",
    "teams": "datamantri_alerts.channels.teams",
    "webhook": "datamantri_alerts.channels.webhook",
    "whatsapp": "datamantri_alerts.channels.whatsapp",
}


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        from datamantri_alerts.channels import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def channel_names() -> list[str]:
    return list(BUILTIN_CHANNELS)


@cache
def get_channel(name: str) -> Channel:
    """The channel called name; KeyError when there is none."""
    return importlib.import_module(BUILTIN_CHANNELS[name]).CHANNEL


def recipient_warnings(channel: str, value: Any) -> list[str]:
    """Warnings about a (valid) recipients entry, e.g. a retired Teams connector URL."""
    return get_channel(channel).recipient_warnings(value)


def delivery_targets(
    channels: Iterable[str], recipients: Mapping[str, Any], *, only: str | None = None
) -> list[tuple[str, str]]:
    """Each (channel, recipient as stored) an alert sends to, in the alert's channel order.

    A channel without recipients uses its environment fallback as `${VAR}`, so a missing
    variable surfaces as that send's error rather than as a silently skipped channel.
    """
    targets: list[tuple[str, str]] = []
    for name in channels:
        if only is not None and name != only:
            continue
        channel = get_channel(name)
        value = recipients.get(name)
        if not value and channel.fallback_env:
            value = "${" + channel.fallback_env + "}"
        targets.extend((name, recipient) for recipient in channel.recipient_list(value))
    return targets
