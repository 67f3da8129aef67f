"""freshness alerts on one data source are read together (`checks.base.GroupedCheck`): one
statement per group instead of one per alert, with exactly the results each alert gets alone, on
SQLite, PostgreSQL (Tokyo session) and MariaDB (+09:00 server), and a locked table costing its
group at most the group's bound."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from datamantri_alerts.checks.base import GROUP_BOUND_SECONDS
from datamantri_alerts.checks.freshness import CHECK, FreshnessConfig
from tests.checks.conftest import Harness
from tests.checks.test_freshness import CONFIG, NOW, _pg_tokyo, _run_sql

#: (table suffix, UTC load instants): fresh, past warn_after (2 h), past error_after (6 h), empty.
TABLES = {
    "fresh": ["2026-11-30 09:00:00", "2026-11-30 11:30:00"],
    "warn": ["2026-11-30 07:00:00"],
    "error": ["2026-11-30 04:48:00"],
    "empty": [],
}


def _stamp(url: str, value: str) -> str:
    return f"'{value}'" if url.startswith("mysql") else f"'{value}+00:00'"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        # Sets MariaDB's global time zone (mariadb_server_zone): serial.
        pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.serial]),
    ]
)
def tables(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, dict[str, str]]:
    """(write URL, read URL, suffix -> table name), loaded as in TABLES, plus a `naive_tokyo`
    table whose column has no zone (wall-clock times in Asia/Tokyo)."""
    prefix = f"g{uuid.uuid4().hex[:6]}"
    if request.param == "sqlite":
        write = read = f"sqlite:///{tmp_path / 'warehouse.db'}"
        aware, naive = "TEXT", "TEXT"
    elif request.param == "postgres":
        write = request.getfixturevalue("pg_url")
        read, aware, naive = _pg_tokyo(write), "timestamptz", "timestamp"
    else:
        read = request.getfixturevalue("mariadb_database")
        request.getfixturevalue("mariadb_server_zone")("+09:00")
        write = read + "?init_command=SET+time_zone%3D%27%2B00%3A00%27"
        aware, naive = "TIMESTAMP NULL", "DATETIME NULL"
    names = {suffix: f"{prefix}_{suffix}" for suffix in [*TABLES, "naive_tokyo"]}
    statements = []
    for suffix, stamps in TABLES.items():
        statements.append(f"CREATE TABLE {names[suffix]} (loaded_at {aware})")
        statements += [f"INSERT INTO {names[suffix]} VALUES ({_stamp(write, s)})" for s in stamps]
    statements += [
        f"CREATE TABLE {names['naive_tokyo']} (loaded_at {naive})",
        # 18:00 in Tokyo is 09:00 UTC: 3 h old at NOW, past warn_after.
        f"INSERT INTO {names['naive_tokyo']} VALUES ('2026-11-30 18:00:00')",
    ]
    _run_sql(write, *statements)
    return write, read, names


def _alerts(names: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    alerts = [("freshness", {**CONFIG, "table": names[s]}) for s in TABLES]
    alerts += [
        (
            "freshness",
            {**CONFIG, "table": names["naive_tokyo"], "timestamp_timezone": "Asia/Tokyo"},
        ),
        # Each fails alone with its own error; the group must not blur it.
        ("freshness", {**CONFIG, "table": names["fresh"], "timestamp_column": "no_such_column"}),
        ("freshness", {**CONFIG, "table": names["fresh"] + "_missing"}),
        # Never grouped (the author's SQL): evaluated alone, as always.
        ("freshness", {**CONFIG, "table": names["fresh"], "filter": "1 = 1"}),
    ]
    return alerts * 3  # enough for groups of several members


def _comparable(result: Any) -> tuple[Any, ...]:
    details = {k: v for k, v in result.details.items() if k != "duration_seconds"}
    return result.outcome, result.severity, result.summary, details


def test_a_group_gives_each_alert_exactly_what_it_gets_alone(
    harness: Harness,
    tables: tuple[str, str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, read, names = tables
    harness.add_datasource("wh", read)
    harness.freeze(NOW)
    alerts = _alerts(names)

    grouped = harness.run_many(alerts, concurrency=4)
    monkeypatch.setattr("datamantri_alerts.checks.base.GROUP_SIZE", 1)
    alone = harness.run_many(alerts, concurrency=4)

    assert [_comparable(r) for r in grouped] == [_comparable(r) for r in alone]
    by_table = {r.details.get("table"): r for r in grouped[:5]}
    assert by_table[names["fresh"]].outcome == "ok"
    assert by_table[names["warn"]].severity == "warning"
    assert by_table[names["error"]].severity == "critical"
    assert by_table[names["empty"]].summary.endswith("no rows, past error_after 6h")
    assert by_table[names["naive_tokyo"]].details["newest_value"] == "2026-11-30T09:00:00+00:00"
    column, missing = grouped[5], grouped[6]
    assert column.outcome == "error" and "no_such_column" in column.summary, column.summary
    assert missing.outcome == "error" and "_missing" in missing.summary, missing.summary


def _transactions(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


def _settled_transactions(url: str) -> int:
    """The database's transaction count once every backend has reported its own."""
    time.sleep(1.2)  # backends flush their counts when idle or when they end
    return _transactions(url)


