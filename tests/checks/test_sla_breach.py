"""sla_breach with a frozen clock, time zones and DST days, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, create_engine, inspect

from datamantri_alerts.checks.sla_breach import newest_value_query, sla_window
from tests.checks.conftest import Harness
from tests.conftest import utc

HOSTILE_TABLE = 'orders"; DROP TABLE victims; --'
HOSTILE_COLUMN = "loaded_at`) FROM victims; DELETE FROM victims; --"


def _make_table(
    url: str,
    name: str,
    column: str,
    values: list,
    *,
    kind: str = "naive",
    schema: str | None = None,
) -> None:
    """A table with one timestamp column (naive, aware or date) and a `victims` bystander."""
    engine = create_engine(url)
    metadata = MetaData(schema=schema)
    column_type = {"naive": DateTime(), "aware": DateTime(timezone=True), "date": Date()}[kind]
    table = Table(
        name, metadata, Column("id", Integer, primary_key=True), Column(column, column_type)
    )
    victims = Table("victims", metadata, Column("id", Integer, primary_key=True))
    metadata.create_all(engine)
    with engine.begin() as conn:
        for value in values:
            conn.execute(table.insert().values({column: value}))
        conn.execute(victims.insert().values(id=1))
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _naive(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def lite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


CONFIG = {
    "datasource_id": "wh",
    "expected_load_time": "06:00",
    "tolerance_minutes": 30,
    "table": "orders",
    "timestamp_column": "loaded_at",
}


def test_utc_before_deadline_ok_after_deadline_stale_fires_fresh_ok(
    harness: Harness, lite: str
) -> None:
    _make_table(lite, "orders", "loaded_at", [_naive(utc(2025, 6, 1, 5, 0))])
    harness.add_datasource("wh", lite)

    harness.freeze(utc(2025, 6, 2, 6, 20))  # before 06:00 + 30 min, yesterday's data
    before = harness.run("sla_breach", CONFIG)
    assert before.outcome == "ok", before.summary
    assert before.details["past_deadline"] is False
    assert before.details["fresh"] is False

    harness.freeze(utc(2025, 6, 2, 6, 31))
    late = harness.run("sla_breach", CONFIG)
    assert late.outcome == "firing", late.summary
    assert "2025-06-01T05:00:00" in late.summary
    assert late.details["deadline"] == "2025-06-02T06:30:00+00:00"

    harness.freeze(utc(2025, 6, 1, 7, 0))  # the same data, on the day it was loaded
    fresh = harness.run("sla_breach", CONFIG)
    assert fresh.outcome == "ok", fresh.summary
    assert fresh.details["fresh"] is True


def test_empty_table_after_deadline_fires(harness: Harness, lite: str) -> None:
    _make_table(lite, "orders", "loaded_at", [])
    harness.add_datasource("wh", lite)
    harness.freeze(utc(2025, 6, 2, 12, 0))
    result = harness.run("sla_breach", CONFIG)
    assert result.outcome == "firing"
    assert "no rows" in result.summary


def test_new_york_spring_forward_day(harness: Harness, lite: str) -> None:
    """2024-03-10: clocks go 02:00 EST → 03:00 EDT. 06:00 local is 10:00 UTC (not 11:00),
    and the day started at 05:00 UTC (EST)."""
    # 04:30 UTC is 23:30 on March 9 in New York: yesterday's load.
    _make_table(lite, "orders", "loaded_at", [_naive(utc(2024, 3, 10, 4, 30))])
    harness.add_datasource("wh", lite)
    config = {**CONFIG, "tolerance_minutes": 0, "timezone": "America/New_York"}

    harness.freeze(utc(2024, 3, 10, 9, 45))  # 05:45 EDT
    assert harness.run("sla_breach", config).outcome == "ok"

    harness.freeze(utc(2024, 3, 10, 10, 30))  # 06:30 EDT: past the deadline, stale
    late = harness.run("sla_breach", config)
    assert late.outcome == "firing", late.summary
    assert late.details["deadline"] == "2024-03-10T06:00:00-04:00"
    assert late.details["start_of_day"] == "2024-03-10T00:00:00-05:00"

    window = sla_window(utc(2024, 3, 10, 10, 30), "06:00", 0, "America/New_York")
    assert window.deadline == utc(2024, 3, 10, 10, 0)
    assert window.start_of_day == utc(2024, 3, 10, 5, 0)


def test_new_york_fall_back_day(harness: Harness, lite: str) -> None:
    """2024-11-03: clocks go 02:00 EDT → 01:00 EST. 06:00 local is 11:00 UTC."""
    _make_table(lite, "orders", "loaded_at", [_naive(utc(2024, 11, 2, 10, 0))])
    harness.add_datasource("wh", lite)
    config = {**CONFIG, "tolerance_minutes": 0, "timezone": "America/New_York"}

    harness.freeze(utc(2024, 11, 3, 10, 30))  # 05:30 EST: an hour-off zone would say 06:30
    before = harness.run("sla_breach", config)
    assert before.outcome == "ok", before.summary
    assert before.details["deadline"] == "2024-11-03T06:00:00-05:00"

    harness.freeze(utc(2024, 11, 3, 11, 1))
    assert harness.run("sla_breach", config).outcome == "firing"


def test_a_load_after_local_midnight_is_fresh_in_that_zone(harness: Harness, lite: str) -> None:
    # 2025-01-15 02:00 UTC is still January 14 in New York: stale there, fresh in UTC.
    _make_table(lite, "orders", "loaded_at", [_naive(utc(2025, 1, 15, 2, 0))])
    harness.add_datasource("wh", lite)
    harness.freeze(utc(2025, 1, 15, 15, 0))
    assert harness.run("sla_breach", {**CONFIG, "timezone": "UTC"}).outcome == "ok"
    ny = harness.run("sla_breach", {**CONFIG, "timezone": "America/New_York"})
    assert ny.outcome == "firing"


def test_table_and_column_default_to_the_datasource_freshness(harness: Harness, lite: str) -> None:
    _make_table(lite, "events", "ts", [_naive(utc(2025, 6, 2, 1, 0))])
    harness.add_datasource("wh", lite, freshness={"table": "events", "column": "ts"})
    harness.freeze(utc(2025, 6, 2, 9, 0))
    config = {"datasource_id": "wh", "expected_load_time": "06:00"}
    result = harness.run("sla_breach", config)
    assert result.outcome == "ok", result.summary
    assert result.details["table"] == "events"

    harness.add_datasource("bare", lite)
    missing = harness.run("sla_breach", {**config, "datasource_id": "bare"})
    assert missing.outcome == "error"
    assert "freshness" in missing.summary


def test_date_column_is_compared_as_a_date(harness: Harness, lite: str) -> None:
    _make_table(lite, "daily", "load_date", [date(2025, 6, 2)], kind="date")
    harness.add_datasource("wh", lite)
    config = {**CONFIG, "table": "daily", "timestamp_column": "load_date"}
    harness.freeze(utc(2025, 6, 2, 9, 0))
    assert harness.run("sla_breach", config).outcome == "ok"
    harness.freeze(utc(2025, 6, 3, 9, 0))
    assert harness.run("sla_breach", config).outcome == "firing"


def test_hostile_identifiers_are_quoted_not_executed(harness: Harness, lite: str) -> None:
    _make_table(lite, HOSTILE_TABLE, HOSTILE_COLUMN, [_naive(utc(2025, 6, 2, 1, 0))])
    harness.add_datasource("wh", lite)
    harness.freeze(utc(2025, 6, 2, 9, 0))
    config = {**CONFIG, "table": HOSTILE_TABLE, "timestamp_column": HOSTILE_COLUMN}
    result = harness.run("sla_breach", config)
    assert result.outcome == "ok", result.summary
    assert result.details["fresh"] is True
    assert "victims" in _tables(lite)

    # A hostile name that names nothing is an error, and still executes nothing.
    other = harness.run("sla_breach", {**config, "table": 'x"; DROP TABLE victims; --'})
    assert other.outcome == "error"
    assert "victims" in _tables(lite)


def test_query_is_one_select_with_quoted_identifiers() -> None:
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    pg = newest_value_query(HOSTILE_TABLE, HOSTILE_COLUMN, postgresql.dialect().identifier_preparer)
    assert pg.count("SELECT") == 1
    assert '"orders""; DROP TABLE victims; --"' in pg
    my = newest_value_query(HOSTILE_TABLE, HOSTILE_COLUMN, mysql.dialect().identifier_preparer)
    assert "`loaded_at``) FROM victims; DELETE FROM victims; --`" in my
    lite = newest_value_query("analytics.orders", "ts", sqlite.dialect().identifier_preparer)
    assert lite == "SELECT max(`ts`) FROM `analytics`.`orders`"


@pytest.mark.postgres
def test_postgres_timestamptz_and_hostile_names(harness: Harness, pg_url: str) -> None:
    schema = pg_url.rsplit("%3D", 1)[1]
    fresh_at = utc(2024, 3, 10, 5, 30)  # 01:30 EST on the spring-forward day
    _make_table(pg_url, HOSTILE_TABLE, HOSTILE_COLUMN, [fresh_at], kind="aware", schema=schema)
    harness.add_datasource("wh", pg_url)
    config = {
        **CONFIG,
        "table": f"{schema}.{HOSTILE_TABLE}",
        "timestamp_column": HOSTILE_COLUMN,
        "timezone": "America/New_York",
        "tolerance_minutes": 0,
    }
    harness.freeze(utc(2024, 3, 10, 10, 30))
    result = harness.run("sla_breach", config)
    assert result.outcome == "ok", result.summary
    harness.freeze(utc(2024, 3, 11, 10, 30))
    assert harness.run("sla_breach", config).outcome == "firing"
    assert "victims" in _tables(pg_url)


@pytest.mark.mariadb
def test_mariadb_datetime_column(harness: Harness, mariadb_database: str) -> None:
    _make_table(mariadb_database, "orders", "loaded_at", [_naive(utc(2025, 6, 2, 1, 0))])
    harness.add_datasource("wh", mariadb_database)
    harness.freeze(utc(2025, 6, 2, 9, 0))
    assert harness.run("sla_breach", CONFIG).outcome == "ok"
    harness.freeze(utc(2025, 6, 3, 9, 0))
    late = harness.run("sla_breach", CONFIG)
    assert late.outcome == "firing"
    assert "2025-06-02T01:00:00" in late.summary
