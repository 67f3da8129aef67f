"""query_slow: probe mode is timed and cancelled at its bound; active mode sees long queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.checks.conftest import Harness

#: Serial (scripts/test.sh runs it alone): probe durations and cancellation are measured
#: against wall-clock bounds (`1.4 <= duration < 3`, `elapsed < 4`).
pytestmark = pytest.mark.serial


def _running(engine_url: str, sql: str, params: dict) -> list[tuple]:
    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def _pg_running(url: str, marker: str) -> list[tuple]:
    return _running(
        url,
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE query LIKE :pattern AND state = 'active' AND pid <> pg_backend_pid()",
        {"pattern": f"%{marker}%"},
    )


def _maria_running(url: str, marker: str) -> list[tuple]:
    return _running(
        url,
        "SELECT ID, COMMAND, INFO FROM information_schema.PROCESSLIST "
        "WHERE INFO LIKE :pattern AND ID <> CONNECTION_ID()",
        {"pattern": f"%{marker}%"},
    )


@contextmanager
def held_query(url: str, sql: str, visible: Callable[[], list]) -> Iterator[None]:
    """Run sql in another connection (a thread) until the block ends; wait until it shows."""
    engine = create_engine(url)
    conn = engine.connect()
    dbapi = conn.connection.dbapi_connection
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn.exec_driver_sql(sql)
        except Exception as exc:  # cancelled at the end of the block
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not visible():
        assert time.monotonic() < deadline, "the held query never showed up"
        time.sleep(0.1)
    try:
        yield
    finally:
        if hasattr(dbapi, "cancel"):
            dbapi.cancel()
        else:
            with engine.connect() as killer:
                killer.exec_driver_sql(f"KILL QUERY {dbapi.thread_id()}")
        thread.join(10)
        conn.close()
        engine.dispose()


# --------------------------------------------------------------------------- probe mode


@pytest.mark.postgres
def test_pg_probe_beyond_bound_fires_and_leaves_no_backend(
    harness: Harness, pg_database: str
) -> None:
    harness.add_datasource("pg", pg_database)
    started = time.monotonic()
    result = harness.run(
        "query_slow",
        {
            "datasource_id": "pg",
            "query": "SELECT pg_sleep(6.217)",
            "threshold_seconds": 0.5,
            "timeout_seconds": 1.5,
        },
    )
    elapsed = time.monotonic() - started
    assert result.outcome == "firing", result.summary
    assert result.details["cancelled"] is True
    assert 1.4 <= result.details["duration_seconds"] < 3
    assert elapsed < 4
    assert "cancelled" in result.summary
    assert _pg_running(pg_database, "pg_sleep(6.217)") == []


@pytest.mark.postgres
def test_pg_probe_over_threshold_within_bound_fires_with_duration(
    harness: Harness, pg_database: str
) -> None:
    harness.add_datasource("pg", pg_database)
    slow, fast = harness.run_many(
        [
            (
                "query_slow",
                {"datasource_id": "pg", "query": "SELECT pg_sleep(0.6)", "threshold_seconds": 0.3},
            ),
            ("query_slow", {"datasource_id": "pg", "query": "SELECT 1", "threshold_seconds": 2}),
        ]
    )
    assert slow.outcome == "firing", slow.summary
    assert "cancelled" not in slow.details
    assert 0.6 <= slow.details["duration_seconds"] < 2
    assert fast.outcome == "ok", fast.summary
    assert fast.details["duration_seconds"] < 2


@pytest.mark.mariadb
def test_mariadb_probe_beyond_bound_fires_and_leaves_nothing_running(
    harness: Harness, mariadb_database: str
) -> None:
    harness.add_datasource("maria", mariadb_database)
    result = harness.run(
        "query_slow",
        {
            "datasource_id": "maria",
            "query": "SELECT SLEEP(6.317)",
            "threshold_seconds": 0.5,
            "timeout_seconds": 1.5,
        },
    )
    assert result.outcome == "firing", result.summary
    assert result.details["duration_seconds"] < 3.5
    time.sleep(0.2)
    assert _maria_running(mariadb_database, "SLEEP(6.317)") == []


def test_sqlite_probe_is_interrupted_at_the_bound(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    create_engine(f"sqlite:///{path}").connect().close()
    harness.add_datasource("lite", f"sqlite:///{path}")
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    result = harness.run(
        "query_slow",
        {"datasource_id": "lite", "query": endless, "threshold_seconds": 0.2, "timeout_seconds": 1},
    )
    assert result.outcome == "firing", result.summary
    assert result.details["cancelled"] is True
    assert result.duration_ms < 2500


def test_failing_probe_query_is_an_error(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    create_engine(f"sqlite:///{path}").connect().close()
    harness.add_datasource("lite", f"sqlite:///{path}")
    result = harness.run(
        "query_slow",
        {"datasource_id": "lite", "query": "SELECT * FROM missing_table", "threshold_seconds": 1},
    )
    assert result.outcome == "error"
    assert "missing_table" in result.summary


# --------------------------------------------------------------------------- active mode


@pytest.mark.postgres
def test_pg_active_mode_sees_a_long_query_in_another_connection(
    harness: Harness, pg_database: str
) -> None:
    harness.add_datasource("pg", pg_database)
    config = {"datasource_id": "pg", "threshold_seconds": 0.5}
    assert harness.run("query_slow", config).outcome == "ok"

    marker = "pg_sleep(30.123)"
    with held_query(pg_database, f"SELECT {marker}", lambda: _pg_running(pg_database, marker)):
        time.sleep(0.7)
        result = harness.run("query_slow", config)
    assert result.outcome == "firing", result.summary
    assert marker in result.summary
    slow = result.details["slow_queries"]
    assert len(slow) == 1
    assert marker in slow[0]["query"]
    assert slow[0]["user"] == "postgres"
    assert slow[0]["duration_seconds"] >= 0.5
    assert _pg_running(pg_database, marker) == []


@pytest.mark.postgres
def test_pg_active_mode_ignores_its_own_session(harness: Harness, pg_database: str) -> None:
    harness.add_datasource("pg", pg_database)
    result = harness.run("query_slow", {"datasource_id": "pg", "threshold_seconds": 0.001})
    assert result.outcome == "ok", result.details
    assert result.details["slow_query_count"] == 0


@pytest.mark.mariadb
def test_mariadb_active_mode_sees_a_long_query_in_another_connection(
    harness: Harness, mariadb_database: str
) -> None:
    harness.add_datasource("maria", mariadb_database)
    config = {"datasource_id": "maria", "threshold_seconds": 0.5}
    own = harness.run("query_slow", {"datasource_id": "maria", "threshold_seconds": 0.001})
    assert own.outcome == "ok", own.details

    marker = "SLEEP(30.123)"
    with held_query(
        mariadb_database, f"SELECT {marker}", lambda: _maria_running(mariadb_database, marker)
    ):
        time.sleep(1.1)
        result = harness.run("query_slow", config)
    assert result.outcome == "firing", result.summary
    slow = result.details["slow_queries"]
    assert len(slow) == 1
    assert marker in slow[0]["query"]
    assert slow[0]["user"] == "root"
    assert slow[0]["duration_seconds"] >= 0.5


def test_active_mode_on_sqlite_is_an_error(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    create_engine(f"sqlite:///{path}").connect().close()
    harness.add_datasource("lite", f"sqlite:///{path}")
    result = harness.run("query_slow", {"datasource_id": "lite", "threshold_seconds": 1})
    assert result.outcome == "error"
    assert "PostgreSQL or MySQL/MariaDB" in result.summary