def _pg_tables(pg_url: str, count: int) -> str:
    """`count` PostgreSQL tables `<prefix>_<i>` (loaded_at timestamptz), each loaded at 11:00
    UTC (fresh at NOW); returns the prefix."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    statements = []
    for i in range(count):
        statements += [
            f"CREATE TABLE {prefix}_{i} (loaded_at timestamptz)",
            f"INSERT INTO {prefix}_{i} VALUES ('2026-11-30 11:00:00+00')",
        ]
    _run_sql(pg_url, *statements)
    return prefix


@pytest.mark.serial  # wall-clock bounds; server statistics settle after a sleep
@pytest.mark.postgres
def test_a_hundred_alerts_on_one_source_cost_a_few_statements_not_a_hundred(
    harness: Harness, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = _pg_tables(pg_url, 100)
    harness.add_datasource("wh", pg_url)
    harness.freeze(NOW)
    alerts = [("freshness", {**CONFIG, "table": f"{prefix}_{i}"}) for i in range(100)]

    before = _settled_transactions(pg_url)
    grouped = harness.run_many(alerts, concurrency=4)
    grouped_cost = _settled_transactions(pg_url) - before - 1  # -1: the count's own
    monkeypatch.setattr("datamantri_alerts.checks.base.GROUP_SIZE", 1)
    before = _settled_transactions(pg_url)
    alone = harness.run_many(alerts, concurrency=4)
    alone_cost = _settled_transactions(pg_url) - before - 1

    assert [r.outcome for r in grouped] == ["ok"] * 100 == [r.outcome for r in alone]
    assert alone_cost >= 100, alone_cost
    assert grouped_cost <= 12, grouped_cost  # two groups of 50 (and session set-up)


@pytest.mark.serial  # wall-clock bounds; server statistics settle after a sleep
@pytest.mark.postgres
def test_a_locked_table_holds_its_group_back_no_longer_than_the_group_bound(
    harness: Harness, pg_url: str
) -> None:
    """A table locked by a migration (ACCESS EXCLUSIVE, as `ALTER` or a dbt table swap takes)
    blocks every read of it. Its group gives up after GROUP_BOUND_SECONDS; the healthy members
    are then read alone at once, and only the locked table waits for its own timeout."""
    prefix = _pg_tables(pg_url, 40)
    harness.add_datasource("wh", pg_url)
    harness.freeze(NOW)
    timeout = 4
    alerts = [
        ("freshness", {**CONFIG, "table": f"{prefix}_{i}", "timeout_seconds": timeout})
        for i in range(40)
    ]
    locker = create_engine(pg_url)
    conn = locker.connect()
    try:
        conn.execute(text(f"LOCK TABLE {prefix}_7 IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        results = harness.run_many(alerts, concurrency=4)
        wall = time.monotonic() - started
    finally:
        conn.rollback()
        conn.close()
        locker.dispose()

    locked = results[7]
    assert locked.outcome == "error", locked.summary
    assert "statement timeout" in locked.summary or "cancel" in locked.summary, locked.summary
    healthy = results[:7] + results[8:]
    assert [r.outcome for r in healthy] == ["ok"] * 39
    # Each healthy alert's evaluation (its group's attempt included) took at most the group's
    # bound and one read of its own, not the locked table's timeout.
    assert max(r.duration_ms for r in healthy) < (GROUP_BOUND_SECONDS + 1.0) * 1000
    assert wall < GROUP_BOUND_SECONDS + timeout + 2.0
    backends = create_engine(pg_url)
    try:
        with backends.connect() as c:
            left = c.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND query LIKE '%max(loaded_at)%' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar()
    finally:
        backends.dispose()
    assert left == 0


def test_only_alerts_on_a_table_are_grouped() -> None:
    def key(**changes: Any) -> Any:
        return CHECK.group_key(FreshnessConfig.model_validate({**CONFIG, **changes}))

    assert key() == ("wh", 30)
    assert key(timeout_seconds=5) == ("wh", 5)  # one timeout per group
    assert key(datasource_id="other")[0] == "other"
    assert key(filter="status = 'done'") is None
    assert key(table=None, query="select loaded_at from a") is None


@pytest.mark.serial  # server statistics settle after a sleep; 150 reads with a 2 s bound
@pytest.mark.postgres
def test_after_a_group_is_cut_off_the_run_reads_that_source_alone(
    harness: Harness, pg_url: str
) -> None:
    """A group cut off at its bound means reading those tables together is slow (or one is
    locked): the rest of the run reads that source's alerts alone, so a slow source pays the
    group's bound once per run, not once per group."""
    prefix = _pg_tables(pg_url, 150)
    harness.add_datasource("wh", pg_url)
    harness.freeze(NOW)
    alerts = [
        ("freshness", {**CONFIG, "table": f"{prefix}_{i}", "timeout_seconds": 2})
        for i in range(150)
    ]
    locker = create_engine(pg_url)
    conn = locker.connect()
    try:
        conn.execute(text(f"LOCK TABLE {prefix}_3 IN ACCESS EXCLUSIVE MODE"))
        before = _settled_transactions(pg_url)
        results = harness.run_many(alerts, concurrency=1)  # the groups start one after another
        cost = _settled_transactions(pg_url) - before - 1
    finally:
        conn.rollback()
        conn.close()
        locker.dispose()
    assert results[3].outcome == "error", results[3].summary
    assert [r.outcome for r in results[:3] + results[4:]] == ["ok"] * 149
    # The first group (cut off), then all 150 alone: its 50 members and the 100 never grouped.
    assert cost >= 150, cost


