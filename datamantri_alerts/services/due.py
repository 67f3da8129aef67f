"""When an alert is due for a check: one rule for the evaluator and for `--dry-run`.

Evaluations sit on the alert's own grid: the multiples of `check_interval_minutes` counted from
the Unix epoch (UTC), so a 5-minute alert is due at :00, :05, :10, ... and a 60-minute alert on
the hour, the same instants a `*/5` or `0 *` cron line fires. An active alert is due when

* it has never been evaluated, or was created, edited or enabled since (`next_due_at` is NULL);
* its next grid point has come, or will come within `EARLY_ALLOWANCE` (5 s): a cron tick that
  fires a moment early, or a host whose clock is a little behind another's, still counts;
* the clock has gone back: its last evaluation is more than `STEP_BACK_MARGIN` (1 minute) in the
  future (an NTP step, a restored VM). The grid then restarts from the current time.

After an evaluation, `next_due_at` is the grid point after the one the evaluation served, the
served point being the latest one at or before the evaluation's start plus `EARLY_ALLOWANCE`.
A run that reaches an alert some seconds after its tick therefore keeps the alert on its grid,
and an evaluation that comes late (the evaluator was down) is followed by the next grid point
after it: never a burst of catch-up evaluations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Alert

DEFAULT_INTERVAL_MINUTES = 5

#: The origin of every alert's grid.
GRID_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)

#: How early a run may come and still count as the grid point's run. Far below the shortest
#: interval (1 minute), and below a cron minute minus a run's usual delay in reaching an alert,
#: so the run of the previous tick never takes the next grid point early.
EARLY_ALLOWANCE = timedelta(seconds=5)

#: A last evaluation further in the future than this means the clock went back. Larger than the
#: clock skew between evaluator hosts, so one host's run never repeats another's in the same tick.
STEP_BACK_MARGIN = timedelta(minutes=1)


def check_interval(config: dict[str, Any] | None) -> timedelta:
    """The alert's `check_interval_minutes` (default 5) as a timedelta."""
    minutes = (config or {}).get("check_interval_minutes", DEFAULT_INTERVAL_MINUTES)
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        minutes = DEFAULT_INTERVAL_MINUTES
    return timedelta(minutes=minutes)


def grid_point(at: datetime, interval: timedelta) -> datetime:
    """The latest multiple of `interval` since `GRID_ORIGIN` at or before `at` (aware UTC)."""
    return GRID_ORIGIN + ((at - GRID_ORIGIN) // interval) * interval


def next_due_after(started: datetime, interval: timedelta) -> datetime:
    """`next_due_at` for an evaluation that started at `started` (aware): the grid point after
    the one it served. Always later than `started + EARLY_ALLOWANCE`, at most one interval on."""
    return grid_point(started + EARLY_ALLOWANCE, interval) + interval


def due_condition(now: datetime, all_: bool) -> list[Any]:
    """WHERE clauses selecting the alerts due at `now` (`all_` ignores the schedule, never the
    active flag)."""
    conditions: list[Any] = [Alert.is_active.is_(True)]
    if not all_:
        conditions.append(
            or_(
                Alert.next_due_at.is_(None),
                Alert.next_due_at <= now + EARLY_ALLOWANCE,
                Alert.last_evaluated_at > now + STEP_BACK_MARGIN,
            )
        )
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
