"""Which alerts are due for a check now."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Alert

DEFAULT_INTERVAL_MINUTES = 5


def check_interval(alert: Alert) -> timedelta:
    config = alert.condition_config if isinstance(alert.condition_config, dict) else {}
    minutes = config.get("check_interval_minutes", DEFAULT_INTERVAL_MINUTES)
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        minutes = DEFAULT_INTERVAL_MINUTES
    return timedelta(minutes=minutes)


def is_due(alert: Alert, now: datetime) -> bool:
    """Due when `next_due_at` has come, or (none set) when the interval since the last
    evaluation has passed; never evaluated means due."""
    if alert.next_due_at is not None:
        return alert.next_due_at <= now
    if alert.last_evaluated_at is None:
        return True
    return alert.last_evaluated_at + check_interval(alert) <= now


def due_alerts(
    session: Session, now: datetime, *, all: bool = False, ref: str | int | None = None
) -> list[Alert]:
    """Active alerts due at `now`, by id. `all` ignores intervals; `ref` picks one alert
    (by id or exact name) whatever its interval or active flag, as asked for by name."""
    if ref is not None:
        from datamantri_alerts.services.alerts import get_alert

        return [get_alert(session, ref)]
    query = select(Alert).where(Alert.is_active.is_(True)).order_by(Alert.id)
    if not all:
        query = query.where(or_(Alert.next_due_at.is_(None), Alert.next_due_at <= now))
    alerts = list(session.scalars(query))
    return alerts if all else [alert for alert in alerts if is_due(alert, now)]
