"""Timestamps read as UTC instants whatever the session or server time zone, on every dialect.

The session zones are set as a server default would set them (MariaDB `SET GLOBAL time_zone`,
PostgreSQL `options=-c TimeZone=...` in the URL): the results must be the same whether or not
the product also sets its check sessions to UTC (it does).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from datamantri_alerts.checks.values import parse_timestamp
from tests.checks.conftest import Harness
from tests.conftest import Cli, utc

#: Issue 11 section 3: 09:00 in Tokyo, evaluated at 09:30 JST on December 1.
NOW = utc(2026, 12, 1, 0, 30)
TOKYO_SLA = {
    "datasource_id": "wh",
    "expected_load_time": "09:00",
    "timezone": "Asia/Tokyo",
    "table": "orders",
    "timestamp_column": "loaded_at",
}
LOADED_UTC = "2026-11-30T14:00:00+00:00"  # 23:00 in Tokyo on November 30: yesterday there
EPOCH_LOADED = 1796047200  # the same instant as Unix seconds


def _run_sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _fetch_one(url: str, statement: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement)).scalar()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- MariaDB


@pytest.fixture
def mariadb_tokyo(mariadb_database: str, mariadb_server_zone: Callable[[str], None]) -> str:
    """The scratch database's URL on a server whose sessions start in +09:00 by default."""
    mariadb_server_zone("+09:00")
    return mariadb_database


@pytest.mark.mariadb
def test_mariadb_timestamp_in_a_plus_nine_session_is_read_as_its_utc_instant(
    harness: Harness,
    mariadb_database: str,
    mariadb_tokyo: str,
    mariadb_server_zone: Callable[[str], None],
) -> None:
    _run_sql(
        mariadb_database,
        "DROP TABLE IF EXISTS orders",
        "CREATE TABLE orders (id INT PRIMARY KEY, loaded_at TIMESTAMP NULL)",
        f"INSERT INTO orders VALUES (1, FROM_UNIXTIME({EPOCH_LOADED}))",
    )
    # The scenario: that session renders the stored instant as 23:00, without an offset.
    assert _fetch_one(mariadb_tokyo, "SELECT @@session.time_zone") == "+09:00"
    assert _fetch_one(mariadb_tokyo, "SELECT max(loaded_at) FROM orders") == datetime(
        2026, 11, 30, 23, 0
    )

    harness.add_datasource("wh", mariadb_tokyo)
    harness.freeze(NOW)
    result = harness.run("sla_breach", TOKYO_SLA)
    assert result.outcome == "firing", result.summary
    assert result.details["newest_value"] == LOADED_UTC
    assert f"newest loaded_at {LOADED_UTC}" in result.summary
    assert result.details["start_of_day"] == "2026-12-01T00:00:00+09:00"

    # The same answer in a UTC session (what the product's own session setup gives) and in
    # one west of UTC.
    for zone in ("+00:00", "-05:00"):
        mariadb_server_zone(zone)
        other = harness.run("sla_breach", TOKYO_SLA)
        assert (other.outcome, other.details["newest_value"]) == ("firing", LOADED_UTC), zone
    mariadb_server_zone("+09:00")

    # A load at 01:00 Tokyo time on December 1 (16:00 UTC) is today's there: ok.
    later = EPOCH_LOADED + 7200
    _run_sql(mariadb_database, f"UPDATE orders SET loaded_at = FROM_UNIXTIME({later})")
    fresh = harness.run("sla_breach", TOKYO_SLA)
    assert fresh.outcome == "ok", fresh.summary
    assert fresh.details["newest_value"] == "2026-11-30T16:00:00+00:00"


