"""Connections shared within a run (`checks.pool`): pooled, bounded, discarded after a failure.

Everything runs through the real runner against the PostgreSQL and MariaDB servers on loopback;
sessions are counted on the server (`pg_backend_pid()`, `CONNECTION_ID()`,
`pg_stat_database.sessions`, `pg_stat_activity`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.checks.conftest import Harness
from tests.conftest import PG_ADMIN_URL

APP = "datamantri-alerts check"


def _pid(result: Any) -> int:
    assert result.outcome == "firing", result.summary
    return int(next(iter(result.details["rows"][0].values())))


def _admin_rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def _check_backends(url: str) -> list[tuple[Any, ...]]:
    """Our check sessions on the database: (pid, state, query)."""
    return _admin_rows(
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE datname = :db AND application_name = :app",
        {"db": _database(url), "app": APP},
    )


def _eventually(probe: Callable[[], Any], seconds: float = 15.0) -> Any:
    """The probe's value once falsy, polling; the last value when time runs out."""
    give_up = time.monotonic() + seconds
    value = probe()
    while value and time.monotonic() < give_up:
        time.sleep(0.2)
        value = probe()
    return value


def _sessions_opened(url: str) -> int:
    """Sessions ever established to the database (PostgreSQL ≥ 14), once none is open."""
    _eventually(lambda: _check_backends(url))
    rows = _admin_rows(
        "SELECT sessions FROM pg_stat_database WHERE datname = :db", {"db": _database(url)}
    )
    return int(rows[0][0])


def _sql(source: str, query: str, timeout: float = 10) -> tuple[str, dict[str, Any]]:
    return ("sql", {"datasource_id": source, "query": query, "timeout_seconds": timeout})


@pytest.mark.serial  # counts sessions from server statistics, flushed as backends end
@pytest.mark.postgres
def test_sessions_per_run_are_bounded_by_concurrency_counted_on_the_server(
    harness: Harness, pg_database: str
) -> None:
    harness.add_datasource("pg", pg_database)
    before = _sessions_opened(pg_database)
    results = harness.run_many([_sql("pg", "SELECT pg_backend_pid()")] * 120, concurrency=4)
    pids = {_pid(r) for r in results}
    opened = _sessions_opened(pg_database) - before
    assert 1 <= len(pids) <= 4
    assert opened <= 4, f"{opened} sessions for 120 checks at concurrency 4"
    # The run's engines are disposed at its end: no session of ours is left open.
    assert _check_backends(pg_database) == []


def _every_type(harness: Harness, url: str) -> list[tuple[str, dict[str, Any]]]:
    """One alert of each type that reads a database data source, on the table `t`."""
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (loaded_at timestamptz)"))
        conn.execute(text("INSERT INTO t VALUES (now())"))
    admin.dispose()
    harness.add_job(
        "pipeline",
        "p",
        {
            "source": "sql",
            "datasource_id": "pg",
            "query": "SELECT 'success' AS status, "
            "now() AS started_at, now() AS finished_at, NULL AS error FROM t",
        },
    )
    return [
        _sql("pg", "SELECT 1 FROM t"),
        ("datasource_failure", {"datasource_id": "pg", "timeout_seconds": 10}),
        (
            "freshness",
            {
                "datasource_id": "pg",
                "table": "t",
                "timestamp_column": "loaded_at",
                "warn_after": "1h",
            },
        ),
        (
            "sla_breach",
            {
                "datasource_id": "pg",
                "table": "t",
                "timestamp_column": "loaded_at",
                "expected_load_time": "00:00",
            },
        ),
        ("query_slow", {"datasource_id": "pg", "threshold_seconds": 5}),  # active mode
        ("query_slow", {"datasource_id": "pg", "threshold_seconds": 5, "query": "SELECT 1 FROM t"}),
        ("pipeline_failure", {"pipeline_id": "p"}),
    ]


@pytest.mark.serial  # counts sessions from server statistics, flushed as backends end
@pytest.mark.postgres
def test_every_database_type_reads_through_the_runs_pool(
    harness: Harness, pg_database: str
) -> None:
    """Each alert type that reads a database takes its connection from the run's pool: 30
    alerts of every such type at concurrency 2 open at most 2 sessions (counted on the server).
    `freshness` once opened a session per evaluation (it did not pass the run's pool)."""
    harness.add_datasource("pg", pg_database)
    kinds = _every_type(harness, pg_database)
    for kind in kinds:
        before = _sessions_opened(pg_database)
        results = harness.run_many([kind] * 30, concurrency=2)
        opened = _sessions_opened(pg_database) - before
        assert all(r.outcome in ("ok", "firing") for r in results), results[0].summary
        assert opened <= 2, f"{kind[0]}: {opened} sessions for 30 checks at concurrency 2"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("failing", "timeout", "expected"),
    [
        ("SELECT pg_sleep(5), 1", 0.5, "statement timeout"),  # timed out, cancelled
        ("SELECT * FROM no_such_table", 10, "no_such_table"),  # failed
        ("CREATE TABLE sneaky (x int)", 10, "refused"),  # refused by the read-only session
    ],
)
def test_a_connection_whose_statement_failed_is_not_reused(
    harness: Harness, pg_database: str, failing: str, timeout: float, expected: str
) -> None:
    harness.add_datasource("pg", pg_database)
    pid = "SELECT pg_backend_pid()"
    first, again, broken, after = harness.run_many(
        [_sql("pg", pid), _sql("pg", pid), _sql("pg", failing, timeout), _sql("pg", pid)],
        concurrency=1,
    )
    assert broken.outcome == "error"
    assert expected in broken.summary
    assert _pid(first) == _pid(again), "a healthy connection is reused within the run"
    assert _pid(after) != _pid(first), "the connection of the failed statement came back"


