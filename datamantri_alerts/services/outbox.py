"""The outbox: notifications written in the same transaction as the state change they announce.

One row per (episode, kind, channel, recipient). The recipient is stored as written (`${VAR}`
resolved only at send time); a channel with no recipient uses the channel's fallback variable
(`SLACK_WEBHOOK_URL`, `TEAMS_WEBHOOK_URL`). The `dedup_key` is unique, so an event can never be
queued twice, whichever process evaluates the alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Notification
from datamantri_alerts.store.types import MYSQL_DIALECTS

#: Message state for each notification kind (an error is announced like a firing).
MESSAGE_STATE = {
    "firing": "FIRING",
    "error": "FIRING",
    "repeat": "REPEAT",
    "resolved": "RESOLVED",
    "flapping": "FLAPPING",
    "escalated": "ESCALATED",
    # `alerts ack` (`services.signal.ack`), to the channels that take it.
    "acknowledged": "ACKNOWLEDGED",
}

#: Kinds an episode may announce more than once (the key carries the time).
STAMPED_KINDS = ("repeat", "flapping", "escalated")

#: Stored in place of a recipient when a channel has none and no fallback variable.
NO_RECIPIENT = ""


def fan_out(channels: Sequence[str], recipients: dict[str, Any]) -> list[tuple[str, str]]:
    """(channel, recipient as written) for every channel of an alert."""
    if not channels:
        return []  # the channel registry is not loaded for an alert that has none
    from datamantri_alerts.channels import get_channel

    pairs: list[tuple[str, str]] = []
    for name in channels:
        try:
            channel = get_channel(name)
        except KeyError:
            pairs.append((name, NO_RECIPIENT))  # recorded as failed at send time
            continue
        value = (recipients or {}).get(name)
        items = [str(item) for item in channel.recipient_list(value)] if value else []
        if not items and channel.fallback_env:
            items = ["${" + channel.fallback_env + "}"]
        pairs.extend((name, item) for item in items or [NO_RECIPIENT])
    return pairs


def dedup_key(episode_id: int, kind: str, stamp: str, channel: str, recipient: str) -> str:
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:16]
    return f"{episode_id}:{kind}:{stamp}:{channel}:{digest}"


@dataclass
class Event:
    """One thing to announce for one alert: kind, the message payload and the episode.

    `message` builds the payload (`message_payload`); `enqueue` calls it once, and only when
    the event has a destination not queued yet: an alert without channels, or an episode's
    opening message queued again for destinations already told, builds no message."""

    alert_id: int
    episode_id: int
    kind: str  # firing | repeat | resolved | error | flapping
    message: Callable[[], dict[str, Any]]
    channels: list[str]
    recipients: dict[str, Any]
    #: When set, the notifications are recorded as suppressed with this reason, not sent.
    suppressed: str | None = None

    @cached_property
    def payload(self) -> dict[str, Any]:
        """The message payload, built on first use."""
        return self.message()


def message_payload(
    *,
    alert: Any,
    kind: str,
    at: datetime,
    summary: str,
    details: dict[str, Any],
    severity: str,
    host: str,
    episode_id: int,
    triggered_at: datetime | None,
    state: str | None = None,
    escalated_from: str | None = None,
) -> dict[str, Any]:
    """The channel Message for an event, as JSON for the outbox row. `state` overrides the
    kind's message state (a flap that settles is told as FIRING or RESOLVED);
    `escalated_from`: for an `escalated` event, the episode's severity before it rose."""
    from datamantri_alerts.channels.base import Message

    if kind == "error":
        summary = f"could not evaluate: {summary}"
        details = {"outcome": "error", **details}
    if kind == "escalated":
        summary = f"escalated from {escalated_from} to {severity}: {summary}"
        details = {"escalated_from": escalated_from, **details}
    message = Message(
        alert_id=alert.id,
        alert_name=alert.name,
        description=alert.description or "",
        condition_type=alert.condition_type,
        severity=severity,  # type: ignore[arg-type]
        state=state or MESSAGE_STATE[kind],  # type: ignore[arg-type]
        at=at,
        summary=summary,
        details=details,
        host=host,
        episode_id=episode_id,
        triggered_at=triggered_at,
        labels={str(k): str(v) for k, v in (getattr(alert, "labels", None) or {}).items()},
    )
    return message.model_dump(mode="json")


