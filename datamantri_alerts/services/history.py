"""Alert history: episodes, their deliveries, manual resolution, pruning, per-day counts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.inputs import bounded_duration, bounded_time
from datamantri_alerts.store.models import Alert, AlertHistory, EvaluatorRun, Notification

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
PRUNE_BATCH = 500


def parse_duration(text: str, field: str) -> timedelta:
    """`90d`, `24h`, `30m`, `2w`, `45s`: more than zero, at most `inputs.MAX_DURATION`."""
    match = _DURATION.match(text or "")
    if not match:
        raise InputError(f"expected a duration such as 30m, 2h, 7d or 2w, got {text!r}", field)
    return bounded_duration(float(match.group(1)), _UNITS[match.group(2).lower()], field)


def parse_since(text: str, now: datetime) -> datetime:
    """`24h` / `7d` (that long ago) or an ISO 8601 time (UTC when it has no offset)."""
    if _DURATION.match(text):
        return now - parse_duration(text, "--since")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"expected 24h, 7d or an ISO 8601 time, got {text!r}", field="--since"
        ) from None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    try:
        return bounded_time(value)
    except ValueError as exc:
        raise InputError(str(exc), field="--since") from None


def episode_as_json(episode: AlertHistory) -> dict[str, Any]:
    return {
        "id": episode.id,
        "alert_id": episode.alert_id,
        "alert_name": episode.alert_name,
        "kind": episode.kind,
        "triggered_at": episode.triggered_at,
        "resolved_at": episode.resolved_at,
        "duration_seconds": _duration(episode),
        "condition_met": episode.condition_met,
        "severity": episode.severity,
        "summary": episode.summary,
        "details": episode.details,
        "notifications_sent": episode.notifications_sent or [],
        "notification_errors": episode.notification_errors or [],
        "last_notified_at": episode.last_notified_at,
        "resolution_notes": episode.resolution_notes,
        "acknowledged_at": episode.acknowledged_at,
        "acknowledged_by": episode.acknowledged_by,
        "ack_note": episode.ack_note,
        "ack_until": episode.ack_until,
    }


def _duration(episode: AlertHistory) -> int | None:
    if episode.resolved_at is None:
        return None
    return int((episode.resolved_at - episode.triggered_at).total_seconds())


@dataclass
class HistoryFilter:
    alert_id: int | None = None
    since: datetime | None = None
    severity: str | None = None
    open_only: bool = False
    limit: int = 50


def list_episodes(session: Session, filters: HistoryFilter) -> list[AlertHistory]:
    """Episodes newest first."""
    query = select(AlertHistory)
    if filters.alert_id is not None:
        query = query.where(AlertHistory.alert_id == filters.alert_id)
    if filters.since is not None:
        query = query.where(AlertHistory.triggered_at >= filters.since)
    if filters.severity:
        query = query.where(AlertHistory.severity == filters.severity)
    if filters.open_only:
        query = query.where(AlertHistory.resolved_at.is_(None))
    query = query.order_by(AlertHistory.triggered_at.desc(), AlertHistory.id.desc())
    return list(session.scalars(query.limit(filters.limit)))


def channel_status(session: Session, episode_ids: list[int]) -> dict[int, dict[str, str]]:
    """episode id -> channel -> sent | failed | pending | suppressed (the worst of its rows)."""
    if not episode_ids:
        return {}
    rows = session.execute(
        select(Notification.history_id, Notification.channel, Notification.status)
        .where(Notification.history_id.in_(episode_ids))
        .distinct()
    ).all()
    rank = {"failed": 3, "pending": 2, "sent": 1, "suppressed": 0}
    out: dict[int, dict[str, str]] = {}
    for history_id, channel, status in rows:
        per = out.setdefault(history_id, {})
        if rank.get(status, 0) >= rank.get(per.get(channel, ""), -1):
            per[channel] = status
    return out


def get_episode(session: Session, episode_id: int) -> AlertHistory:
    episode = session.get(AlertHistory, episode_id)
    if episode is None:
        raise NotFoundError(f"no history entry with id {episode_id}", field="ID")
    return episode


def deliveries(session: Session, episode_id: int) -> list[dict[str, Any]]:
    """The outbox rows of an episode, recipients masked."""
    from datamantri_alerts.channels import get_channel
    from datamantri_alerts.channels.retry import display_recipient
    from datamantri_alerts.secrets import mask_url

    rows = session.scalars(
        select(Notification).where(Notification.history_id == episode_id).order_by(Notification.id)
    ).all()
    out = []
    for row in rows:
        try:
            shown = display_recipient(get_channel(row.channel), row.recipient)
        except KeyError:
            shown = mask_url(row.recipient)
        out.append(
            {
                "id": row.id,
                "kind": row.kind,
                "channel": row.channel,
                "recipient": shown,
                "status": row.status,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "created_at": row.created_at,
                "sent_at": row.sent_at,
                "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
            }
        )
    return out


def attempt_log(episode: AlertHistory) -> list[dict[str, Any]]:
    """Every recorded delivery call of the episode, oldest first."""
    entries = [*(episode.notifications_sent or []), *(episode.notification_errors or [])]
    return sorted(entries, key=lambda e: (str(e.get("at", "")), e.get("notification_id", 0)))


def resolve_episode(
    session: Session, episode: AlertHistory, note: str, now: datetime
) -> tuple[bool, int]:
    """Close an episode by hand (or add a note to a closed one); returns whether it was open
    and how many RESOLVED messages were queued.

    When it is its alert's open episode, the alert goes back to `ok`: if the condition still
    holds, the next evaluation opens a new episode and notifies again. Every tracker it
    triggered (PagerDuty, webhooks), and people's channels told its FIRING when the alert
    notifies on resolve, are queued a RESOLVED (`services.signal.closing`).
    """
    was_open = episode.resolved_at is None
    queued = 0
    if was_open:
        from datamantri_alerts.services.signal.ack import RESOLVED_FIRST, withdraw_pending
        from datamantri_alerts.services.signal.closing import queue_resolved

        episode.resolved_at = now
        withdraw_pending(session, episode.id, RESOLVED_FIRST)
        # The incidents its FIRING opened are told it closed (sent by the next evaluation).
        session.flush()
        queued = queue_resolved(session, [episode.id], now, by_hand=True, note=note)
    episode.resolution_notes = note
    if was_open and episode.alert_id is not None:
        session.execute(
            update(Alert)
            .where(Alert.id == episode.alert_id, Alert.current_episode_id == episode.id)
            .values(state="ok", consecutive_hits=0, current_episode_id=None)
        )
    return was_open, queued


def _delete_in_batches(
    session_factory: Any,
    model: Any,
    where: Sequence[Any],
    batch: int,
    dependents: Sequence[Any] = (),
) -> tuple[int, int]:
    """Delete rows of model matching where, `batch` per transaction (ids first, so memory and
    lock time stay bounded). Each dependent column (e.g. Notification.history_id) has its rows
    deleted first. Returns (rows deleted, dependent rows deleted)."""
    deleted = dependent_deleted = 0
    while True:
        with session_factory() as session:
            ids = list(
                session.scalars(select(model.id).where(*where).order_by(model.id).limit(batch))
            )
            if not ids:
                return deleted, dependent_deleted
            for column in dependents:
                result = session.execute(
                    delete(column.class_)
                    .where(column.in_(ids))
                    .execution_options(synchronize_session=False)
                )
                dependent_deleted += result.rowcount or 0
            result = session.execute(
                delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
            )
            deleted += result.rowcount or 0


def prune(session_factory: Any, cutoff: datetime, batch: int = PRUNE_BATCH) -> dict[str, int]:
    """Delete closed episodes triggered before cutoff (with their outbox rows) and old run
    records, a batch per transaction so memory and lock time stay bounded."""
    episodes, notifications = _delete_in_batches(
        session_factory,
        AlertHistory,
        [AlertHistory.triggered_at < cutoff, AlertHistory.resolved_at.is_not(None)],
        batch,
        dependents=[Notification.history_id],
    )
    runs, _ = _delete_in_batches(
        session_factory, EvaluatorRun, [EvaluatorRun.started_at < cutoff], batch
    )
    return {"episodes": episodes, "notifications": notifications, "evaluator_runs": runs}


def triggers_per_day(
    session: Session, alert_id: int, since: datetime, until: datetime
) -> list[tuple[date, int]]:
    """Firing episodes per UTC day, every day of the range (zeros included)."""
    since = since.replace(hour=0, minute=0, second=0, microsecond=0)
    times = session.scalars(
        select(AlertHistory.triggered_at).where(
            AlertHistory.alert_id == alert_id,
            AlertHistory.kind == "firing",
            AlertHistory.triggered_at >= since,
        )
    ).all()
    counts = Counter(t.date() for t in times)
    days = []
    day = since.date()
    while day <= until.date():
        days.append((day, counts.get(day, 0)))
        day += timedelta(days=1)
    return days


def count_episodes(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AlertHistory)) or 0)