@pytest.mark.mariadb
def test_mariadb_datetime_is_naive_and_read_in_timestamp_timezone(
    harness: Harness, mariadb_database: str, mariadb_tokyo: str
) -> None:
    """A DATETIME is not converted by the session zone: its zone is the configured one."""
    _run_sql(
        mariadb_database,
        "DROP TABLE IF EXISTS orders",
        "CREATE TABLE orders (id INT PRIMARY KEY, loaded_at DATETIME NULL)",
        "INSERT INTO orders VALUES (1, '2026-11-30 14:00:00')",
    )
    harness.add_datasource("wh", mariadb_tokyo)
    harness.freeze(NOW)
    as_utc = harness.run("sla_breach", TOKYO_SLA)
    assert as_utc.outcome == "firing", as_utc.summary
    assert as_utc.details["newest_value"] == LOADED_UTC
    assert as_utc.details["timestamp_timezone"] == "UTC"

    # A loader running on Tokyo time writes wall-clock Tokyo: 01:00 on December 1 is today.
    _run_sql(mariadb_database, "UPDATE orders SET loaded_at = '2026-12-01 01:00:00'")
    tokyo = harness.run("sla_breach", {**TOKYO_SLA, "timestamp_timezone": "Asia/Tokyo"})
    assert tokyo.outcome == "ok", tokyo.summary
    assert tokyo.details["newest_value"] == "2026-11-30T16:00:00+00:00"


# --------------------------------------------------------------------------- PostgreSQL


def _pg_tokyo(pg_url: str) -> str:
    """pg_url (which sets search_path in `options`) with the session TimeZone Asia/Tokyo too."""
    return pg_url + "%20-cTimeZone%3DAsia/Tokyo"


@pytest.mark.postgres
def test_postgres_timestamptz_and_timestamp_in_a_tokyo_session(
    harness: Harness, pg_url: str
) -> None:
    tokyo = _pg_tokyo(pg_url)
    _run_sql(
        pg_url,
        "CREATE TABLE orders (id int PRIMARY KEY, loaded_at timestamptz)",
        "CREATE TABLE naive_orders (id int PRIMARY KEY, loaded_at timestamp)",
        f"INSERT INTO orders VALUES (1, to_timestamp({EPOCH_LOADED}))",
        "INSERT INTO naive_orders VALUES (1, '2026-11-30 14:00:00')",
    )
    assert _fetch_one(tokyo, "SHOW TimeZone") == "Asia/Tokyo"
    rendered = _fetch_one(tokyo, "SELECT max(loaded_at) FROM orders")
    assert isinstance(rendered, datetime) and rendered.utcoffset() is not None
    assert rendered.isoformat() == "2026-11-30T23:00:00+09:00"

    harness.add_datasource("wh", tokyo)
    harness.freeze(NOW)
    aware = harness.run("sla_breach", TOKYO_SLA)
    assert aware.outcome == "firing", aware.summary
    assert aware.details["newest_value"] == LOADED_UTC

    naive = harness.run("sla_breach", {**TOKYO_SLA, "table": "naive_orders"})
    assert naive.outcome == "firing", naive.summary
    assert naive.details["newest_value"] == LOADED_UTC

    # The naive column's zone is configuration, not the session's: 01:00 in Tokyo is today.
    _run_sql(pg_url, "UPDATE naive_orders SET loaded_at = '2026-12-01 01:00:00'")
    in_tokyo = harness.run(
        "sla_breach", {**TOKYO_SLA, "table": "naive_orders", "timestamp_timezone": "Asia/Tokyo"}
    )
    assert in_tokyo.outcome == "ok", in_tokyo.summary
    assert in_tokyo.details["newest_value"] == "2026-11-30T16:00:00+00:00"
    # ...and read as UTC (the default) it is tomorrow's 01:00: also from today, so ok.
    assert harness.run("sla_breach", {**TOKYO_SLA, "table": "naive_orders"}).outcome == "ok"


# --------------------------------------------------------------------------- SQLite


@pytest.fixture
def lite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


