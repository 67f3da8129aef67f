"""freshness: warn_after / error_after on SQLite, PostgreSQL (Tokyo session) and MariaDB (+09:00
server default), a filter, a query, naive columns in a zone, empty tables, hostile names, and
bad configurations refused with exit 2."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from datamantri_alerts.checks.freshness import FreshnessConfig, format_age, newest_loaded_at_sql
from tests.checks.conftest import Harness
from tests.conftest import Cli, utc

NOW = utc(2026, 11, 30, 12, 0)
CONFIG = {
    "datasource_id": "wh",
    "table": "orders",
    "timestamp_column": "loaded_at",
    "warn_after": {"count": 2, "period": "hour"},
    "error_after": {"count": 6, "period": "hour"},
}


def _run_sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _pg_tokyo(pg_url: str) -> str:
    """pg_url (search_path in `options`) with the session TimeZone Asia/Tokyo as well."""
    return pg_url + "%20-cTimeZone%3DAsia/Tokyo"


@pytest.fixture
def lite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        # Sets MariaDB's global time zone (mariadb_server_zone): serial.
        pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.serial]),
    ]
)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(write URL, read URL, table) with `id`, an aware `loaded_at` and a `status` column.

    PostgreSQL is read in an Asia/Tokyo session (timestamptz) and MariaDB on a server whose
    sessions start in +09:00 (TIMESTAMP): neither may change the age.
    """
    table = f"orders_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        write, read, column = url, url, "TEXT"
    elif request.param == "postgres":
        write = request.getfixturevalue("pg_url")
        read, column = _pg_tokyo(write), "timestamptz"
    else:
        read = request.getfixturevalue("mariadb_database")
        request.getfixturevalue("mariadb_server_zone")("+09:00")
        write, column = read + "?init_command=SET+time_zone%3D%27%2B00%3A00%27", "TIMESTAMP NULL"
    _run_sql(
        write,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, loaded_at {column}, status VARCHAR(20))",
    )
    return write, read, table


def _load(url: str, table: str, *rows: tuple[int, str, str]) -> None:
    """Rows of (id, UTC timestamp text `YYYY-MM-DD HH:MM:SS`, status)."""
    values = ", ".join(
        f"({i}, '{stamp}{'' if url.startswith('mysql') else '+00:00'}', '{status}')"
        for i, stamp, status in rows
    )
    _run_sql(url, f"DELETE FROM {table}", f"INSERT INTO {table} VALUES {values}")


def test_ok_warning_critical_on_every_dialect(
    harness: Harness, warehouse: tuple[str, str, str]
) -> None:
    write, read, table = warehouse
    harness.add_datasource("wh", read)
    harness.freeze(NOW)
    config = {**CONFIG, "table": table}

    _load(write, table, (1, "2026-11-30 09:00:00", "ok"), (2, "2026-11-30 10:30:00", "ok"))
    fresh = harness.run("freshness", config, severity="info")
    assert fresh.outcome == "ok", fresh.summary
    assert fresh.summary == f"{table}.loaded_at is 1h 30m old, within warn_after 2h"
    assert fresh.details["newest_value"] == "2026-11-30T10:30:00+00:00"
    assert fresh.details["status"] == "pass"

    _load(write, table, (1, "2026-11-30 07:00:00", "ok"))
    warn = harness.run("freshness", config, severity="info")
    assert (warn.outcome, warn.severity) == ("firing", "warning"), warn.summary
    assert warn.summary == f"{table}.loaded_at is 5h 0m old, past warn_after 2h"
    assert warn.details["threshold_crossed"] == "warn_after"
    assert warn.details["age_seconds"] == 5 * 3600

    _load(write, table, (1, "2026-11-30 04:48:00", "ok"))
    error = harness.run("freshness", config, severity="info")
    assert (error.outcome, error.severity) == ("firing", "critical"), error.summary
    assert error.summary == f"{table}.loaded_at is 7h 12m old, past error_after 6h"
    assert error.details["status"] == "error"
    assert error.details["newest_value"] == "2026-11-30T04:48:00+00:00"