@pytest.mark.mariadb
def test_a_mariadb_connection_that_timed_out_is_not_reused(
    harness: Harness, mariadb_database: str
) -> None:
    harness.add_datasource("maria", mariadb_database)
    pid = "SELECT CONNECTION_ID()"
    first, again, hung, after = harness.run_many(
        [
            _sql("maria", pid),
            _sql("maria", pid),
            _sql("maria", "SELECT SLEEP(5)", 0.5),
            _sql("maria", pid),
        ],
        concurrency=1,
    )
    assert hung.outcome == "error"
    assert "cancelled" in hung.summary or "interrupted" in hung.summary.lower()
    assert _pid(first) == _pid(again)
    assert _pid(after) != _pid(first)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "probe", "expected"),
    [
        (
            "SELECT set_config('TimeZone', 'America/New_York', false)",
            "SELECT current_setting('TimeZone')",
            "UTC",
        ),
        (
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT current_setting('default_transaction_read_only')",
            "on",
        ),
        (
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT current_setting('statement_timeout')",
            "10s",
        ),
    ],
)
def test_a_session_change_does_not_outlive_its_check(
    harness: Harness, pg_database: str, change: str, probe: str, expected: str
) -> None:
    harness.add_datasource("pg", pg_database)
    pid = "SELECT pg_backend_pid()"
    first, changed, seen, last = harness.run_many(
        [_sql("pg", pid), _sql("pg", change), _sql("pg", probe), _sql("pg", pid)],
        concurrency=1,
    )
    assert changed.outcome == "firing", changed.summary
    assert seen.details["rows"][0] == {"current_setting": expected}
    assert _pid(first) == _pid(last), "the probe ran on the same pooled connection"


@pytest.mark.serial  # wall-clock bounds on a hung query, a busy pool, cancelling
@pytest.mark.postgres
def test_a_hung_query_and_a_black_hole_do_not_delay_200_healthy_checks(
    harness: Harness, pg_database: str, black_hole_port: int, tmp_path: Path
) -> None:
    import sqlite3

    lite = tmp_path / "lite.db"
    with sqlite3.connect(lite) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    harness.add_datasource("pg", pg_database)
    harness.add_datasource("lite", f"sqlite:///{lite}")
    harness.add_datasource("hole", f"postgresql+psycopg://u@127.0.0.1:{black_hole_port}/x")
    healthy = [_sql("pg", "SELECT 1 AS one")] * 100 + [_sql("lite", "SELECT x FROM t")] * 100

    started = time.monotonic()
    alone = harness.run_many(healthy, concurrency=8)
    alone_wall = time.monotonic() - started
    assert {r.outcome for r in alone} == {"firing"}

    bad = [
        _sql("pg", "SELECT pg_sleep(60) AS hung_marker", 2),
        _sql("hole", "SELECT 1", 2),
    ]
    started = time.monotonic()
    hung, hole, *rest = harness.run_many(bad + healthy, concurrency=8)
    wall = time.monotonic() - started

    assert hung.outcome == "error" and "statement timeout" in hung.summary, hung.summary
    assert hole.outcome == "error" and "cannot connect" in hole.summary, hole.summary
    assert [r.outcome for r in rest] == ["firing"] * 200
    # The healthy checks neither waited for the hung ones nor were slowed down by them: each
    # took a fraction of the 2 s the bad ones were given, and the run lasted as long as the
    # slower of "the healthy checks alone" and "the bad checks' own timeout".
    assert max(r.duration_ms for r in rest) < 1500
    assert wall < max(alone_wall, 2.0 + 1.0) + 2.0
    # Nothing is left running on the server, and every session of the run is closed.
    assert _eventually(lambda: _check_backends(pg_database)) == []


@pytest.mark.serial  # wall-clock bounds on a hung query, a busy pool, cancelling
@pytest.mark.postgres
def test_a_checkout_waits_no_longer_than_the_check_timeout(pg_database: str) -> None:
    """With every pooled connection of a source busy, the next check gets a clear error after
    its own timeout; the pool then serves again once the connection comes back."""
    from datamantri_alerts.checks.pool import SourcePool
    from datamantri_alerts.checks.sources import SourceError, SourceInfo, open_source

    source = SourceInfo(id="pg", name="pg", url=pg_database)
    with SourcePool(1) as pool, open_source(source, 5, pool=pool) as held:
        held.execute("SELECT 1", bound=5)
        started = time.monotonic()
        with pytest.raises(SourceError) as caught, open_source(source, 0.5, pool=pool):
            pass
        waited = time.monotonic() - started
        assert "no connection became free within 0.5s" in str(caught.value)
        assert 0.4 <= waited < 3
    with SourcePool(1) as pool:
        for _ in range(3):
            with open_source(source, 5, pool=pool) as conn:
                assert conn.execute("SELECT 1", bound=5).rows == [(1,)]


