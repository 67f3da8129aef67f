"""Checks open data sources read-only, one statement per execute, in UTC, and stream results.

Every example runs through the real runner against a real SQLite file, the PostgreSQL server
and the MariaDB server on 127.0.0.1; the data source is inspected afterwards with a separate
(read-write) engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.checks import servers
from tests.checks.conftest import Harness
from tests.conftest import MARIADB_URL, require_service

DIALECTS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

READ_ONLY = "the data source is opened read-only"
ONE_STATEMENT = "a check runs exactly one statement"
ONE_QUERY = "a check runs one read-only query that returns rows"


@pytest.fixture(params=DIALECTS)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh data source per test holding table `u` with one row."""
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
        yield from _seeded(url)
    elif kind == "postgres":
        yield from _seeded(request.getfixturevalue("pg_url"))
    else:
        require_service("MariaDB", "127.0.0.1", 3306)
        with servers.mariadb_scratch_database(MARIADB_URL) as url:
            yield from _seeded(url)


def _seeded(url: str) -> Iterator[str]:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (id INTEGER)"))
        conn.execute(text("INSERT INTO u VALUES (1)"))
    engine.dispose()
    yield url


def _state(url: str) -> tuple[set[str], int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            count = conn.execute(text("SELECT count(*) FROM u")).scalar() if "u" in tables else -1
    finally:
        engine.dispose()
    return tables, int(count or 0)


def _sql(harness: Harness, query: str, **extra: object) -> object:
    return harness.run("sql", {"datasource_id": "wh", "query": query, **extra})


def test_drop_table_is_refused_and_the_table_stays(harness: Harness, warehouse: str) -> None:
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, "drop table u")
    assert result.outcome == "error"
    # PostgreSQL can only declare a cursor for a query; the others refuse the write itself.
    # Not a query: refused before it is sent, on every dialect.
    assert ONE_QUERY in result.summary, result.summary
    assert "nothing was sent" in result.summary, result.summary
    assert _state(warehouse) == ({"u"}, 1)


@pytest.mark.parametrize(
    "query", ["select 1; drop table u", "select 1 ; delete from u", "SELECT 1;DROP TABLE u;"]
)
def test_a_second_statement_is_refused(harness: Harness, warehouse: str, query: str) -> None:
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, query)
    assert result.outcome == "error"
    assert ONE_STATEMENT in result.summary, result.summary
    assert _state(warehouse) == ({"u"}, 1)


@pytest.mark.parametrize(
    "query",
    ["insert into u values (2)", "update u set id = 7", "delete from u", "create table v (x int)"],
)
def test_writes_are_refused_with_the_reason(harness: Harness, warehouse: str, query: str) -> None:
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, query)
    assert result.outcome == "error"
    assert READ_ONLY in result.summary or ONE_QUERY in result.summary, result.summary
    assert _state(warehouse) == ({"u"}, 1)


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "template",
    [
        "KILL {victim}",
        "kill connection {victim}",
        # MySQL runs executable comments: this is `KILL (SELECT id)`, not a parenthesized query.
        "/*!KILL*/ (SELECT {victim})",
        "/*M!KILL*/ (SELECT {victim})",
    ],
)
def test_a_mysql_statement_that_is_no_query_never_runs(
    harness: Harness, mariadb_database: str, template: str
) -> None:
    """A MySQL session runs KILL (or SET GLOBAL, DO, CALL) and only then shows no result set:
    the check refuses it before sending it, so another session survives."""
    import pymysql

    victim = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
    try:
        harness.add_datasource("wh", mariadb_database)
        result = _sql(harness, template.format(victim=victim.thread_id()))
        assert result.outcome == "error"
        assert ONE_QUERY in result.summary and "nothing was sent" in result.summary
        victim.ping(reconnect=False)  # raises when the check killed it
    finally:
        victim.close()


@pytest.mark.parametrize(
    ("query", "keyword"),
    [
        ("KILL 1", "KILL"),
        ("/* c */ do sleep(0)", "DO"),
        ("call p()", "CALL"),
        ("set @x = 1", "SET"),
        ("handler u open", "HANDLER"),
        ("/*!DO GET_LOCK('x', 0), */ (SELECT 1)", "something else"),
    ],
)
def test_a_statement_that_is_no_query_is_refused_on_every_dialect(
    harness: Harness, warehouse: str, query: str, keyword: str
) -> None:
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, query)
    assert result.outcome == "error"
    assert f"{ONE_QUERY} (SELECT, WITH, VALUES or TABLE) (it starts with {keyword}" in (
        result.summary
    ), result.summary
    assert _state(warehouse) == ({"u"}, 1)


