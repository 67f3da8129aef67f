"""Window arithmetic: Alertmanager `time_intervals` fields, DST days in Europe/Berlin, next
start and end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datamantri_alerts.services.signal.windows import Window, validate_window


def make(**fields: object) -> Window:
    spec = validate_window({"name": "w", **fields})
    return Window("w", spec)


def minutes_inside(window: Window, day: datetime) -> int:
    return sum(window.contains(day + timedelta(minutes=m)) for m in range(24 * 60))


def test_berlin_0200_0300_on_both_dst_change_days() -> None:
    window = make(times=["02:00-03:00"], location="Europe/Berlin")
    # 29 March 2026: clocks jump from 02:00 to 03:00, the hour does not exist: no window.
    assert minutes_inside(window, datetime(2026, 3, 29, tzinfo=UTC)) == 0
    # 25 October 2026: 02:00-03:00 happens twice, two real hours.
    assert minutes_inside(window, datetime(2026, 10, 25, tzinfo=UTC)) == 120
    # An ordinary day: one hour, 00:00-01:00 UTC in winter, 01:00-01:59 UTC... in CET.
    assert minutes_inside(window, datetime(2026, 3, 28, tzinfo=UTC)) == 60
    assert window.contains(datetime(2026, 3, 28, 1, 0, tzinfo=UTC))
    assert not window.contains(datetime(2026, 3, 28, 2, 0, tzinfo=UTC))
    # Next start and end across the spring change skip the missing hour.
    assert window.next_change(datetime(2026, 3, 28, 12, tzinfo=UTC)) == (
        datetime(2026, 3, 30, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 1, 0, tzinfo=UTC),
    )
    # In autumn the window started at 00:00 UTC (02:00 CEST) and ends at 02:00 UTC.
    assert window.next_change(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == (
        None,
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
    )


def test_weekdays_days_of_month_and_months() -> None:
    weekdays = make(weekdays=["monday:friday"], times=["22:00-24:00"])
    assert weekdays.contains(datetime(2026, 11, 30, 22, 30, tzinfo=UTC))  # a Monday
    assert not weekdays.contains(datetime(2026, 11, 29, 22, 30, tzinfo=UTC))  # a Sunday
    last_day = make(days_of_month=["-1"])
    assert last_day.contains(datetime(2026, 2, 28, 12, tzinfo=UTC))
    assert not last_day.contains(datetime(2026, 2, 27, 12, tzinfo=UTC))
    assert last_day.next_change(datetime(2026, 2, 10, tzinfo=UTC)) == (
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    summer = make(months=["june:august"], weekdays=["saturday", "sunday"])
    assert summer.contains(datetime(2026, 7, 4, 9, tzinfo=UTC))  # a Saturday in July
    assert not summer.contains(datetime(2026, 9, 5, 9, tzinfo=UTC))


def test_never_again_and_one_off() -> None:
    impossible = make(months=["february"], days_of_month=["30"])
    assert impossible.next_change(datetime(2026, 1, 1, tzinfo=UTC)) == (None, None)
    start = datetime(2026, 5, 1, 8, tzinfo=UTC)
    once = make(start=start.isoformat(), end=(start + timedelta(hours=2)).isoformat())
    assert once.next_change(start - timedelta(days=1)) == (start, start + timedelta(hours=2))
    assert once.next_change(start + timedelta(hours=3)) == (None, None)
    assert once.contains(start) and not once.contains(start + timedelta(hours=2))