NY_SLA = {
    "datasource_id": "wh",
    "expected_load_time": "09:00",
    "table": "orders",
    "timestamp_column": "loaded_at",
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        # Sets MariaDB's global time zone (mariadb_server_zone): serial.
        pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.serial]),
    ]
)
def naive_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(write URL, read URL) of a database with a naive `orders.loaded_at`; PostgreSQL and
    MariaDB are read in Tokyo sessions, which must not change what a naive value means."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        write, read, column = url, url, "TIMESTAMP"
    elif request.param == "postgres":
        write = request.getfixturevalue("pg_url")
        read, column = _pg_tokyo(write), "timestamp"
    else:
        write = request.getfixturevalue("mariadb_database")
        request.getfixturevalue("mariadb_server_zone")("+09:00")
        read, column = write + "?init_command=SET+time_zone%3D%27%2B00%3A00%27", "DATETIME NULL"
        write, read = read, write  # written in a UTC session, read in the server's +09:00
    _run_sql(
        write,
        "DROP TABLE IF EXISTS orders",
        f"CREATE TABLE orders (id INTEGER PRIMARY KEY, loaded_at {column})",
        "INSERT INTO orders VALUES (1, '2026-11-30 21:00:00')",
    )
    return write, read


def test_naive_column_in_new_york(harness: Harness, naive_warehouse: tuple[str, str]) -> None:
    """21:00 on Nov 30 in New York is 02:00 UTC on Dec 1: fresh for a UTC day, only if read
    in the right zone."""
    harness.add_datasource("wh", naive_warehouse[1])
    harness.freeze(utc(2026, 12, 1, 10, 0))
    as_utc = harness.run("sla_breach", NY_SLA)
    assert as_utc.outcome == "firing", as_utc.summary
    assert as_utc.details["newest_value"] == "2026-11-30T21:00:00+00:00"

    new_york = harness.run("sla_breach", {**NY_SLA, "timestamp_timezone": "America/New_York"})
    assert new_york.outcome == "ok", new_york.summary
    assert new_york.details["newest_value"] == "2026-12-01T02:00:00+00:00"
    assert new_york.details["timestamp_timezone"] == "America/New_York"


def test_text_with_offset_and_epoch_numbers_ignore_timestamp_timezone(
    harness: Harness, lite: str
) -> None:
    _run_sql(
        lite,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, loaded_at TEXT)",
        "INSERT INTO orders VALUES (1, '2026-11-30T23:00:00+09:00')",
        "CREATE TABLE epochs (id INTEGER PRIMARY KEY, loaded_at INTEGER)",
        f"INSERT INTO epochs VALUES (1, {EPOCH_LOADED})",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    for table in ("orders", "epochs"):
        for zone in ("UTC", "America/New_York"):
            config = {**TOKYO_SLA, "table": table, "timestamp_timezone": zone}
            result = harness.run("sla_breach", config)
            assert result.outcome == "firing", (table, zone, result.summary)
            assert result.details["newest_value"] == LOADED_UTC, (table, zone)


def test_freshness_timestamp_timezone_is_the_default_for_its_column(
    harness: Harness, lite: str
) -> None:
    _run_sql(
        lite,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, loaded_at TIMESTAMP)",
        "INSERT INTO orders VALUES (1, '2026-11-30 21:00:00')",
    )
    harness.add_datasource(
        "wh",
        lite,
        freshness={
            "table": "orders",
            "column": "loaded_at",
            "timestamp_timezone": "America/New_York",
        },
    )
    harness.freeze(utc(2026, 12, 1, 10, 0))
    config = {"datasource_id": "wh", "expected_load_time": "09:00"}
    result = harness.run("sla_breach", config)
    assert result.outcome == "ok", result.summary
    assert result.details["newest_value"] == "2026-12-01T02:00:00+00:00"
    # The alert's own setting wins over the data source's.
    own = harness.run("sla_breach", {**config, "timestamp_timezone": "UTC"})
    assert own.outcome == "firing", own.summary


def test_text_that_is_not_a_timestamp_is_an_error(harness: Harness, lite: str) -> None:
    _run_sql(
        lite,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, loaded_at TEXT)",
        "INSERT INTO orders VALUES (1, 'yesterday-ish')",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    result = harness.run("sla_breach", TOKYO_SLA)
    assert result.outcome == "error"
    assert "not a timestamp" in result.summary


# --------------------------------------------------------------------------- the one coercion