@pytest.mark.parametrize(
    "query",
    ["/* note */ select id from u", "-- note\nselect id from u", "with x as (select 1) select 1"],
)
def test_queries_after_comments_and_parentheses_still_run(
    harness: Harness, warehouse: str, query: str
) -> None:
    harness.add_datasource("wh", warehouse)
    assert _sql(harness, query).outcome == "firing"


def test_reads_still_work_and_fire(harness: Harness, warehouse: str) -> None:
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, "select id from u")
    assert result.outcome == "firing", result.summary
    assert result.details["rows"] == [{"id": 1}]


def test_a_statement_without_rows_is_refused(harness: Harness, warehouse: str) -> None:
    """MySQL runs COMMIT or SET without a result set: no check could mean that."""
    harness.add_datasource("wh", warehouse)
    for query in ("commit", "set session transaction read write"):
        result = _sql(harness, query)
        assert result.outcome == "error", (query, result.summary)
    # The session setting did not carry over into a later check.
    assert _sql(harness, "insert into u values (3)").outcome == "error"
    assert _state(warehouse) == ({"u"}, 1)


def test_every_check_path_is_read_only(harness: Harness, warehouse: str) -> None:
    """query_slow's probe and job-runs `sql` go through the same session setup."""
    harness.add_datasource("wh", warehouse)
    harness.add_job(
        "pipeline", "etl", {"source": "sql", "datasource_id": "wh", "query": "delete from u"}
    )
    probe, runs = harness.run_many(
        [
            (
                "query_slow",
                {"datasource_id": "wh", "threshold_seconds": 5, "query": "drop table u"},
            ),
            ("pipeline_failure", {"pipeline_id": "etl"}),
        ]
    )
    assert probe.outcome == "error" and runs.outcome == "error", (probe.summary, runs.summary)
    assert "refused" in probe.summary and "refused" in runs.summary
    assert _state(warehouse) == ({"u"}, 1)


def test_a_refused_sqlite_write_creates_no_file(harness: Harness, tmp_path: Path) -> None:
    """ATTACH and VACUUM INTO would write files even on a read-only connection."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    list(_seeded(url))
    harness.add_datasource("wh", url)
    before = sorted(p.name for p in tmp_path.iterdir())
    for query in (
        f"attach '{tmp_path / 'evil.db'}' as evil",
        f"vacuum into '{tmp_path / 'copy.db'}'",
        "pragma query_only = 0",
        "create temp table t (x)",
        "begin immediate",
        "with x as (select 1) delete from u",  # a query's keyword: the authorizer refuses it
    ):
        result = _sql(harness, query)
        assert result.outcome == "error", (query, result.summary)
        # Refused before it is sent (not a query), or by the authorizer.
        assert READ_ONLY in result.summary or ONE_QUERY in result.summary, result.summary
    after = {p.name for p in tmp_path.iterdir()} - {"w.db-wal", "w.db-shm"}
    assert sorted(after) == before
    assert _state(url) == ({"u"}, 1)


@pytest.mark.postgres
def test_postgres_sequences_cannot_move(harness: Harness, pg_url: str) -> None:
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE s"))
    harness.add_datasource("wh", pg_url)
    for query in ("select nextval('s')", "select setval('s', 100)"):
        result = _sql(harness, query)
        assert result.outcome == "error", result.summary
        assert READ_ONLY in result.summary, result.summary
    with engine.connect() as conn:
        assert conn.execute(text("SELECT last_value, is_called FROM s")).one() == (1, False)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_session_is_utc_and_read_only_even_against_the_url(
    harness: Harness, pg_url: str
) -> None:
    """The URL's own options (search_path, and here contrary settings) come before ours."""
    url = pg_url + "+-c+TimeZone%3DAsia/Kolkata+-c+default_transaction_read_only%3Doff"
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stamps (at TIMESTAMPTZ)"))
        conn.execute(text("INSERT INTO stamps VALUES ('2026-03-01 12:00:00+05:30')"))
    engine.dispose()
    harness.add_datasource("wh", url)
    result = _sql(
        harness,
        "select current_setting('TimeZone') as tz, "
        "current_setting('transaction_read_only') as ro, at, at::text as shown from stamps",
    )
    assert result.outcome == "firing", result.summary
    [row] = result.details["rows"]
    assert (row["tz"], row["ro"]) == ("UTC", "on")
    assert row["shown"] == "2026-03-01 06:30:00+00"
    assert datetime.fromisoformat(row["at"]) == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)


