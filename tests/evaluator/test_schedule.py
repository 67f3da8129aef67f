"""Evaluations land on the alert's interval grid, whatever the cron step and the run's timing.

A scripted clock drives the evaluator's service layer over a day of cron runs, each run taking a
random 0-50 s (seeded); the clock stepping back, late runs, early ticks and interval edits are
checked against a real webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.due import (
    EARLY_ALLOWANCE,
    due_alerts,
    grid_point,
    next_due_after,
)
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 0, 0)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def store(sqlite_url: str) -> Any:
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def run(store: Any, clock: Any) -> Any:
    as_a_new_process()
    return run_evaluation(store, clock, RunOptions(host="test-host"))


def evaluated_at(store: Any, alert_id: int) -> datetime | None:
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.last_evaluated_at


# --------------------------------------------------------------------------- the rule itself


def test_grid_is_epoch_aligned_multiples_of_the_interval() -> None:
    five = timedelta(minutes=5)
    assert grid_point(utc(2026, 3, 2, 10, 7, 31), five) == utc(2026, 3, 2, 10, 5)
    assert grid_point(utc(2026, 3, 2, 10, 5), five) == utc(2026, 3, 2, 10, 5)
    assert grid_point(utc(2026, 3, 2, 10, 59), timedelta(hours=1)) == utc(2026, 3, 2, 10, 0)
    # A run that reaches the alert 50 s after the 10:05 tick serves 10:05: next due 10:10.
    assert next_due_after(utc(2026, 3, 2, 10, 5, 50), five) == utc(2026, 3, 2, 10, 10)
    # A tick 3 s early still serves its grid point (10:10), not the one before.
    assert next_due_after(utc(2026, 3, 2, 10, 9, 57), five) == utc(2026, 3, 2, 10, 15)
    # Late by an hour (the evaluator was down): the next grid point, no catch-up burst.
    assert next_due_after(utc(2026, 3, 2, 11, 7, 12), five) == utc(2026, 3, 2, 11, 10)
    assert EARLY_ALLOWANCE < MINUTE / 10


def test_due_selection_early_tick_clock_step_back(store: Any, flags: Flags) -> None:
    alert_id = make_alert(store, flags, "grid", config={"check_interval_minutes": 5})

    def due(at: datetime) -> bool:
        with store.session() as session:
            return [a.id for a in due_alerts(session, at)] == [alert_id]

    assert due(T0)  # never evaluated
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.last_evaluated_at = T0 + timedelta(seconds=40)
        alert.next_due_at = next_due_after(T0 + timedelta(seconds=40), timedelta(minutes=5))
    assert not due(T0 + timedelta(minutes=4, seconds=50))
    assert due(T0 + timedelta(minutes=4, seconds=57))  # 3 s early still counts
    assert due(T0 + timedelta(minutes=5))
    # Another host whose clock is 30 s behind, in the same tick: not due again.
    assert not due(T0 + timedelta(seconds=10))
    # The clock stepped back two hours: due at once, not in two hours.
    assert due(T0 - timedelta(hours=2))


# --------------------------------------------------------------------------- a day of cron runs


class CronRunClock:
    """A scripted clock for simulated cron runs: a run starts at its tick and every reading of
    the clock moves it on by a random share of the run's duration (so the alerts are reached,
    claimed and written at different moments), never past the end of the run."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._now = T0
        self._end = T0

    def start_run(self, tick: datetime, duration: timedelta) -> None:
        self._now, self._end = tick, tick + duration

    def now(self) -> datetime:
        step = (self._end - self._now) * self.rng.uniform(0, 0.6)
        self._now = min(self._end, self._now + step)
        return self._now


INTERVALS = (1, 5, 15, 60)


