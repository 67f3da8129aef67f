"""How many alerts a run claims at a time: 100 units' worth (a unit is a check read alone, or a
group read together, counted as its members until it answers), so alerts read in groups are
claimed up to 500 at a time once their groups answer, and alerts read alone 100 at a time, as
before; a set batch size is kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services.checking import alerts_per_unit
from datamantri_alerts.services.evaluate import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    RunOptions,
    run_evaluation,
)
from tests.evaluator.conftest import Flags, make_alerts


def claim_limits(store: Any, options: RunOptions) -> tuple[list[int], Any]:
    """The LIMIT of every claim the run made, in order, and the run's summary."""
    limits: list[int] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        found = re.search(r"LIMIT\s+(?:%\((\w+)\)s|\S+)", statement)
        if statement.lstrip().startswith("SELECT alerts.id") and found:
            # A named parameter (PostgreSQL), else the positional one after those before it
            # (`?` on SQLite, `%s` on MariaDB).
            name, before = found.group(1), statement[: found.start()]
            index = before.count("?") + before.count("%s")
            limits.append(int(parameters[name] if name else parameters[index]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        summary = run_evaluation(store, SystemClock(), options)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return limits, summary


def test_alerts_per_unit() -> None:
    assert alerts_per_unit(100, 100) == 1.0  # checks read alone
    assert alerts_per_unit(100, 2) == 50.0  # full groups of 50
    assert alerts_per_unit(0, 0) == 1.0  # nothing seen yet: never below one


@pytest.fixture
def patient_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group is cut off after 30 s, not 1 s: a loaded machine does not send a group of this
    test to be read alone (which would size the next claims, rightly, for checks alone)."""
    import datamantri_alerts.checks.base as base
    import datamantri_alerts.services.checking as checking

    monkeypatch.setattr(base, "GROUP_BOUND_SECONDS", 30.0)
    monkeypatch.setattr(checking, "GROUP_BOUND_SECONDS", 30.0)


def freshness_alerts(store: Any, tmp_path: Path, count: int, table: str) -> None:
    """`count` freshness alerts on `table` of a SQLite data source holding a fresh `orders`."""
    from datamantri_alerts.schema import DataSourceSpec, validate_alert
    from datamantri_alerts.services.alerts import create_alert
    from datamantri_alerts.services.entities import add_entity

    warehouse = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = create_engine(warehouse)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (loaded_at TEXT)"))
        conn.execute(text("INSERT INTO orders VALUES (datetime('now'))"))
    engine.dispose()
    with store.transaction() as session:
        add_entity(
            session, "datasource", DataSourceSpec(id="wh", name="W", url=warehouse), SystemClock()
        )
        for i in range(count):
            document = {
                "name": f"fresh-{i}",
                "condition_type": "freshness",
                "condition_config": {
                    "datasource_id": "wh",
                    "table": table,
                    "timestamp_column": "loaded_at",
                    "warn_after": {"count": 2, "period": "hour"},
                },
            }
            create_alert(session, validate_alert(document), SystemClock())


def test_alerts_read_in_groups_are_claimed_up_to_the_maximum(
    store: Any, tmp_path: Path, patient_groups: None
) -> None:
    count = DEFAULT_BATCH_SIZE + MAX_BATCH_SIZE + 50
    freshness_alerts(store, tmp_path, count, "orders")

    # One slot: every group of a batch has answered before the next claim.
    limits, summary = claim_limits(store, RunOptions(host="h", all=True, concurrency=1))

    assert len(summary.results) == count
    assert {r.outcome for r in summary.results} == {"ok"}
    # The first claim knows nothing of the checks; its 100 alerts were read in 2 groups of
    # 50 (50 alerts a unit), so the next claims take 100 units' worth: 5,000, at most 500.
    assert limits[:3] == [DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_BATCH_SIZE], limits


def test_groups_that_have_not_answered_count_as_their_members(
    store: Any, tmp_path: Path, patient_groups: None
) -> None:
    """Four slots: the first batch's 2 groups start and the runner claims again at once, before
    either answered: 100 alerts, not the 500 that 2 groups of 50 would suggest (a group that
    fails hands its 50 members back to be read alone). The claims grow as groups answer."""
    count = 1200
    freshness_alerts(store, tmp_path, count, "orders")

    limits, summary = claim_limits(store, RunOptions(host="h", all=True, concurrency=4))

    assert len(summary.results) == count
    assert limits[:2] == [DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE], limits
    # The last claim (none left) comes with at most 3 groups still out: by then at least
    # 1,050 alerts answered in 21 groups, 7 alerts a unit or more.
    assert limits[-1] == MAX_BATCH_SIZE, limits


def test_alerts_read_alone_are_claimed_a_hundred_at_a_time(store: Any, flags: Flags) -> None:
    flags.set(alone="ok")
    make_alerts(
        store, flags, [{"name": f"alone-{i}", "key": "alone", "channels": []} for i in range(250)]
    )

    limits, summary = claim_limits(store, RunOptions(host="h", all=True, concurrency=32))

    assert len(summary.results) == 250
    # One alert a unit: 100, as before, at any number of slots.
    assert limits == [DEFAULT_BATCH_SIZE] * 4, limits


def test_a_batch_size_that_is_set_is_kept(store: Any, tmp_path: Path, flags: Flags) -> None:
    flags.set(set_size="ok")
    make_alerts(
        store, flags, [{"name": f"set-{i}", "key": "set_size", "channels": []} for i in range(25)]
    )

    limits, summary = claim_limits(
        store, RunOptions(host="h", all=True, concurrency=16, batch_size=10)
    )

    assert len(summary.results) == 25
    assert limits == [10, 10, 10, 10], limits


def test_groups_that_fall_back_to_checks_alone_count_as_those_checks(
    store: Any, tmp_path: Path, patient_groups: None
) -> None:
    """A group whose statement fails hands its members back to be read alone: each is a unit
    then, so the next claims are sized for checks read alone (one slot: every unit of a batch
    has started before the next claim, so the count is exact)."""
    freshness_alerts(store, tmp_path, 250, "missing_table")

    limits, summary = claim_limits(store, RunOptions(host="h", all=True, concurrency=1))

    assert len(summary.results) == 250
    assert {r.outcome for r in summary.results} == {"error"}
    # 100, 100, then 50 left, then none. Counted as 2 groups, the next claims would be 500.
    assert limits == [DEFAULT_BATCH_SIZE] * 4, limits
