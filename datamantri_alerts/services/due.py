"""Which alerts are due for a check now: one rule for the evaluator and for `--dry-run`.

An active alert is due when its `next_due_at` has come. The evaluator sets `next_due_at` to the
evaluation time plus `check_interval_minutes`; a new or edited alert has none and is due at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Alert

DEFAULT_INTERVAL_MINUTES = 5


def check_interval(config: dict[str, Any] | None) -> timedelta:
    """The alert's `check_interval_minutes` (default 5) as a timedelta."""
    minutes = (config or {}).get("check_interval_minutes", DEFAULT_INTERVAL_MINUTES)
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        minutes = DEFAULT_INTERVAL_MINUTES
    return timedelta(minutes=minutes)


def due_condition(now: datetime, all_: bool) -> list[Any]:
    """WHERE clauses selecting due alerts (`all_` ignores intervals, never the active flag)."""
    conditions: list[Any] = [Alert.is_active.is_(True)]
    if not all_:
        conditions.append(or_(Alert.next_due_at.is_(None), Alert.next_due_at <= now))
    return conditions


def due_alerts(
    session: Session, now: datetime, *, all: bool = False, ref: str | int | None = None
) -> list[Alert]:
    """Active alerts due at `now`, by id. `all` ignores intervals; `ref` picks one alert
    (by id or exact name) whatever its interval or active flag, as asked for by name."""
    if ref is not None:
        from datamantri_alerts.services.alerts import get_alert

        return [get_alert(session, ref)]
    return list(session.scalars(select(Alert).where(*due_condition(now, all)).order_by(Alert.id)))
