"""Slack incoming webhooks."""

from __future__ import annotations

from typing import Any, ClassVar

from datamantri_alerts.channels.base import Message
from datamantri_alerts.channels.recipients import validate_webhook_url


class SlackChannel:
    name: ClassVar[str] = "slack"
    recipient_is_secret: ClassVar[bool] = True
    fallback_env: ClassVar[str | None] = "SLACK_WEBHOOK_URL"

    def normalize_recipients(self, value: Any) -> str:
        return validate_webhook_url(value)

    def recipient_list(self, value: Any) -> list[str]:
        return [value] if value else []

    def send(self, message: Message, recipient: str) -> None:
        raise NotImplementedError  # filled in by the channels work (issue 4)


CHANNEL = SlackChannel()
