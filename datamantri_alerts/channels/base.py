"""The channel contract: a Message in, delivered or a DeliveryError that says whether to retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

MessageState = Literal["FIRING", "REPEAT", "RESOLVED", "TEST"]


class Message(BaseModel):
    """Everything a notification says, independent of the channel that renders it."""

    alert_id: int | None = None
    alert_name: str
    description: str = ""
    condition_type: str
    severity: Literal["info", "warning", "critical"]
    state: MessageState
    at: datetime
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    host: str = ""
    episode_id: int | None = None
    triggered_at: datetime | None = None


class DeliveryError(Exception):
    """A send that did not deliver. `retryable` tells the caller whether trying again may help."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class RecipientError(ValueError):
    """A recipient value that cannot be used; the message names the problem."""


@runtime_checkable
class Channel(Protocol):
    """One notification channel. Modules under `channels/` expose one as `CHANNEL`."""

    name: ClassVar[str]
    #: Whether the recipient value itself is a secret (webhook URLs carry their token).
    recipient_is_secret: ClassVar[bool]
    #: Environment variable used when an alert gives no recipient, if any.
    fallback_env: ClassVar[str | None]

    def normalize_recipients(self, value: Any) -> Any:
        """Validate a recipients entry as written; return it normalised or raise RecipientError."""
        ...

    def recipient_list(self, value: Any) -> list[str]:
        """The individual recipients a stored value fans out to."""
        ...

    def send(self, message: Message, recipient: str) -> None:
        """Deliver to one recipient (already resolved). Raises DeliveryError."""
        ...