def outbox_row(
    *,
    alert_id: int | None,
    episode_id: int,
    kind: str,
    stamp: str,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    now: datetime,
    suppressed: str | None = None,
) -> dict[str, Any]:
    """One `notifications` row as a dict, due now: pending, or recorded as suppressed with that
    reason. The dedup_key is `dedup_key(episode_id, kind, stamp, channel, recipient)`."""
    return {
        "dedup_key": dedup_key(episode_id, kind, stamp, channel, recipient),
        "alert_id": alert_id,
        "history_id": episode_id,
        "channel": channel,
        "recipient": recipient,
        "kind": kind,
        "status": "suppressed" if suppressed else "pending",
        "payload": payload,
        "attempts": 0,
        "last_error": suppressed,
        "created_at": now,
        "next_attempt_at": now,
        "sent_at": None,
        "lease_holder": None,
        "lease_expires_at": None,
    }


def _destinations(event: Event, now: datetime) -> list[tuple[str, str, str]]:
    """(stamp, channel, recipient as written) of each destination of `event`: its dedup key's
    parts besides the episode and the kind."""
    stamp = now.strftime("%Y%m%dT%H%M%S") if event.kind in STAMPED_KINDS else ""
    return [
        (stamp, channel, recipient)
        for channel, recipient in fan_out(event.channels, event.recipients)
    ]


#: Dedup keys looked up per statement by `already_queued` (well under every dialect's limit of
#: bound parameters).
_KEYS_PER_LOOKUP = 500


#: The dedup keys among `keys` already queued: built once (the result writer asks at every
#: batch), the keys bound at each lookup.
_QUEUED_KEYS = select(Notification.dedup_key).where(
    Notification.dedup_key.in_(bindparam("keys", expanding=True))
)


def already_queued(session: Session, keys: Sequence[str]) -> frozenset[str]:
    """Which of `keys` are the dedup keys of notifications already in the outbox."""
    found: set[str] = set()
    unique = sorted(set(keys))
    for start in range(0, len(unique), _KEYS_PER_LOOKUP):
        chunk = unique[start : start + _KEYS_PER_LOOKUP]
        found.update(session.scalars(_QUEUED_KEYS, {"keys": chunk}))
    return frozenset(found)


def enqueue(session: Session, events: Sequence[Event], now: datetime) -> list[dict[str, Any]]:
    """Insert the events' notifications; returns the rows inserted.

    A dedup key already queued is left alone, and its event's message is not built for it:
    every evaluation of a firing alert queues its episode's opening message again so that a
    destination added meanwhile is told (`services.results._opening_for_new_destinations`),
    and for the destinations told already that is one indexed read, not a message and an
    INSERT each. The INSERT still skips a key queued meanwhile by another process."""
    planned = [
        (event, dedup_key(event.episode_id, event.kind, *destination), destination)
        for event in events
        for destination in _destinations(event, now)
    ]
    if not planned:
        return []
    queued = already_queued(session, [key for _, key, _ in planned])
    rows = [
        outbox_row(
            alert_id=event.alert_id,
            episode_id=event.episode_id,
            kind=event.kind,
            stamp=stamp,
            channel=channel,
            recipient=recipient,
            payload=event.payload,  # built here, for its first destination not queued yet
            now=now,
            suppressed=event.suppressed,
        )
        for event, key, (stamp, channel, recipient) in planned
        if key not in queued
    ]
    insert_rows(session, rows)
    return rows


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows (each a full `notifications` row as a dict, as `outbox_row` builds
    them); a row whose dedup_key is already queued is left alone, on every dialect."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect in MYSQL_DIALECTS:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        # A no-op update is MySQL's "do nothing" on a duplicate key (INSERT IGNORE would also
        # swallow truncation and other errors).
        statement = mysql_insert(Notification)
        session.execute(statement.on_duplicate_key_update(id=Notification.id), rows)
        return
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(Notification).on_conflict_do_nothing(index_elements=["dedup_key"]), rows)