def test_parse_timestamp_rules() -> None:
    new_york = ZoneInfo("America/New_York")
    assert parse_timestamp(datetime(2026, 11, 30, 9, 0), new_york) == utc(2026, 11, 30, 14, 0)
    tokyo_rendering = datetime(2026, 11, 30, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert parse_timestamp(tokyo_rendering, new_york) == utc(2026, 11, 30, 14, 0)
    assert parse_timestamp("2026-11-30 09:00:00", new_york) == utc(2026, 11, 30, 14, 0)
    assert parse_timestamp("2026-11-30T14:00:00Z", new_york) == utc(2026, 11, 30, 14, 0)
    assert parse_timestamp(str(EPOCH_LOADED)) == utc(2026, 11, 30, 14, 0)
    assert parse_timestamp(f"{EPOCH_LOADED}.5") == datetime(2026, 11, 30, 14, 0, 0, 500000, UTC)
    assert parse_timestamp(float(EPOCH_LOADED), new_york) == utc(2026, 11, 30, 14, 0)
    # 01:30 happens twice on 2026-11-01 in New York: the first one (EDT, -04:00) is taken.
    assert parse_timestamp(datetime(2026, 11, 1, 1, 30), new_york) == utc(2026, 11, 1, 5, 30)
    assert parse_timestamp("  ") is None
    for bad in ("soon", float("nan"), 1e30, object()):
        with pytest.raises(ValueError, match="not a timestamp"):
            parse_timestamp(bad)


# --------------------------------------------------------------------------- validation


def test_unknown_timestamp_timezone_is_refused_with_its_field(cli: Cli, tmp_path: Path) -> None:
    added = cli("datasources", "add", "wh", "--name", "W", "--url", f"sqlite:///{tmp_path}/w.db")
    assert added.exit_code == 0, added.output
    bad = cli(
        "create",
        "--name",
        "Tokyo SLA",
        "--type",
        "sla_breach",
        "--config",
        "datasource_id=wh",
        "--config",
        "expected_load_time=09:00",
        "--config",
        "timestamp_timezone=Mars/Olympus",
    )
    assert bad.exit_code == 2, bad.output
    assert "timestamp_timezone" in bad.output and "Mars/Olympus" in bad.output
    assert "Traceback" not in bad.output
    assert cli("list", "--json").json() == []

    document = tmp_path / "alerts.yaml"
    for item in (
        "datasources: [{id: x, name: X, url: 'sqlite:///x.db', "
        "freshness: {table: t, column: c, timestamp_timezone: Nowhere/Town}}]",
        "datasources: [{id: x, name: X, url: 'sqlite:///x.db'}]\n"
        "pipelines: [{id: p, name: P, runs: {source: sql, datasource_id: x, query: 'select 1', "
        "timestamp_timezone: Nowhere/Town}}]",
    ):
        document.write_text(item + "\n")
        refused = cli("sync", str(document))
        assert refused.exit_code == 2, refused.output
        assert "timestamp_timezone" in refused.output and "Nowhere/Town" in refused.output
        listed = cli("datasources", "list", "--json").json()
        assert [item["id"] for item in listed] == ["wh"]  # nothing written


def test_cli_takes_the_zone_of_naive_columns(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    added = cli(
        "datasources", "add", "wh", "--name", "W", "--url", url,
        "--freshness-table", "orders", "--freshness-column", "loaded_at",
        "--freshness-timezone", "Asia/Tokyo",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = cli("datasources", "list", "--json").json()
    assert listed[0]["freshness"] == {
        "table": "orders",
        "column": "loaded_at",
        "timestamp_timezone": "Asia/Tokyo",
    }
    query = "select status, started_at, finished_at from runs"
    job = ["pipelines", "add", "af", "--name", "AF", "--runs-source", "sql", "--datasource", "wh"]
    bad = cli(*job, "--query", query, "--timestamp-timezone", "Mars/Olympus")
    assert bad.exit_code == 2, bad.output
    assert "timestamp_timezone" in bad.output and "Traceback" not in bad.output
    good = cli(*job, "--query", query, "--timestamp-timezone", "America/New_York")
    assert good.exit_code == 0, good.output
    runs = cli("pipelines", "list", "--json").json()[0]["runs"]
    assert runs["timestamp_timezone"] == "America/New_York"