def _mariadb_selects(url: str) -> int:
    """SELECT statements the MariaDB server has run since it started (all sessions)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SHOW GLOBAL STATUS LIKE 'Com_select'")).one()
            return int(row[1])
    finally:
        engine.dispose()


@pytest.mark.mariadb
@pytest.mark.serial  # reads the server's global statement counter
def test_a_group_converts_its_mariadb_timestamps_in_one_statement(
    harness: Harness, mariadb_database: str
) -> None:
    """MariaDB hands TIMESTAMP values back rendered in the session's zone, and the server
    converts them (`UNIX_TIMESTAMP`): once for the whole group, not once per member. A group of
    20 costs the server as many SELECTs as a group of one (it cost 19 more), with each alert's
    result what it gets alone."""
    prefix = f"m{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i}" for i in range(20)]
    statements = []
    for i, name in enumerate(names):
        statements += [
            f"CREATE TABLE {name} (loaded_at TIMESTAMP NULL)",
            f"INSERT INTO {name} VALUES ('2026-11-30 {9 - (i % 5) * 2:02d}:00:00')",
        ]
    _run_sql(mariadb_database + "?init_command=SET+time_zone%3D%27%2B00%3A00%27", *statements)
    harness.add_datasource("wh", mariadb_database)
    harness.freeze(NOW)
    alerts = [("freshness", {**CONFIG, "table": name}) for name in names]

    def selects_of(batch: list[tuple[str, dict[str, Any]]]) -> tuple[int, list[Any]]:
        before = _mariadb_selects(mariadb_database)
        results = harness.run_many(batch, concurrency=1)
        return _mariadb_selects(mariadb_database) - before, results

    one, _ = selects_of(alerts[:1])
    twenty, grouped = selects_of(alerts)
    assert twenty <= one, (one, twenty)
    alone_results = []
    for alert in alerts:
        alone_results += harness.run_many([alert], concurrency=1)
    assert [_comparable(r) for r in grouped] == [_comparable(r) for r in alone_results]
    assert {r.severity for r in grouped if r.outcome == "firing"} == {"warning", "critical"}