@pytest.mark.mariadb
def test_mariadb_session_is_utc_and_read_only(harness: Harness, mariadb_database: str) -> None:
    engine = create_engine(mariadb_database)
    with engine.begin() as conn:
        conn.execute(text("SET time_zone = '+05:30'"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS stamps_ro (at TIMESTAMP NULL)"))
        conn.execute(text("DELETE FROM stamps_ro"))
        conn.execute(text("INSERT INTO stamps_ro VALUES ('2026-03-01 12:00:00')"))
    engine.dispose()
    harness.add_datasource("wh", mariadb_database)
    result = _sql(
        harness, "select @@session.time_zone as tz, @@session.tx_read_only as ro, at from stamps_ro"
    )
    assert result.outcome == "firing", result.summary
    [row] = result.details["rows"]
    assert (row["tz"], row["ro"]) == ("+00:00", 1)
    # Stored at 12:00 +05:30, read back in UTC.
    assert row["at"] == "2026-03-01T06:30:00"


@pytest.mark.mariadb
def test_mariadb_url_cannot_turn_on_multi_statements(harness: Harness) -> None:
    require_service("MariaDB", "127.0.0.1", 3306)
    with servers.mariadb_scratch_database(MARIADB_URL) as url:
        warehouse = next(_seeded(url))
        _url_settings_are_overridden(harness, warehouse)


def _url_settings_are_overridden(harness: Harness, warehouse: str) -> None:
    harness.add_datasource("multi", warehouse + "?client_flag=65536")
    result = harness.run("sql", {"datasource_id": "multi", "query": "select 1; drop table u"})
    assert result.outcome == "error" and ONE_STATEMENT in result.summary, result.summary
    harness.add_datasource("init", warehouse + "?init_command=drop+table+u")
    result = harness.run("sql", {"datasource_id": "init", "query": "select 1"})
    assert result.outcome == "error" and "init_command" in result.summary, result.summary
    assert _state(warehouse) == ({"u"}, 1)


def test_a_driver_that_cannot_be_made_read_only_is_refused(harness: Harness) -> None:
    harness.add_datasource("other", "oracle+oracledb://scott@127.0.0.1:1/x")
    result = harness.run("sql", {"datasource_id": "other", "query": "select 1 from dual"})
    assert result.outcome == "error"
    assert "cannot be opened read-only" in result.summary, result.summary


# --------------------------------------------------------------------------- bounded memory

#: A million rows, of which any row past the 100th fails when it is computed: a check that
#: fetched more than max_rows + 1 would end in an error instead of firing.
MILLION = {
    "sqlite": (
        "with recursive c(n) as (select 1 union all select n + 1 from c where n < 1000000) "
        "select n, case when n > 100 then abs(-9223372036854775807 - 1) else n end as v from c"
    ),
    "postgresql": (
        "select n, case when n > 100 then 1 / (n - n) else n end as v "
        "from generate_series(1, 1000000) as n"
    ),
    "mysql": (
        "select seq as n, case when seq > 100 then (select 1 union select 2) else seq end as v "
        "from seq_1_to_1000000"
    ),
}


def test_only_max_rows_plus_one_are_fetched(
    harness: Harness, warehouse: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness.add_datasource("wh", warehouse)
    dialect = warehouse.split(":", 1)[0].split("+", 1)[0]
    caplog.set_level(logging.WARNING)
    result = _sql(harness, MILLION[dialect], max_rows=20)
    assert result.outcome == "firing", result.summary
    assert result.summary.endswith("returned 20+ rows")
    assert result.details["truncated"] is True
    assert [row["n"] for row in result.details["rows"]] == list(range(1, 21))
    # Closing the cut-off result (MariaDB: the connection) logs nothing.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # The rows past 100 do fail when read: the query itself is what the check cut off.
    assert _sql(harness, MILLION[dialect], max_rows=200).outcome == "error"


def test_a_probe_reads_to_the_end_and_keeps_nothing(harness: Harness, warehouse: str) -> None:
    """query_slow's probe times the whole query (all rows read, in batches, none kept)."""
    harness.add_datasource("wh", warehouse)
    dialect = warehouse.split(":", 1)[0].split("+", 1)[0]
    result = harness.run(
        "query_slow", {"datasource_id": "wh", "threshold_seconds": 60, "query": MILLION[dialect]}
    )
    assert result.outcome == "error", result.summary  # row 101 was computed and failed
    quick = harness.run(
        "query_slow", {"datasource_id": "wh", "threshold_seconds": 60, "query": "select id from u"}
    )
    assert quick.outcome == "ok", quick.summary


def _session_is_read_only(dbapi: Any) -> bool:
    """Asked on the check's own (driver) connection, before its statement runs."""
    module = type(dbapi).__module__
    cursor = dbapi.cursor()
    try:
        if module.startswith("psycopg"):
            cursor.execute("SHOW transaction_read_only")
            return bool(cursor.fetchone()[0] == "on")
        if module.startswith("pymysql"):
            cursor.execute("SELECT @@session.tx_read_only")
            return bool(cursor.fetchone()[0] == 1)
        try:
            cursor.execute("CREATE TEMP TABLE probe_write (x)")
        except Exception:
            return True
        return False
    finally:
        cursor.close()


def _has_runs_table(dbapi: Any) -> bool:
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT 1 FROM runs WHERE 1 = 0")
        cursor.fetchall()
        return True
    except Exception:
        dbapi.rollback()
        return False
    finally:
        cursor.close()


def test_every_check_type_connects_read_only(harness: Harness, warehouse: str) -> None:
    """datasource_failure's SELECT 1, sla_breach's freshness read, sql, query_slow and job-runs
    `sql`: every connection a check opens on the data source is read-only from its start."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    fresh = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    engine = create_engine(warehouse)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (status VARCHAR(20), started_at VARCHAR(30))"))
        conn.execute(text(f"INSERT INTO runs VALUES ('success', '{fresh}')"))
    engine.dispose()
    harness.add_datasource("wh", warehouse, freshness={"table": "runs", "column": "started_at"})
    harness.add_job(
        "pipeline",
        "etl",
        {
            "source": "sql",
            "datasource_id": "wh",
            "query": "select status, started_at, started_at as finished_at from runs",
        },
    )
    seen: list[bool] = []

    def check_session(dbapi: Any, _record: Any, _proxy: Any) -> None:
        # A connection leaving SQLAlchemy's pool for a check (the run's pool keeps it for
        # the next check; test_pool's session tests show a reused one stays read-only).
        if _has_runs_table(dbapi):
            seen.append(_session_is_read_only(dbapi))

    alerts: list[tuple[str, dict[str, Any]]] = [
        ("datasource_failure", {"datasource_id": "wh"}),
        ("sla_breach", {"datasource_id": "wh", "expected_load_time": "00:00"}),
        ("sql", {"datasource_id": "wh", "query": "select status from runs"}),
        ("query_slow", {"datasource_id": "wh", "threshold_seconds": 5, "query": "select 1"}),
        ("pipeline_failure", {"pipeline_id": "etl"}),
    ]
    event.listen(Pool, "checkout", check_session)
    try:
        results = harness.run_many(alerts, concurrency=1)
    finally:
        event.remove(Pool, "checkout", check_session)
    assert [r.outcome for r in results] == ["ok", "ok", "firing", "ok", "ok"], [
        r.summary for r in results
    ]
    assert seen and all(seen), seen


def test_a_configured_query_runs_as_written(harness: Harness, warehouse: str) -> None:
    """`:name` inside a query is text, not a bind parameter; `%` is not a format marker."""
    harness.add_datasource("wh", warehouse)
    result = _sql(harness, "select ':x' as c, 'a:b: c' as t, '100%' as p from u")
    assert result.outcome == "firing", result.summary
    assert result.details["rows"] == [{"c": ":x", "t": "a:b: c", "p": "100%"}]


@pytest.mark.postgres
def test_a_postgres_check_costs_the_floor_round_trips(
    harness: Harness, pg_url: str, tmp_path: Path
) -> None:
    """BEGIN, DECLARE, the first FETCH and the ROLLBACK sent together in one pipeline (one
    Sync, one wait): a check whose first FETCH holds all it keeps costs one round trip, less
    than a plain `execute` in a transaction (BEGIN, query, ROLLBACK); a psycopg named cursor
    cost six (BEGIN, DECLARE, Describe, FETCH, CLOSE, ROLLBACK).
    Counted in libpq's own protocol trace of every connection the checks open."""
    from psycopg import pq
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    _ = next(_seeded(pg_url))
    harness.add_datasource("wh", pg_url)
    trace = tmp_path / "libpq.trace"
    handle = trace.open("w")

    def traced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.trace(handle.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    event.listen(Pool, "connect", traced)
    try:
        results = harness.run_many(
            [
                ("sql", {"datasource_id": "wh", "query": f"select id, {i} as n from u"})
                for i in range(5)
            ],
            concurrency=1,
        )
    finally:
        event.remove(Pool, "connect", traced)
        handle.close()
    assert [r.outcome for r in results] == ["firing"] * 5, [r.summary for r in results]
    sent = [line.split("\t") for line in trace.read_text().splitlines()]
    sent = [f for f in sent if len(f) > 2 and f[0] == "F"]  # what the client sent
    # The connection's own setup (SQLAlchemy's dialect initialisation) is once per connection.
    first_check = next(i for i, f in enumerate(sent) if f[2] == "Parse" and '"BEGIN"' in f[3])
    checks = sent[first_check:]
    statements = [f[3] for f in checks if f[2] in ("Parse", "Query")]
    waits = [f[2] for f in checks if f[2] in ("Sync", "Query")]
    assert sum("DECLARE" in s for s in statements) == 5, statements
    assert sum("FETCH FORWARD 21" in s for s in statements) == 5, statements  # max_rows + 1
    assert not [s for s in statements if "CLOSE" in s], statements
    # BEGIN, DECLARE, FETCH and the ROLLBACK in one pipeline: one round trip per check (the
    # pool's reset finds the transaction ended and sends nothing).
    assert sum(s.strip().startswith('"" "ROLLBACK"') for s in statements) == 5, statements
    assert waits == ["Sync"] * 5, statements
    # One round trip: everything a check sends leaves before the server's first answer to it.
    lines = [line.split("\t") for line in trace.read_text().splitlines()]
    lines = [f for f in lines if len(f) > 2 and f[0] in ("F", "B") and f[2] != "Terminate"]
    starts = [
        i for i, f in enumerate(lines) if f[0] == "F" and f[2] == "Parse" and '"BEGIN"' in f[3]
    ]
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        check = lines[start:end]
        first_answer = next(i for i, f in enumerate(check) if f[0] == "B")
        assert all(f[0] == "B" for f in check[first_answer:]), check


@pytest.mark.postgres
def test_a_check_with_a_bound_of_its_own_still_costs_one_round_trip(
    harness: Harness, pg_url: str, tmp_path: Path
) -> None:
    """A reused connection started with another check's statement bound: the check's own
    `SET statement_timeout` goes in the same pipeline, inside its transaction (so the query
    runs under it and the ROLLBACK undoes it), not as round trips of its own."""
    from psycopg import pq
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    _ = next(_seeded(pg_url))
    harness.add_datasource("wh", pg_url)
    trace = tmp_path / "libpq.trace"
    handle = trace.open("w")

    def traced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.trace(handle.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    bound = "select current_setting('statement_timeout') as bound, id from u"
    event.listen(Pool, "connect", traced)
    try:
        results = harness.run_many(
            [
                ("sql", {"datasource_id": "wh", "query": bound, "timeout_seconds": t})
                for t in (7, 3, 3, 7)
            ],
            concurrency=1,
        )
    finally:
        event.remove(Pool, "connect", traced)
        handle.close()
    assert [r.details["rows"][0]["bound"] for r in results] == ["7s", "3s", "3s", "7s"]
    sent = [line.split("\t") for line in trace.read_text().splitlines()]
    sent = [f for f in sent if len(f) > 2 and f[0] == "F"]
    first_check = next(i for i, f in enumerate(sent) if f[2] == "Parse" and '"BEGIN"' in f[3])
    checks = sent[first_check:]
    statements = [f[3] for f in checks if f[2] in ("Parse", "Query")]
    assert [f[2] for f in checks if f[2] in ("Sync", "Query")] == ["Sync"] * 4, statements
    sets = [s for s in statements if "SET statement_timeout" in s]
    assert len(sets) == 2, statements  # the connection started with 7 s: checks 2 and 3
    assert all(s.startswith(' "" "SET') for s in sets), sets  # Parse: extended protocol