def test_the_issue_example_summary(harness: Harness, lite: str) -> None:
    _run_sql(lite, "CREATE TABLE orders (loaded_at TEXT)")
    _run_sql(lite, "INSERT INTO orders VALUES ('2026-11-30 04:48:00')")
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    result = harness.run("freshness", {**CONFIG, "warn_after": None})
    assert result.summary == "orders.loaded_at is 7h 12m old, past error_after 6h"
    assert result.severity == "critical"


def test_a_threshold_is_crossed_only_when_the_age_is_greater(harness: Harness, lite: str) -> None:
    """dbt's rule: `age > threshold`; exactly 2h old is still within warn_after 2h."""
    _run_sql(
        lite,
        "CREATE TABLE orders (loaded_at TEXT)",
        "INSERT INTO orders VALUES ('2026-11-30 10:00:00')",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    assert harness.run("freshness", CONFIG).outcome == "ok"
    harness.freeze(utc(2026, 11, 30, 12, 0, 1))
    assert harness.run("freshness", CONFIG).severity == "warning"
    harness.freeze(utc(2026, 11, 30, 16, 0, 1))
    assert harness.run("freshness", CONFIG).severity == "critical"


def test_only_one_threshold_and_minutes_and_days(harness: Harness, lite: str) -> None:
    _run_sql(
        lite,
        "CREATE TABLE orders (loaded_at TEXT)",
        "INSERT INTO orders VALUES ('2026-11-27 11:00:00')",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    warn_only = {**CONFIG, "error_after": None, "warn_after": {"count": 2, "period": "day"}}
    result = harness.run("freshness", warn_only)
    assert (result.severity, result.summary) == (
        "warning",
        "orders.loaded_at is 3d 1h old, past warn_after 2d",
    )
    error_only = {**CONFIG, "warn_after": None, "error_after": {"count": 90, "period": "minute"}}
    assert harness.run("freshness", error_only).severity == "critical"
    days = {**error_only, "error_after": {"count": 4, "period": "day"}}
    ok = harness.run("freshness", days)
    assert ok.summary == "orders.loaded_at is 3d 1h old, within error_after 4d"


def test_empty_table_fires_at_the_highest_threshold(harness: Harness, lite: str) -> None:
    _run_sql(lite, "CREATE TABLE orders (loaded_at TEXT, status TEXT)")
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    both = harness.run("freshness", CONFIG)
    assert (both.outcome, both.severity) == ("firing", "critical")
    assert both.summary == "orders.loaded_at: no rows, past error_after 6h"
    assert both.details["newest_value"] is None and both.details["age_seconds"] is None
    warn_only = harness.run("freshness", {**CONFIG, "error_after": None})
    assert (warn_only.outcome, warn_only.severity) == ("firing", "warning")

    _run_sql(lite, "INSERT INTO orders VALUES ('2026-11-30 11:00:00', 'deleted')")
    filtered = harness.run("freshness", {**CONFIG, "filter": "status <> 'deleted'"})
    assert filtered.summary == "orders.loaded_at: no rows match the filter, past error_after 6h"


def test_filter_ignores_rows_that_do_not_count(
    harness: Harness, warehouse: tuple[str, str, str]
) -> None:
    write, read, table = warehouse
    harness.add_datasource("wh", read)
    harness.freeze(NOW)
    _load(write, table, (1, "2026-11-30 03:00:00", "ok"), (2, "2026-11-30 11:59:00", "deleted"))
    config = {**CONFIG, "table": table}
    assert harness.run("freshness", config).outcome == "ok"
    filtered = harness.run("freshness", {**config, "filter": "status <> 'deleted'"})
    assert filtered.severity == "critical", filtered.summary
    assert filtered.details["newest_value"] == "2026-11-30T03:00:00+00:00"
    assert filtered.details["filter"] == "status <> 'deleted'"


def test_query_instead_of_a_table_with_colons_as_text(harness: Harness, lite: str) -> None:
    _run_sql(
        lite,
        "CREATE TABLE loads (job TEXT, finished TEXT)",
        "INSERT INTO loads VALUES ('a:b', '2026-11-30 08:00:00'), ('c', '2026-11-30 11:00:00')",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    config = {
        "datasource_id": "wh",
        "query": "select finished from loads where job = 'a:b';",
        "loaded_at_field": "finished",
        "warn_after": {"count": 3, "period": "hour"},
    }
    result = harness.run("freshness", config)
    assert result.summary == "query.finished is 4h 0m old, past warn_after 3h", result.summary


def test_naive_column_is_read_in_timestamp_timezone(harness: Harness, lite: str) -> None:
    """A loader on Tokyo time writes 18:00 local = 09:00 UTC: 3h old, not in the future."""
    _run_sql(
        lite,
        "CREATE TABLE orders (loaded_at TEXT)",
        "INSERT INTO orders VALUES ('2026-11-30 18:00:00')",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    as_utc = harness.run("freshness", CONFIG)
    assert as_utc.outcome == "ok"
    assert (
        as_utc.summary
        == "orders.loaded_at is 6h 0m in the future (clock skew?), within warn_after 2h"
    )
    tokyo = harness.run("freshness", {**CONFIG, "timestamp_timezone": "Asia/Tokyo"})
    assert tokyo.severity == "warning", tokyo.summary
    assert tokyo.details["newest_value"] == "2026-11-30T09:00:00+00:00"


@pytest.mark.postgres
def test_postgres_naive_timestamp_in_a_tokyo_session_and_quoted_names(
    harness: Harness, pg_url: str
) -> None:
    """A `timestamp` column means timestamp_timezone, whatever the session zone; a schema and a
    table whose names need quoting are named exactly, as dbt's relation names are."""
    _run_sql(
        pg_url,
        'CREATE SCHEMA "Raw Shop"',
        'CREATE TABLE "Raw Shop"."Order Lines" ("Loaded At" timestamp)',
        """INSERT INTO "Raw Shop"."Order Lines" VALUES ('2026-11-30 18:00:00')""",
    )
    harness.add_datasource("wh", _pg_tokyo(pg_url))
    harness.freeze(NOW)
    config = {
        **CONFIG,
        "schema": "Raw Shop",
        "table": "Order Lines",
        "timestamp_column": "Loaded At",
        "timestamp_timezone": "Asia/Tokyo",
    }
    result = harness.run("freshness", config)
    assert result.severity == "warning", result.summary
    assert result.details["newest_value"] == "2026-11-30T09:00:00+00:00"
    assert result.summary == "Order Lines.Loaded At is 3h 0m old, past warn_after 2h"


@pytest.mark.mariadb
def test_mariadb_datetime_in_a_zone_on_a_plus_nine_server(
    harness: Harness, mariadb_database: str, mariadb_server_zone: Callable[[str], None]
) -> None:
    mariadb_server_zone("+09:00")
    table = f"naive_{uuid.uuid4().hex[:8]}"
    _run_sql(
        mariadb_database,
        f"CREATE TABLE {table} (loaded_at DATETIME NULL)",
        f"INSERT INTO {table} VALUES ('2026-11-30 18:00:00')",
    )
    harness.add_datasource("wh", mariadb_database)
    harness.freeze(NOW)
    tokyo = harness.run("freshness", {**CONFIG, "table": table, "timestamp_timezone": "Asia/Tokyo"})
    assert tokyo.severity == "warning", tokyo.summary
    assert tokyo.details["newest_value"] == "2026-11-30T09:00:00+00:00"


def test_hostile_names_are_identifiers_and_nothing_is_changed(harness: Harness, lite: str) -> None:
    table = 'orders"; DROP TABLE victims; --'
    column = "loaded_at`) FROM victims; DELETE FROM victims; --"
    _run_sql(
        lite,
        f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" ("{column}" TEXT)',
        "CREATE TABLE victims (id INTEGER)",
        "INSERT INTO victims VALUES (1)",
    )
    harness.add_datasource("wh", lite)
    harness.freeze(NOW)
    result = harness.run("freshness", {**CONFIG, "table": table, "timestamp_column": column})
    assert result.outcome == "firing", result.summary  # empty table, read as such
    writing = harness.run("freshness", {**CONFIG, "filter": "1 = 1; DELETE FROM victims"})
    assert writing.outcome == "error"
    engine = create_engine(lite)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM victims")).scalar() == 1
    engine.dispose()


def test_the_statement_is_one_bounded_aggregate() -> None:
    from sqlalchemy.dialects import mysql, postgresql

    pg = postgresql.psycopg.dialect().identifier_preparer
    my = mysql.pymysql.dialect().identifier_preparer
    config = FreshnessConfig.model_validate({**CONFIG, "filter": "status LIKE 'x:%'"})
    assert newest_loaded_at_sql(config, pg) == (
        "SELECT max(loaded_at) FROM orders WHERE (status LIKE 'x:%')"
    )
    hostile = FreshnessConfig.model_validate(
        {**CONFIG, "table": 'Raw.or"ders', "timestamp_column": "load`ed at"}
    )
    assert newest_loaded_at_sql(hostile, pg) == 'SELECT max("load`ed at") FROM "Raw"."or""ders"'
    assert newest_loaded_at_sql(hostile, my) == 'SELECT max(`load``ed at`) FROM `Raw`.`or"ders`'
    from_query = FreshnessConfig.model_validate(
        {**CONFIG, "table": None, "query": "select ts as loaded_at from a union select ts from b"}
    )
    assert newest_loaded_at_sql(from_query, pg) == (
        "SELECT max(loads.loaded_at) FROM (select ts as loaded_at from a union select ts from b)"
        " AS loads"
    )


def test_a_group_statement_reads_each_table_as_its_own_statement_does() -> None:
    """`newest_values_sql` writes each table's subquery itself (quoting looked up once per
    statement): the text of `newest_value_sql` for that table, on every dialect."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from datamantri_alerts.checks.newest import newest_value_sql, newest_values_sql

    tables: list[tuple[str, str, str | None]] = [
        ("loaded_at", "orders", None),
        ("LoadedAt", "Orders", "Raw"),
        ("load`ed at", 'or"ders', 'we"ird'),
        ("select", "from", ""),
        ("ts", "t_00001", "public"),
        ("a b", "x.y", None),
    ]
    for dialect in (postgresql.psycopg.dialect(), mysql.pymysql.dialect(), sqlite.dialect()):
        identifiers = dialect.identifier_preparer
        alone = [
            f"({newest_value_sql(identifiers, column, table=table, schema=schema)}) AS n{i}"
            for i, (column, table, schema) in enumerate(tables)
        ]
        assert newest_values_sql(identifiers, tables) == "SELECT " + ", ".join(alone)
        assert newest_values_sql(identifiers, tables[:1]) == "SELECT " + alone[0]
    with pytest.raises(ValueError, match="at least one table"):
        newest_values_sql(sqlite.dialect().identifier_preparer, [])


def test_a_mistyped_column_on_sqlite_is_an_error_not_a_string(
    harness: Harness, tmp_path: Path
) -> None:
    """SQLite reads a double-quoted name that matches no column as a string literal; the
    column is backticked, so `Loaded At` (no such column) fails instead of being read as the
    text 'Loaded At', and a date-like name cannot make a stale table look fresh."""
    lite = f"sqlite:///{tmp_path / 'w.db'}"
    engine = create_engine(lite)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (loaded_at TEXT)"))
        conn.execute(text("INSERT INTO orders VALUES ('2020-01-01 00:00:00')"))
    engine.dispose()
    harness.add_datasource("lite", lite)
    for column in ("Loaded At", "2999-01-01 00:00:00"):
        result = harness.run(
            "freshness",
            {
                "datasource_id": "lite",
                "table": "orders",
                "timestamp_column": column,
                "warn_after": "1h",
            },
        )
        assert result.outcome == "error", (column, result.summary)
        assert "no such column" in result.summary, result.summary


def test_short_thresholds_on_the_command_line_are_stored_as_mappings(cli: Cli) -> None:
    assert cli("datasources", "add", "wh", "--name", "W", "--url", "sqlite:///w.db").exit_code == 0
    created = cli(
        "create",
        "--name",
        "stale orders",
        "--type",
        "freshness",
        *("--config", "datasource_id=wh", "--config", "schema=raw", "--config", "table=orders"),
        *("--config", "loaded_at_field=ts", "--config", "warn_after=6h"),
        *("--config", 'error_after={"count": 2, "period": "day"}'),
    )
    assert created.exit_code == 0, created.output
    shown = cli("show", "stale orders", "--json").json()
    assert shown["condition_config"] == {
        "datasource_id": "wh",
        "schema": "raw",
        "table": "orders",
        "timestamp_column": "ts",
        "warn_after": {"count": 6, "period": "hour"},
        "error_after": {"count": 2, "period": "day"},
    }
    assert shown["severity"] == "warning"
    bad = cli("edit", "stale orders", "--config", "warn_after=6w")
    assert bad.exit_code == 2
    assert "condition_config.warn_after: '6w' is not a threshold" in bad.stderr


def test_format_age() -> None:
    from datetime import timedelta

    assert format_age(timedelta(seconds=45)) == "45s"
    assert format_age(timedelta(minutes=12, seconds=59)) == "12m"
    assert format_age(timedelta(hours=7, minutes=12)) == "7h 12m"
    assert format_age(timedelta(days=3, hours=4, minutes=5)) == "3d 4h"


@pytest.mark.parametrize(
    ("config", "field", "problem"),
    [
        (
            {**CONFIG, "warn_after": None, "error_after": None},
            "condition_config",
            "warn_after or error_after",
        ),
        (
            {**CONFIG, "warn_after": {"count": 2, "period": "week"}},
            "condition_config.warn_after.period",
            "'minute', 'hour' or 'day'",
        ),
        (
            {**CONFIG, "error_after": {"count": 0, "period": "hour"}},
            "condition_config.error_after.count",
            "greater than or equal to 1",
        ),
        ({**CONFIG, "table": None}, "condition_config", "needs table (or query)"),
        ({**CONFIG, "query": "select 1"}, "condition_config", "table or query, not both"),
        (
            {**CONFIG, "timestamp_timezone": "Mars/Olympus"},
            "condition_config.timestamp_timezone",
            "unknown time zone",
        ),
        (
            {k: v for k, v in CONFIG.items() if k != "timestamp_column"},
            "condition_config.timestamp_column",
            "required field is missing",
        ),
        (
            {**CONFIG, "warn_after": {"count": 2}},
            "condition_config.warn_after.period",
            "required field is missing",
        ),
        ({**CONFIG, "tabel": "orders"}, "condition_config.tabel", "unknown field"),
        (
            {**CONFIG, "query": None, "table": None, "schema": "raw"},
            "condition_config",
            "needs table (or query)",
        ),
        (
            {**CONFIG, "timeout_seconds": 0},
            "condition_config.timeout_seconds",
            "greater than 0",
        ),
    ],
)
def test_bad_config_is_refused_with_exit_2_naming_the_field(
    cli: Cli, tmp_path: Path, config: dict, field: str, problem: str
) -> None:
    import json

    config = {k: v for k, v in config.items() if v is not None}
    document = {"name": "stale orders", "condition_type": "freshness", "condition_config": config}
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(document))
    result = cli("create", "--from-file", str(path))
    assert result.exit_code == 2, result.output
    assert f"{field}: " in result.stderr, result.stderr
    assert problem in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert cli("list", "--json").json() == []
