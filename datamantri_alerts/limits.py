"""Field types bounding what a definition may say: numbers, points in time, text.

Every number an alert document, a watched entity or a CLI option gives is declared with one of
the annotated types below (or `bounded_int` / `bounded_float`), so it is finite, not a boolean,
inside a documented range, and small enough that `datetime`/`timedelta` arithmetic on it cannot
overflow. Text fields refuse NUL and other C0 control characters (PostgreSQL cannot store NUL;
the others make one-line output and logs lie). Each refusal is a pydantic error naming the field,
which `schema.format_validation_error` turns into one line (exit 2). The plain checks behind the
text types, durations and nesting live in `inputs.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from datamantri_alerts.inputs import (
    NOTHING_ALLOWED,
    bounded_time,
    control_character,
    describe_control,
)

#: Longest interval, repeat interval or tolerance, in minutes: 366 days.
MAX_MINUTES = 527_040
#: Longest "no run for this long" window, in hours: 366 days.
MAX_HOURS = 8_784
#: Longest time one check may run before it is cut off, in seconds (a query_slow probe).
MAX_TIMEOUT_SECONDS = 3_600
#: A count of evaluations, runs or rows.
MAX_COUNT = 1_000


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def bounded_int(*, ge: int, le: int) -> Any:
    """An int in [ge, le]; booleans are refused (YAML `yes` is not 1)."""
    # The bounds come first, so the JSON schema (`alerts types`) shows them as minimum/maximum.
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_not_bool)]


def bounded_float(*, le: float, gt: float | None = None, ge: float | None = None) -> Any:
    """A finite float in (gt or [ge, le]; NaN, infinities and booleans are refused."""
    return Annotated[
        float, Field(gt=gt, ge=ge, le=le, allow_inf_nan=False), BeforeValidator(_not_bool)
    ]


#: check_interval_minutes: at least one minute, at most a week.
IntervalMinutes = bounded_int(ge=1, le=10_080)
#: repeat_interval_minutes (0: once per episode), tolerance_minutes.
Minutes = bounded_int(ge=0, le=MAX_MINUTES)
#: pending_evaluations, failures_before_alert, check_last_n_runs, max_rows.
Count = bounded_int(ge=1, le=MAX_COUNT)
#: tolerance_minutes of sla_breach: at most a day late.
ToleranceMinutes = bounded_int(ge=0, le=1_440)
#: timeout_seconds of a check: connect plus query, at most ten minutes.
TimeoutSeconds = bounded_float(gt=0, le=600)
#: timeout_seconds of a query_slow probe: it may wait for a slow query up to an hour.
ProbeTimeoutSeconds = bounded_float(gt=0, le=MAX_TIMEOUT_SECONDS)
#: threshold_seconds of query_slow: more than zero, at most a day.
ThresholdSeconds = bounded_float(gt=0, le=86_400)
#: max_hours_without_run: more than zero, at most 366 days.
Hours = bounded_float(gt=0, le=MAX_HOURS)


# --------------------------------------------------------------------------- time


#: A point in time given as input (e.g. muted_until).
AwareTime = Annotated[datetime, AfterValidator(bounded_time)]


# --------------------------------------------------------------------------- text


def _single_line(value: str) -> str:
    ch = control_character(value, allow=NOTHING_ALLOWED)
    if ch is not None:
        raise ValueError(f"must not contain {describe_control(ch)}")
    return value


def _free_text(value: str) -> str:
    ch = control_character(value)
    if ch is not None:
        raise ValueError(f"must not contain {describe_control(ch)}")
    return value


#: A name, id, table or zone: no control characters at all (not even newline or tab).
Line = Annotated[str, AfterValidator(_single_line)]
#: A description, query or note: tab and newlines allowed, other control characters not.
Text = Annotated[str, AfterValidator(_free_text)]
