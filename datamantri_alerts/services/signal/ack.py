"""Acknowledgement: someone is on it, so an episode's REPEATs stop.

`alerts ack REF|EPISODE_ID [--note TEXT] [--for DURATION]` marks the alert's open episode (or
the episode given by id) acknowledged: who (`ALERTS_USER`, else the OS login name), when, an
optional note and, with `--for`, until when. While acknowledged, the state machine queues no
REPEAT for it (`services.states`); the RESOLVED still goes. A new episode starts
unacknowledged, and when `--for` runs out, REPEATs resume on the alert's repeat interval.
`alerts unack` takes the acknowledgement back.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.store.models import Alert, AlertHistory

#: Longest note kept (characters); the rest is cut.
NOTE_LIMIT = 2000
USER_LIMIT = 255


@dataclass(frozen=True)
class Acknowledgement:
    """What `ack` recorded on one episode."""

    episode_id: int
    alert_id: int | None
    alert_name: str
    by: str
    at: datetime
    note: str | None
    until: datetime | None


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is acknowledging: `ALERTS_USER`, else the OS login name, else "unknown"."""
    env = os.environ if environ is None else environ
    name = env.get("ALERTS_USER", "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError, ImportError):
            name = ""
    return (" ".join(name.split()) or "unknown")[:USER_LIMIT]


def is_acknowledged(
    acknowledged_at: datetime | None, ack_until: datetime | None, now: datetime
) -> bool:
    """True while an acknowledgement holds: given, and not yet run out."""
    return acknowledged_at is not None and (ack_until is None or now < ack_until)


def find_episode(session: Session, target: str) -> AlertHistory:
    """The episode target names: an alert REF (its open episode), else an episode id.

    A REF that is both an alert id and an episode id means the alert (as everywhere REF is
    taken); `#123` or `episode:123` always means episode 123. NotFoundError (exit 2) when the
    alert has no open episode or nothing matches.
    """
    text = str(target).strip()
    for prefix in ("#", "episode:"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return _episode(session, int(text[len(prefix) :]))
    alert = None
    if text.isdigit():
        alert = session.get(Alert, int(text))
    if alert is None and text:
        alert = session.scalars(select(Alert).where(Alert.name == text)).first()
    if alert is not None:
        episode = (
            session.get(AlertHistory, alert.current_episode_id)
            if alert.current_episode_id is not None
            else None
        )
        if episode is None or episode.resolved_at is not None:
            raise NotFoundError(
                f"alert {alert.id} ({alert.name}) has no open episode to acknowledge",
                field="REF",
            )
        return episode
    if text.isdigit():
        return _episode(session, int(text))
    raise NotFoundError(f"no alert or episode {text!r}", field="REF")


def _episode(session: Session, episode_id: int) -> AlertHistory:
    episode = session.get(AlertHistory, episode_id)
    if episode is None:
        raise NotFoundError(f"no episode with id {episode_id}", field="REF")
    return episode


def acknowledge(
    session: Session,
    target: str,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
    length: timedelta | None = None,
) -> Acknowledgement:
    """Acknowledge the episode target names (see `find_episode`); a resolved episode is refused
    (InputError naming REF). Acknowledging again replaces who/when/note/until."""
    episode = find_episode(session, target)
    if episode.resolved_at is not None:
        raise InputError(f"episode {episode.id} is already resolved", field="REF")
    if note is not None:
        note = note.strip()[:NOTE_LIMIT] or None
    episode.acknowledged_at = now
    episode.acknowledged_by = by[:USER_LIMIT]
    episode.ack_note = note
    episode.ack_until = now + length if length is not None else None
    return Acknowledgement(
        episode.id,
        episode.alert_id,
        episode.alert_name,
        episode.acknowledged_by,
        now,
        note,
        episode.ack_until,
    )


def unacknowledge(session: Session, target: str) -> tuple[AlertHistory, bool]:
    """Take back an episode's acknowledgement; (episode, whether it was acknowledged)."""
    episode = find_episode(session, target)
    was = episode.acknowledged_at is not None
    episode.acknowledged_at = None
    episode.acknowledged_by = None
    episode.ack_note = None
    episode.ack_until = None
    return episode, was


def ack_as_json(episode: AlertHistory, now: datetime) -> dict[str, object] | None:
    """An episode's acknowledgement for JSON output (None when never acknowledged)."""
    if episode.acknowledged_at is None:
        return None
    return {
        "by": episode.acknowledged_by,
        "at": episode.acknowledged_at.isoformat(),
        "note": episode.ack_note,
        "until": episode.ack_until.isoformat() if episode.ack_until else None,
        "active": is_acknowledged(episode.acknowledged_at, episode.ack_until, now),
    }


def open_acknowledgements(
    session: Session, alert_ids: list[int], now: datetime
) -> dict[int, AlertHistory]:
    """alert id -> its open episode, for those of alert_ids whose open episode is acknowledged
    now (for `list` and `show`)."""
    if not alert_ids:
        return {}
    rows = session.execute(
        select(Alert.id, AlertHistory)
        .join(AlertHistory, AlertHistory.id == Alert.current_episode_id)
        .where(
            Alert.id.in_(alert_ids),
            AlertHistory.resolved_at.is_(None),
            AlertHistory.acknowledged_at.is_not(None),
        )
    ).all()
    return {
        alert_id: episode
        for alert_id, episode in rows
        if is_acknowledged(episode.acknowledged_at, episode.ack_until, now)
    }


def describe(episode: AlertHistory) -> str:
    """`acknowledged by NAME at TIME [until TIME]: NOTE`, for the text displays."""
    text = f"acknowledged by {episode.acknowledged_by} at {_fmt(episode.acknowledged_at)}"
    if episode.ack_until is not None:
        text += f" until {_fmt(episode.ack_until)}"
    if episode.ack_note:
        text += f": {episode.ack_note}"
    return text


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"