@pytest.mark.parametrize(
    ("cron_step", "hours"),
    [
        # Every minute for 4 h (240 runs; the 60-minute alert is due 4 times) in CI; the whole
        # day (1,440 runs, about 30 s) with -m slow. The 5-minute cron runs the whole day.
        pytest.param(1, 4, id="cron-every-minute-4h"),
        pytest.param(1, 24, id="cron-every-minute", marks=pytest.mark.slow),
        pytest.param(5, 24, id="cron-every-5-minutes"),
    ],
)
def test_a_day_of_cron_runs_keeps_every_alert_on_its_grid(
    store: Any, flags: Flags, sink: Sink, cron_step: int, hours: int
) -> None:
    rng = random.Random(20261130 + cron_step)
    clock = CronRunClock(rng)
    ids = {
        n: make_alert(
            store,
            flags,
            f"every {n} min",
            config={"check_interval_minutes": n},
            recipients={"slack": sink.hook(f"every-{n}")},
        )
        for n in INTERVALS
    }
    names = {f"every {n} min": n for n in INTERVALS}
    times: dict[int, list[datetime]] = {n: [] for n in INTERVALS}
    durations = []
    minutes = hours * 60
    for k in range(minutes // cron_step):
        duration = timedelta(seconds=rng.uniform(0, 50))
        durations.append(duration)
        clock.start_run(T0 + k * cron_step * MINUTE, duration)
        summary = run(store, clock)
        assert summary.ok, summary.problems
        for result in summary.results:
            n = names[result.name]
            at = evaluated_at(store, ids[n])
            assert at is not None
            times[n].append(at)
    step = timedelta(minutes=cron_step)
    print(
        f"\ncron every {cron_step} min, {len(durations)} runs of 0-50 s "
        f"(longest {max(durations).total_seconds():.0f} s) over {hours} h:"
    )
    for n in INTERVALS:
        gaps = [b - a for a, b in zip(times[n], times[n][1:], strict=False)]
        effective = max(n, cron_step)
        print(
            f"  interval {n:>2} min: {len(times[n]):>4} evaluations "
            f"(expected {minutes // effective}), largest gap {max(gaps)}, "
            f"smallest gap {min(gaps)}"
        )
        assert abs(len(times[n]) - minutes // effective) <= 1, (n, len(times[n]))
        assert max(gaps) <= timedelta(minutes=n) + step, (n, max(gaps))
        # Never twice for one grid point.
        assert min(gaps) > timedelta(minutes=effective) - timedelta(seconds=51), (n, min(gaps))
    assert sink.received == []  # every flag stayed ok


# --------------------------------------------------------------------------- clock and timing


def test_clock_stepping_back_two_hours_leaves_no_alert_waiting(
    store: Any, flags: Flags, sink: Sink
) -> None:
    clock = FrozenClock(T0 + timedelta(seconds=20))
    alert_id = make_alert(store, flags, "ntp", recipients={"slack": sink.hook("ntp")})
    assert [r.name for r in run(store, clock).results] == ["ntp"]
    # NTP steps the clock back two hours; the condition starts to hold.
    flags.set(ntp="firing")
    clock.set(T0 - timedelta(hours=2) + timedelta(minutes=1, seconds=10))
    summary = run(store, clock)
    assert [r.state for r in summary.results] == ["firing"]
    assert [slack_state(b) for b in sink.bodies("ntp")] == ["FIRING"]
    # From there on, the alert is back on its 5-minute grid in the new time.
    evaluations = []
    for minute in range(2, 17):
        clock.set(T0 - timedelta(hours=2) + timedelta(minutes=minute, seconds=10))
        if run(store, clock).results:
            evaluations.append(evaluated_at(store, alert_id))
    assert evaluations == [
        T0 - timedelta(hours=2) + timedelta(minutes=m, seconds=10) for m in (5, 10, 15)
    ]


def test_a_late_run_evaluates_once_then_returns_to_the_grid(store: Any, flags: Flags) -> None:
    clock = FrozenClock(T0 + timedelta(seconds=5))
    alert_id = make_alert(store, flags, "late", config={"check_interval_minutes": 15})
    assert len(run(store, clock).results) == 1
    # The evaluator was down for an hour and ten minutes: one evaluation, no burst.
    clock.set(T0 + timedelta(hours=1, minutes=10, seconds=30))
    assert len(run(store, clock).results) == 1
    clock.advance(seconds=30)
    assert run(store, clock).results == []
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.next_due_at == T0 + timedelta(hours=1, minutes=15)


def test_overlapping_runs_check_once_unless_they_straddle_an_early_edge(
    store: Any, flags: Flags
) -> None:
    """Two runs 2 s apart check a due alert once, by whichever claims it first; but when the
    first reads its clock just before a grid point's early edge (the point minus
    EARLY_ALLOWANCE) and the second just after, the first serves the point before (late) and
    the second the point itself (early): both check it. The overlap test
    (tests/reliability/test_overlap.py) keeps its rounds clear of such an edge."""
    alert_id = make_alert(store, flags, "edge", config={"check_interval_minutes": 5})
    point = T0 + timedelta(minutes=5)

    def checked(at: datetime) -> bool:
        return [r.name for r in run(store, FrozenClock(at)).results] == ["edge"]

    def next_due() -> datetime | None:
        with store.session() as session:
            alert = session.get(Alert, alert_id)
            assert alert is not None
            return alert.next_due_at

    assert checked(T0 + timedelta(seconds=20))
    assert not checked(T0 + timedelta(seconds=22))
    assert next_due() == point
    # Created, edited or enabled meanwhile (next_due_at NULL), then two runs across the edge.
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.next_due_at = None
    edge = point - EARLY_ALLOWANCE
    assert checked(edge - timedelta(seconds=1))
    assert next_due() == point
    assert checked(edge + timedelta(seconds=1))
    assert next_due() == point + timedelta(minutes=5)


def test_edited_interval_is_due_at_once_then_on_its_new_grid(store: Any, flags: Flags) -> None:
    from datamantri_alerts.services.alerts import update_alert

    clock = FrozenClock(T0 + timedelta(minutes=1, seconds=12))
    alert_id = make_alert(store, flags, "edited", config={"check_interval_minutes": 5})
    assert len(run(store, clock).results) == 1
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        config = {**alert.condition_config, "check_interval_minutes": 15}
        update_alert(session, alert, {"condition_config": config}, clock)
    clock.advance(minutes=1)
    assert len(run(store, clock).results) == 1
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.next_due_at == T0 + timedelta(minutes=15)


def test_pending_evaluations_count_grid_evaluations_not_cron_runs(
    store: Any, flags: Flags, sink: Sink
) -> None:
    """With cron every minute, `pending_evaluations: 3` on a 5-minute alert fires at the third
    5-minute evaluation (10 minutes after the first), not at the third cron run."""
    make_alert(
        store, flags, "patient", pending_evaluations=3, recipients={"slack": sink.hook("patient")}
    )
    flags.set(patient="firing")
    states: list[tuple[int, str]] = []
    for minute in range(0, 12):
        clock = FrozenClock(T0 + timedelta(minutes=minute, seconds=25))
        states.extend((minute, r.state) for r in run(store, clock).results)
    assert states == [(0, "pending"), (5, "pending"), (10, "firing")]
    assert [slack_state(b) for b in sink.bodies("patient")] == ["FIRING"]


def test_dry_run_uses_the_same_rule(store: Any, flags: Flags) -> None:
    clock = FrozenClock(T0 + timedelta(seconds=30))
    make_alert(store, flags, "shared")
    run(store, clock)
    with store.session() as session:
        assert due_alerts(session, T0 + timedelta(minutes=4, seconds=50)) == []
        assert [a.name for a in due_alerts(session, T0 + timedelta(minutes=5, seconds=1))] == [
            "shared"
        ]
    stored = select(Alert.next_due_at)
    with store.session() as session:
        assert list(session.scalars(stored)) == [T0 + timedelta(minutes=5)]


def test_failures_before_alert_counts_grid_evaluations(
    store: Any, tmp_path: Any, sink: Sink
) -> None:
    """`failures_before_alert: 2` on a 5-minute alert under cron every minute: fires at the
    second 5-minute evaluation, not at the second cron run."""
    from datamantri_alerts.schema import validate_alert
    from datamantri_alerts.services.alerts import create_alert
    from datamantri_alerts.store.models import DataSource

    with store.transaction() as session:
        session.add(
            DataSource(
                id="gone",
                name="Gone",
                url=f"sqlite:///{tmp_path / 'missing' / 'source.db'}",
                created_at=T0,
                updated_at=T0,
            )
        )
        session.flush()
        document = {
            "name": "source down",
            "condition_type": "datasource_failure",
            "condition_config": {"datasource_id": "gone", "failures_before_alert": 2},
            "channels": ["slack"],
            "recipients": {"slack": sink.hook("down")},
        }
        create_alert(session, validate_alert(document), FrozenClock(T0))
    seen: list[tuple[int, str]] = []
    for minute in range(0, 8):
        clock = FrozenClock(T0 + timedelta(minutes=minute, seconds=15))
        seen.extend((minute, r.state) for r in run(store, clock).results)
    assert seen == [(0, "ok"), (5, "firing")]
    assert [slack_state(b) for b in sink.bodies("down")] == ["FIRING"]
