"""The channel contract: a Message in, delivered or a DeliveryError that says whether to retry.

Each channel module exposes `CHANNEL`, an object that:

- validates and fans out recipients (`normalize_recipients`, `recipient_list`,
  `recipient_warnings`);
- declares its settings as a `ChannelConfig` model built from the environment, whose `SecretStr`
  fields are its secrets (masked everywhere, redacted from every error text);
- sends one message to one recipient with `send(message, recipient, config)`, raising
  `DeliveryError(reason, retryable=...)` when it did not deliver;
- declares whether it is told acknowledgements (`tells_acknowledgements`, and per recipient
  `takes_acknowledgement`): machines that track an incident's state (PagerDuty, the generic
  webhook) are; the channels people read (email, Slack, Teams, WhatsApp, Apprise) are not, so
  an `alerts ack` does not page the people it is meant to quieten (issue 15);
- declares whether its recipients track incidents (`tracks_incidents`: PagerDuty, webhooks), so
  an episode's end always reaches them (`services.signal.closing`).

Retrying, pacing and recording live in `channels.retry.deliver`, not in the channels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, Self, get_args, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

MessageState = Literal[
    "FIRING", "REPEAT", "ESCALATED", "RESOLVED", "FLAPPING", "ACKNOWLEDGED", "TEST"
]


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
    #: The key a tracker knows the episode's incident by when it is not derived from the ids
    #: and `triggered_at` (an episode opened before the upgrade that added the epoch; set at
    #: delivery from the episode, `AlertHistory.incident_key`).
    incident_key: str | None = None
    #: The alert's labels ({team: data}), shown with the message and matched by silences.
    labels: dict[str, str] = Field(default_factory=dict)


class Digest(BaseModel):
    """Several notifications for one destination sent as one message (`services.signal.digest`):
    `digest_id` is recorded with each of them in its episode's history."""

    digest_id: str
    messages: list[Message]

    @property
    def counts(self) -> dict[str, int]:
        """Notifications by state (FIRING, REPEAT, RESOLVED, TEST), in that order."""
        order = ["FIRING", "REPEAT", "RESOLVED", "TEST"]
        found = {state: sum(1 for m in self.messages if m.state == state) for state in order}
        return {state: n for state, n in found.items() if n}

    def part(self, indices: list[int]) -> Digest:
        return Digest(digest_id=self.digest_id, messages=[self.messages[i] for i in indices])


class DeliveryError(Exception):
    """A send that did not deliver. `retryable` tells the caller whether trying again may help.

    `reason` is safe to show and store: channels build it from redacted text only.
    """

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


class NotConfiguredError(DeliveryError):
    """The channel's settings are missing or invalid; trying again will not help."""

    def __init__(self, channel: str, problems: list[str]) -> None:
        super().__init__(
            f"{channel} is not configured: {'; '.join(problems)}", retryable=False, status="config"
        )
        self.problems = problems


class RecipientError(ValueError):
    """A recipient value that cannot be used; the message names the problem."""


