"""datasource_failure against real sources: SQLite files, PostgreSQL, MariaDB, HTTP, bad ports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.checks.conftest import Harness


def _sqlite_file(path: Path) -> str:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    return f"sqlite:///{path}"


def test_sqlite_file_reachable(harness: Harness, tmp_path: Path) -> None:
    harness.add_datasource("lite", _sqlite_file(tmp_path / "source.db"))
    result = harness.run("datasource_failure", {"datasource_id": "lite"})
    assert result.outcome == "ok", result.summary
    assert "SELECT 1" in result.summary
    assert result.check_state == {"consecutive_failures": 0}


def test_missing_sqlite_file_fires_and_is_not_created(harness: Harness, tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "nothing.db"
    harness.add_datasource("lite", f"sqlite:///{missing}")
    result = harness.run("datasource_failure", {"datasource_id": "lite"})
    assert result.outcome == "firing"
    assert "cannot connect" in result.summary
    assert result.severity == "critical"
    assert not missing.exists()


@pytest.mark.postgres
def test_postgres_reachable_and_wrong_database_fires(harness: Harness, pg_database: str) -> None:
    harness.add_datasource("pg", pg_database)
    harness.add_datasource("pg-bad", pg_database.rsplit("/", 1)[0] + "/no_such_database_x")
    ok, bad = harness.run_many(
        [
            ("datasource_failure", {"datasource_id": "pg"}),
            ("datasource_failure", {"datasource_id": "pg-bad"}),
        ]
    )
    assert ok.outcome == "ok", ok.summary
    assert bad.outcome == "firing"
    assert "no_such_database_x" in bad.details["error"]


@pytest.mark.mariadb
def test_mariadb_reachable_and_wrong_database_fires(
    harness: Harness, mariadb_database: str
) -> None:
    harness.add_datasource("maria", mariadb_database)
    harness.add_datasource("maria-bad", mariadb_database.rsplit("/", 1)[0] + "/no_such_db_x")
    ok, bad = harness.run_many(
        [
            ("datasource_failure", {"datasource_id": "maria"}),
            ("datasource_failure", {"datasource_id": "maria-bad"}),
        ]
    )
    assert ok.outcome == "ok", ok.summary
    assert bad.outcome == "firing"
    assert "no_such_db_x" in bad.summary


def test_http_2xx_ok_and_5xx_fires(harness: Harness, http_base: str) -> None:
    harness.add_datasource("web", f"{http_base}/health")
    harness.add_datasource("web-down", f"{http_base}/status/503")
    ok, down = harness.run_many(
        [
            ("datasource_failure", {"datasource_id": "web"}),
            ("datasource_failure", {"datasource_id": "web-down"}),
        ]
    )
    assert ok.outcome == "ok", ok.summary
    assert ok.details["status_code"] == 200
    assert down.outcome == "firing"
    assert "503" in down.summary


@pytest.mark.serial  # wall-clock bound (refused at once, black hole cut off)
@pytest.mark.parametrize("scheme", ["postgresql", "mysql", "http"])
def test_closed_port_fails_fast_without_leaking_the_password(
    harness: Harness, refused_port: int, scheme: str
) -> None:
    secret = "hunter2-very-secret"
    if scheme == "http":
        url = f"http://user:{secret}@127.0.0.1:{refused_port}/health?token={secret}"
    else:
        url = f"{scheme}://alice:{secret}@127.0.0.1:{refused_port}/db"
    harness.add_datasource("down", url)
    started = time.monotonic()
    result = harness.run("datasource_failure", {"datasource_id": "down", "timeout_seconds": 10})
    elapsed = time.monotonic() - started
    assert result.outcome == "firing"
    assert elapsed < 2, f"a refused connection took {elapsed:.1f}s"
    everything = result.summary + repr(result.details)
    assert secret not in everything
    assert "refused" in everything.lower()


@pytest.mark.serial  # wall-clock bound (refused at once, black hole cut off)
@pytest.mark.parametrize("scheme", ["http", "postgresql", "mysql"])
def test_black_hole_is_cut_off_by_the_timeout(
    harness: Harness, black_hole_port: int, http_base: str, scheme: str
) -> None:
    prefix = {"http": "http://", "postgresql": "postgresql://u@", "mysql": "mysql://u@"}[scheme]
    harness.add_datasource("hole", f"{prefix}127.0.0.1:{black_hole_port}/db")
    harness.add_datasource("web", f"{http_base}/health")
    started = time.monotonic()
    hole, web = harness.run_many(
        [
            ("datasource_failure", {"datasource_id": "hole", "timeout_seconds": 1}),
            ("datasource_failure", {"datasource_id": "web", "timeout_seconds": 1}),
        ]
    )
    elapsed = time.monotonic() - started
    assert hole.outcome in ("firing", "error"), hole.summary
    assert (
        hole.outcome == "error"
        or "timed out" in hole.summary.lower()
        or "timeout" in (hole.summary.lower())
    )
    # libpq's connect_timeout is at least 2 s; the runner stops waiting at timeout + 1 s grace.
    assert elapsed < 2.8, f"the black hole held the run for {elapsed:.1f}s"
    assert web.outcome == "ok"
    assert web.duration_ms < 500


def test_failures_before_alert_counts_consecutive_failures(
    harness: Harness, refused_port: int, tmp_path: Path
) -> None:
    harness.add_datasource("down", f"postgresql://u@127.0.0.1:{refused_port}/db")
    config = {"datasource_id": "down", "failures_before_alert": 3}
    state: dict = {}
    outcomes = []
    for _ in range(3):
        result = harness.run("datasource_failure", config, check_state=state)
        outcomes.append(result.outcome)
        state = result.check_state
    assert outcomes == ["ok", "ok", "firing"]
    assert state == {"consecutive_failures": 3}
    assert "failure 2 of 3" not in result.summary

    harness.add_datasource("up", _sqlite_file(tmp_path / "up.db"))
    recovered = harness.run(
        "datasource_failure", {"datasource_id": "up", "failures_before_alert": 3}, check_state=state
    )
    assert recovered.outcome == "ok"
    assert recovered.check_state == {"consecutive_failures": 0}


def test_second_failure_of_three_is_reported_but_not_firing(
    harness: Harness, refused_port: int
) -> None:
    harness.add_datasource("down", f"postgresql://u@127.0.0.1:{refused_port}/db")
    result = harness.run(
        "datasource_failure",
        {"datasource_id": "down", "failures_before_alert": 3},
        check_state={"consecutive_failures": 1},
    )
    assert result.outcome == "ok"
    assert "failure 2 of 3" in result.summary
    assert result.check_state == {"consecutive_failures": 2}


def test_env_var_url_resolved_at_use_and_unset_is_an_error(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.add_datasource("env", "${CHECKS_TEST_SOURCE_URL}")
    unset = harness.run("datasource_failure", {"datasource_id": "env"})
    assert unset.outcome == "error"
    assert "CHECKS_TEST_SOURCE_URL" in unset.summary

    monkeypatch.setenv("CHECKS_TEST_SOURCE_URL", _sqlite_file(tmp_path / "env.db"))
    resolved = harness.run("datasource_failure", {"datasource_id": "env"})
    assert resolved.outcome == "ok", resolved.summary


def test_unknown_datasource_is_an_error_not_a_firing(harness: Harness) -> None:
    result = harness.run("datasource_failure", {"datasource_id": "nope"})
    assert result.outcome == "error"
    assert "'nope' does not exist" in result.summary
