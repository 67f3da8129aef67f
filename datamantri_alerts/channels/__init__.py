"""Registry of notification channels. Modules are imported on first use."""

from __future__ import annotations

import importlib
from functools import cache

from datamantri_alerts.channels.base import Channel, DeliveryError, Message, RecipientError

__all__ = ["Channel", "DeliveryError", "Message", "RecipientError", "channel_names", "get_channel"]

BUILTIN_CHANNELS: dict[str, str] = {
    "email": "datamantri_alerts.channels.email",
    "slack": "datamantri_alerts.channels.slack",
    "teams": "datamantri_alerts.channels.teams",
    "whatsapp": "datamantri_alerts.channels.whatsapp",
}


def channel_names() -> list[str]:
    return list(BUILTIN_CHANNELS)


@cache
def get_channel(name: str) -> Channel:
    """The channel called name; KeyError when there is none."""
    return importlib.import_module(BUILTIN_CHANNELS[name]).CHANNEL
