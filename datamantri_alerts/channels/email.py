"""Email over SMTP."""

from __future__ import annotations

from typing import Any, ClassVar

from datamantri_alerts.channels.base import Message
from datamantri_alerts.channels.recipients import as_list, validate_email


class EmailChannel:
    name: ClassVar[str] = "email"
    recipient_is_secret: ClassVar[bool] = False
    fallback_env: ClassVar[str | None] = None

    def normalize_recipients(self, value: Any) -> list[str]:
        return [validate_email(item) for item in as_list(value, "email addresses")]

    def recipient_list(self, value: Any) -> list[str]:
        return list(value or [])

    def send(self, message: Message, recipient: str) -> None:
        raise NotImplementedError  # filled in by the channels work (issue 4)


CHANNEL = EmailChannel()