class ChannelConfig(BaseModel):
    """A channel's settings, read from the environment (or `.env`) when a message is sent.

    Each field's alias is the environment variable it comes from. `SecretStr` fields are the
    channel's secrets: never shown, and removed from every error text and log line.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    #: The channel these settings belong to, for error messages.
    channel: ClassVar[str] = "channel"

    templates_dir: str | None = Field(default=None, alias="ALERTS_TEMPLATES_DIR")

    @classmethod
    def env_names(cls) -> list[str]:
        return [field.alias or name for name, field in cls.model_fields.items()]

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Names of the fields that hold secrets."""
        return [name for name, field in cls.model_fields.items() if _is_secret(field.annotation)]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings as the environment gives them; NotConfiguredError naming what is wrong.

        An empty variable counts as unset. Error texts name variables, never their values.
        """
        env = os.environ if environ is None else environ
        data = {key: env[key] for key in cls.env_names() if env.get(key, "") != ""}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise NotConfiguredError(cls.channel, _describe(exc, cls)) from None

    @classmethod
    def problems(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """What is missing or invalid in the environment for this channel (empty: ready)."""
        try:
            cls.from_env(environ)
        except NotConfiguredError as exc:
            return exc.problems
        return []

    def secret_values(self) -> list[str]:
        """The literal secrets in these settings, for redaction."""
        values = []
        for name in self.secret_fields():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


class WebhookConfig(ChannelConfig):
    """Settings shared by the webhook channels: (connect, read) timeouts in seconds."""

    connect_timeout: float = Field(default=5.0, alias="ALERTS_HTTP_CONNECT_TIMEOUT", gt=0, le=120)
    read_timeout: float = Field(default=15.0, alias="ALERTS_HTTP_READ_TIMEOUT", gt=0, le=300)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _describe(exc: ValidationError, model: type[ChannelConfig]) -> list[str]:
    aliases = {name: field.alias or name for name, field in model.model_fields.items()}
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        name = aliases.get(str(loc[0]), str(loc[0])) if loc else ""
        if error["type"] == "missing":
            problems.append(f"{name} is not set")
        elif name:
            problems.append(f"{name}: {str(error['msg']).removeprefix('Value error, ')}")
        else:
            problems.append(str(error["msg"]).removeprefix("Value error, "))
    return problems


@runtime_checkable
class Channel(Protocol):
    """One notification channel. Modules under `channels/` expose one as `CHANNEL`."""

    name: ClassVar[str]
    #: Whether the recipient value itself is a secret (webhook URLs carry their token).
    recipient_is_secret: ClassVar[bool]
    #: Environment variable used when an alert gives no recipient, if any.
    fallback_env: ClassVar[str | None]
    #: The settings model, built from the environment at send time.
    config_model: ClassVar[type[ChannelConfig]]
    #: Least seconds between two sends to the same recipient in one process (0: no pacing).
    min_send_interval: ClassVar[float]
    #: Keys of a mapping recipient that are settings, not secrets (webhook `format`): shown as
    #: written where the rest of a secret recipient is masked.
    plain_recipient_keys: ClassVar[frozenset[str]]
    #: Whether an ACKNOWLEDGED message (`alerts ack`) is sent to this channel's recipients that
    #: were told the episode's opening: True for services tracking incident state.
    tells_acknowledgements: ClassVar[bool]
    #: Whether the recipients keep an incident open from a triggering message until its
    #: RESOLVED (PagerDuty, webhooks of either format): they are sent the RESOLVED however the
    #: episode ends (`services.signal.closing`).
    tracks_incidents: ClassVar[bool]

    def takes_acknowledgement(self, recipient: str) -> bool:
        """Whether this recipient (as stored) is sent ACKNOWLEDGED messages: the channel's
        `tells_acknowledgements`, narrowed per recipient where a format has no such event."""
        ...

    def normalize_recipients(self, value: Any) -> Any:
        """Validate a recipients entry as written; return it normalised or raise RecipientError."""
        ...

    def recipient_list(self, value: Any) -> list[str]:
        """The individual recipients a stored value fans out to."""
        ...

    def recipient_warnings(self, value: Any) -> list[str]:
        """Warnings worth printing when a recipients entry is saved (it is still accepted)."""
        ...

    def send(self, message: Message, recipient: str, config: Any) -> None:
        """Deliver to one recipient (already resolved). Raises DeliveryError."""
        ...

    def preview(self, message: Message, config: Any) -> dict[str, Any]:
        """What `send` would transmit for message, built by the same code, sending nothing
        (`alerts render`): the request body or the rendered parts, by name."""
        ...

    def resolve_recipient(self, recipient: str, environ: Mapping[str, str]) -> str:
        """The recipient as stored with every `${VAR}` replaced (RuntimeFailure when unset)."""
        ...

    def recipient_secrets(self, target: str) -> list[str]:
        """The literal secrets in a resolved recipient, redacted from every error and log."""
        ...

    def mask_recipient(self, recipient: str) -> str:
        """A recipient (as stored or resolved) as it may be shown anywhere."""
        ...


@runtime_checkable
class DigestChannel(Protocol):
    """A channel that can send several notifications as one message (a digest,
    `services.signal.digest`). Channels without it get each notification on its own."""

    def digest_pages(self, digest: Digest, config: Any) -> list[list[int]]:
        """How digest splits into messages the service accepts: lists of indices into
        digest.messages, in order, each page one message (as few as the channel's own limits
        allow)."""
        ...

    def send_digest(self, digest: Digest, recipient: str, config: Any) -> None:
        """Deliver one digest page (from `digest_pages`) as one message. Raises DeliveryError."""
        ...


class ChannelBase:
    """Defaults shared by the built-in channels: recipients are plain text, or URLs whose path
    and query carry a token when `recipient_is_secret`."""

    recipient_is_secret: ClassVar[bool] = False
    fallback_env: ClassVar[str | None] = None
    min_send_interval: ClassVar[float] = 0.0
    plain_recipient_keys: ClassVar[frozenset[str]] = frozenset()
    #: People read these channels: an acknowledgement is not sent to them (no spam).
    tells_acknowledgements: ClassVar[bool] = False
    #: ... nor a RESOLVED that people are not meant to get (a silence, notify_on_resolve off).
    tracks_incidents: ClassVar[bool] = False

    def takes_acknowledgement(self, recipient: str) -> bool:
        return self.tells_acknowledgements

    def recipient_warnings(self, value: Any) -> list[str]:
        return []

    def resolve_recipient(self, recipient: str, environ: Mapping[str, str]) -> str:
        from datamantri_alerts.secrets import resolve_env

        return resolve_env(recipient, environ)

    def recipient_secrets(self, target: str) -> list[str]:
        from datamantri_alerts.channels.http import url_secrets

        return url_secrets(target) if self.recipient_is_secret else []

    def mask_recipient(self, recipient: str) -> str:
        from datamantri_alerts.secrets import mask_url

        return mask_url(recipient) if self.recipient_is_secret else recipient
