"""How many alerts a run claims at a time: a batch holds at most 100 units (a check read alone,
or a group of up to 50 read in one statement; `services.checking.fit_units`). A group key counts
as read in groups only once a group of it answered every member, and never again once one did
not (`GroupRecord`). A claim takes as many alerts as the last batch made units by what is known
then, at most 500, and gives back at once the alerts past 100 units. A set batch size is kept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services.evaluate import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    RunOptions,
    run_evaluation,
)
from tests.evaluator.conftest import Flags, make_alerts


def claim_limits(store: Any, options: RunOptions) -> tuple[list[int], Any, list[str]]:
    """The LIMIT of every claim the run made, in order, the run's summary, and the statements
    that gave back alerts claimed past a batch's units."""
    limits: list[int] = []
    releases: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        flat = " ".join(statement.split())
        # A release (`leases.release`); a claim's UPDATE has no holder condition.
        if re.match(r"UPDATE alerts SET lease_holder=.* WHERE alerts.id IN \(.*\) AND ", flat):
            releases.append(flat)
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
    return limits, summary, releases


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

    limits, summary, releases = claim_limits(store, RunOptions(host="h", all=True, concurrency=4))

    assert len(summary.results) == count
    assert {r.outcome for r in summary.results} == {"ok"}
    # The first claim knows nothing of the checks. The second comes as soon as the first
    # batch's 2 groups have started, before either answered: its 100 alerts still count as 100
    # units. Once groups of their key have answered, the claims take 100 units' worth of such
    # alerts: 5,000, at most 500 (the last finds none left).
    assert limits == [DEFAULT_BATCH_SIZE] * 2 + [MAX_BATCH_SIZE] * 2, limits
    assert releases == []


def test_alerts_read_alone_are_claimed_a_hundred_at_a_time(store: Any, flags: Flags) -> None:
    flags.set(alone="ok")
    make_alerts(
        store, flags, [{"name": f"alone-{i}", "key": "alone", "channels": []} for i in range(250)]
    )

    limits, summary, releases = claim_limits(store, RunOptions(host="h", all=True, concurrency=32))

    assert len(summary.results) == 250
    # One alert a unit: 100, as before, at any number of slots.
    assert limits == [DEFAULT_BATCH_SIZE] * 4, limits
    assert releases == []


def test_checks_read_alone_after_groups_are_given_back_past_100_units(
    store: Any, tmp_path: Path, flags: Flags, patient_groups: None
) -> None:
    """Alerts 1-100 are read in 2 groups, alerts 101-700 alone: sized on the first batch, the
    second claim takes 500, keeps the 100 that make 100 units and gives back the other 400 at
    once; the claims after it are 100 again. No batch holds more than 100 units."""
    freshness_alerts(store, tmp_path, 100, "orders")
    flags.set(alone="ok")
    make_alerts(
        store, flags, [{"name": f"alone-{i}", "key": "alone", "channels": []} for i in range(600)]
    )

    limits, summary, releases = claim_limits(store, RunOptions(host="h", all=True, concurrency=1))

    assert len(summary.results) == 700
    assert len({r.id for r in summary.results}) == 700  # each once
    assert limits == [DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE] + [DEFAULT_BATCH_SIZE] * 6, limits
    assert len(releases) == 1


def test_a_batch_size_that_is_set_is_kept(store: Any, tmp_path: Path, flags: Flags) -> None:
    flags.set(set_size="ok")
    make_alerts(
        store, flags, [{"name": f"set-{i}", "key": "set_size", "channels": []} for i in range(25)]
    )

    limits, summary, releases = claim_limits(
        store, RunOptions(host="h", all=True, concurrency=16, batch_size=10)
    )

    assert len(summary.results) == 25
    assert limits == [10, 10, 10, 10], limits
    assert releases == []


@pytest.mark.parametrize("concurrency", [1, 16])
def test_groups_that_could_not_answer_count_as_checks_read_alone(
    store: Any, tmp_path: Path, patient_groups: None, concurrency: int
) -> None:
    """A group whose statement fails hands its members back to be read alone: its key then
    counts as checks read alone for good, and before any group of it answered it counts so
    too, so no claim takes more than 100 of them at any number of slots (a reviewer's case:
    600 on a missing table at 16 slots was claimed 100, 500)."""
    freshness_alerts(store, tmp_path, 600, "missing_table")

    limits, summary, releases = claim_limits(
        store, RunOptions(host="h", all=True, concurrency=concurrency)
    )

    assert len(summary.results) == 600
    assert {r.outcome for r in summary.results} == {"error"}
    assert limits == [DEFAULT_BATCH_SIZE] * 7, limits
    assert releases == []