def test_the_pool_refuses_work_after_close(tmp_path: Path) -> None:
    from datamantri_alerts.checks.base import CannotEvaluate
    from datamantri_alerts.checks.pool import SourcePool
    from datamantri_alerts.checks.sources import SourceInfo, open_source

    pool = SourcePool(2)
    pool.close()
    source = SourceInfo(id="lite", name="lite", url=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(CannotEvaluate, match="closed"), open_source(source, 1, pool=pool):
        pass


@pytest.mark.serial  # wall-clock bounds on a hung query, a busy pool, cancelling
@pytest.mark.postgres
def test_cancel_all_stops_the_statements_in_flight(harness: Harness, pg_database: str) -> None:
    """The hook for SIGTERM: the caller holds the run's pool and cancels what runs on it."""
    import threading

    from datamantri_alerts.checks.pool import SourcePool

    harness.add_datasource("pg", pg_database)
    with SourcePool(4) as pool:
        timer = threading.Timer(1.0, pool.cancel_all)
        timer.start()
        started = time.monotonic()
        try:
            results = harness.run_many(
                [_sql("pg", "SELECT pg_sleep(60) AS cancel_me", 60)] * 2,
                concurrency=4,
                sources=pool,
            )
        finally:
            timer.cancel()
        elapsed = time.monotonic() - started
    assert [r.outcome for r in results] == ["error", "error"]
    assert all("cancel" in r.summary for r in results), [r.summary for r in results]
    assert elapsed < 30
    assert _eventually(lambda: _check_backends(pg_database)) == []


@pytest.mark.postgres
def test_each_check_on_a_reused_connection_has_its_own_statement_bound(
    harness: Harness, pg_database: str
) -> None:
    harness.add_datasource("pg", pg_database)
    setting = "SELECT current_setting('statement_timeout') AS bound"
    results = harness.run_many(
        [
            ("datasource_failure", {"datasource_id": "pg", "timeout_seconds": 4}),
            _sql("pg", setting, 7),
            _sql("pg", setting, 3),
            _sql("pg", setting, 7),
            _sql("pg", "SELECT pg_backend_pid()"),
            _sql("pg", "SELECT pg_backend_pid()"),
        ],
        concurrency=1,
    )
    assert results[0].outcome == "ok", results[0].summary
    assert [r.details["rows"][0]["bound"] for r in results[1:4]] == ["7s", "3s", "7s"]
    assert _pid(results[4]) == _pid(results[5])


@pytest.mark.postgres
def test_the_run_keeps_a_connection_for_the_next_check_without_sqlalchemys_checkout(
    harness: Harness, pg_database: str
) -> None:
    """A healthy connection stays with the run between checks: 20 checks at concurrency 1 take
    a connection out of SQLAlchemy's pool once (its checkout and checkin per check cost about a
    tenth of a PostgreSQL check's CPU). A check whose statement failed still gets a new one."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    checkouts: list[int] = []

    def on_checkout(dbapi: Any, _record: Any, _proxy: Any) -> None:
        if type(dbapi).__module__.startswith("psycopg"):
            checkouts.append(id(dbapi))

    harness.add_datasource("pg", pg_database)
    pid = "SELECT pg_backend_pid()"
    event.listen(Pool, "checkout", on_checkout)
    try:
        results = harness.run_many(
            [_sql("pg", pid)] * 10 + [_sql("pg", "SELECT 1/0")] + [_sql("pg", pid)] * 9,
            concurrency=1,
        )
    finally:
        event.remove(Pool, "checkout", on_checkout)
    assert results[10].outcome == "error" and "division by zero" in results[10].summary
    before, after = results[:10], results[11:]
    assert len({_pid(r) for r in before}) == 1, "one connection served the first ten checks"
    assert len({_pid(r) for r in after}) == 1
    assert _pid(after[0]) != _pid(before[0]), "the failed check's connection was not reused"
    assert len(checkouts) == 2, checkouts  # the first connection, and the failed one's successor


@pytest.mark.mariadb
def test_a_reused_mariadb_connection_stays_read_only_and_utc(
    harness: Harness, mariadb_database: str
) -> None:
    harness.add_datasource("maria", mariadb_database)
    pid = "SELECT CONNECTION_ID()"
    session = "SELECT @@session.time_zone AS tz, @@session.tx_read_only AS ro"
    first, again, seen, last = harness.run_many(
        [_sql("maria", pid), _sql("maria", session), _sql("maria", session), _sql("maria", pid)],
        concurrency=1,
    )
    assert again.details["rows"][0] == seen.details["rows"][0] == {"tz": "+00:00", "ro": 1}
    assert _pid(first) == _pid(last), "the checks ran on one pooled connection"
