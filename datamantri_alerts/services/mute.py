"""Silencing an alert: states and history still move, notifications are recorded as suppressed.

When the mute ends (it expires, `alerts unmute`, or an edit or sync clears `muted_until`), or a
maintenance window or silence that held the alert ends, or it stops flapping, the next
evaluator run sends what the user still needs to hear, as Alertmanager does when a silence
expires, once:

* the FIRING (or could-not-evaluate) message of the alert's episode, when that episode is still
  open and its opening message was suppressed;
* the ESCALATED message of that still-open episode, when it rose in severity while muted;
* the RESOLVED message of an episode whose opening message was sent before the mute.

An episode that opened and resolved while muted sends nothing afterwards (nothing the user was
told about changed), and suppressed REPEAT messages are never sent late.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from datamantri_alerts.errors import InputError
from datamantri_alerts.store.models import Alert, AlertHistory, Notification

#: A mute longer than this is almost certainly a mistake; disable the alert instead.
MAX_MUTE = timedelta(days=366)

#: Notification kinds that open an episode's conversation with the user.
OPENING_KINDS = ("firing", "error")

#: Kinds owed after a mute while their episode is still open.
OWED_WHILE_OPEN = (*OPENING_KINDS, "escalated")

#: Statuses of a notification that was (or is being) told, not held back.
TOLD_STATUSES = ("pending", "sent", "failed")


def mute_alert(alert: Alert, duration: timedelta, reason: str | None, now: datetime) -> datetime:
    if duration > MAX_MUTE:
        raise InputError("at most 366 days; use `alerts disable` to switch an alert off", "--for")
    alert.muted_until = now + duration
    alert.mute_reason = reason or None
    return alert.muted_until


def unmute_alert(alert: Alert) -> bool:
    """End the mute now; returns whether it was muted. The next evaluator run sends what the
    mute held back (`release_after_mute`)."""
    was_muted = alert.muted_until is not None
    alert.muted_until = None
    alert.mute_reason = None
    return was_muted


def is_muted(alert: Alert, now: datetime) -> bool:
    return alert.muted_until is not None and alert.muted_until > now


def release_after_mute(
    session: Session,
    now: datetime,
    *,
    held: Collection[int] = (),
    only: Collection[int] | None = None,
) -> int:
    """Turn the suppressed notifications the user is owed (see the module docstring) of alerts
    no longer muted at `now` into pending ones, due now; returns how many.

    `held`: ids of alerts something else still holds (a window, a silence, flapping:
    `services.signal.hold.held_alert_ids`), left alone; `only` limits the release to these ids.

    The alerts' `last_notified_at` becomes `now`, so a REPEAT follows `repeat_interval_minutes`
    after the released message. Idempotent: a released row is no longer suppressed.
    """
    told = aliased(Notification)
    owed = (
        select(Notification.id, Notification.alert_id, Notification.kind)
        .join(Alert, Alert.id == Notification.alert_id)
        .join(AlertHistory, AlertHistory.id == Notification.history_id)
        .where(
            Notification.status == "suppressed",
            or_(Alert.muted_until.is_(None), Alert.muted_until <= now),
            *([Alert.id.not_in(list(held))] if held else []),
            *([Alert.id.in_(list(only))] if only is not None else []),
            or_(
                and_(
                    Notification.kind.in_(OWED_WHILE_OPEN),
                    AlertHistory.id == Alert.current_episode_id,
                    AlertHistory.resolved_at.is_(None),
                ),
                and_(
                    Notification.kind == "resolved",
                    exists(
                        select(told.id).where(
                            told.history_id == Notification.history_id,
                            told.kind.in_(OPENING_KINDS),
                            told.status.in_(TOLD_STATUSES),
                        )
                    ),
                ),
            ),
        )
        .order_by(Notification.id)
    )
    rows = session.execute(owed).all()
    if not rows:
        return 0
    released = session.execute(
        update(Notification)
        .where(Notification.id.in_([row.id for row in rows]), Notification.status == "suppressed")
        .values(status="pending", next_attempt_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    opened = sorted({row.alert_id for row in rows if row.kind in OWED_WHILE_OPEN})
    if opened:
        session.execute(
            update(Alert)
            .where(Alert.id.in_(opened))
            .values(last_notified_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(released or 0)
