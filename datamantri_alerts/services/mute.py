"""Silencing an alert: states and history still move, notifications are recorded as suppressed."""

from __future__ import annotations

from datetime import datetime, timedelta

from datamantri_alerts.errors import InputError
from datamantri_alerts.store.models import Alert

#: A mute longer than this is almost certainly a mistake; disable the alert instead.
MAX_MUTE = timedelta(days=366)


def mute_alert(alert: Alert, duration: timedelta, reason: str | None, now: datetime) -> datetime:
    if duration > MAX_MUTE:
        raise InputError("at most 366 days; use `alerts disable` to switch an alert off", "--for")
    alert.muted_until = now + duration
    alert.mute_reason = reason or None
    return alert.muted_until


def unmute_alert(alert: Alert) -> bool:
    """Returns whether it was muted."""
    was_muted = alert.muted_until is not None
    alert.muted_until = None
    alert.mute_reason = None
    return was_muted


def is_muted(alert: Alert, now: datetime) -> bool:
    return alert.muted_until is not None and alert.muted_until > now
