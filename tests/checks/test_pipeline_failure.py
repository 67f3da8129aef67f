"""pipeline_failure over recorded runs, an Airflow-style dag_run table, and dbt run results."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.checks.conftest import Harness
from tests.conftest import utc

NOW = utc(2025, 6, 2, 12, 0)


# --------------------------------------------------------------------------- recorded


def test_recorded_last_n_runs(harness: Harness) -> None:
    harness.add_job("pipeline", "etl")
    harness.freeze(NOW)
    harness.record("etl", "success", NOW - timedelta(hours=3))
    harness.record("etl", "failed", NOW - timedelta(hours=2), error="disk full on /data")
    harness.record("etl", "success", NOW - timedelta(hours=1))

    last_one = harness.run("pipeline_failure", {"pipeline_id": "etl"})
    assert last_one.outcome == "ok", last_one.summary
    last_two = harness.run("pipeline_failure", {"pipeline_id": "etl", "check_last_n_runs": 2})
    assert last_two.outcome == "firing"
    assert "1 of the last 2" in last_two.summary
    assert "disk full on /data" in last_two.summary
    assert [r["status"] for r in last_two.details["runs"]] == ["success", "failed"]
    assert last_two.details["failed_runs"][0]["error"] == "disk full on /data"


def test_running_runs_are_not_finished_runs(harness: Harness) -> None:
    harness.add_job("pipeline", "etl")
    harness.freeze(NOW)
    harness.record("etl", "failed", NOW - timedelta(hours=2), error="boom")
    with harness.store.transaction() as session:
        from datamantri_alerts.clock import SystemClock
        from datamantri_alerts.services.runs import record_run

        record_run(session, "etl", "running", SystemClock(), started_at=NOW - timedelta(minutes=5))
    result = harness.run("pipeline_failure", {"pipeline_id": "etl"})
    assert result.outcome == "firing"
    assert len(result.details["runs"]) == 1


def test_max_hours_without_run(harness: Harness) -> None:
    harness.add_job("pipeline", "etl")
    harness.add_job("pipeline", "never")
    harness.freeze(NOW)
    harness.record("etl", "success", NOW - timedelta(hours=30))
    config = {"pipeline_id": "etl", "max_hours_without_run": 24}

    stopped = harness.run("pipeline_failure", config)
    assert stopped.outcome == "firing"
    assert "no run finished in the last 24 h" in stopped.summary

    harness.record("etl", "success", NOW - timedelta(hours=2))
    assert harness.run("pipeline_failure", config).outcome == "ok"

    never = harness.run("pipeline_failure", {**config, "pipeline_id": "never"})
    assert never.outcome == "firing"
    assert "none recorded" in never.summary
    assert harness.run("pipeline_failure", {"pipeline_id": "never"}).outcome == "ok"


def test_unknown_pipeline_is_an_error(harness: Harness) -> None:
    result = harness.run("pipeline_failure", {"pipeline_id": "ghost"})
    assert result.outcome == "error"
    assert "ghost" in result.summary


# --------------------------------------------------------------------------- sql (Airflow)

DAG_RUN_DDL = """
CREATE TABLE dag_run (
    id INTEGER PRIMARY KEY,
    dag_id VARCHAR(250),
    state VARCHAR(50),
    start_date TIMESTAMP,
    end_date TIMESTAMP
)
"""
AIRFLOW_QUERY = (
    "select id as run_id, state as status, start_date as started_at, end_date as finished_at "
    "from dag_run where dag_id = 'daily' order by start_date desc limit 20"
)


def _dag_runs(url: str, rows: list[tuple[int, str, str, int]]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(DAG_RUN_DDL))
        for run_id, dag_id, state, hours_ago in rows:
            start = (NOW - timedelta(hours=hours_ago)).replace(tzinfo=None)
            end = None if state == "running" else start + timedelta(minutes=20)
            conn.execute(
                text("INSERT INTO dag_run VALUES (:id, :dag, :state, :start, :end)"),
                {"id": run_id, "dag": dag_id, "state": state, "start": start, "end": end},
            )
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_airflow_dag_run_table(
    harness: Harness, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'airflow.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    _dag_runs(
        url,
        [
            (1, "daily", "success", 50),
            (2, "daily", "failed", 26),
            (3, "daily", "success", 2),
            (4, "daily", "running", 0),
            (5, "other", "failed", 1),
        ],
    )
    harness.add_datasource("airflow-meta", url)
    harness.add_job(
        "pipeline",
        "airflow-daily",
        {"source": "sql", "datasource_id": "airflow-meta", "query": AIRFLOW_QUERY},
    )
    harness.freeze(NOW)
    latest = harness.run("pipeline_failure", {"pipeline_id": "airflow-daily"})
    assert latest.outcome == "ok", latest.summary
    assert latest.details["runs"][0]["run_id"] == "3"

    two = harness.run("pipeline_failure", {"pipeline_id": "airflow-daily", "check_last_n_runs": 2})
    assert two.outcome == "firing", two.summary
    assert two.details["failed_runs"][0]["run_id"] == "2"

    recent = harness.run(
        "pipeline_failure", {"pipeline_id": "airflow-daily", "max_hours_without_run": 1}
    )
    assert recent.outcome == "firing"  # the last one finished 1 h 40 min ago


def test_sql_runs_status_map_and_unmapped_status(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    _dag_runs(url, [(1, "daily", "exploded", 1)])
    harness.add_datasource("meta", url)
    harness.add_job(
        "pipeline", "unmapped", {"source": "sql", "datasource_id": "meta", "query": AIRFLOW_QUERY}
    )
    harness.add_job(
        "pipeline",
        "mapped",
        {
            "source": "sql",
            "datasource_id": "meta",
            "query": AIRFLOW_QUERY,
            "status_map": {"failed": ["EXPLODED"]},
        },
    )
    unmapped = harness.run("pipeline_failure", {"pipeline_id": "unmapped"})
    assert unmapped.outcome == "error"
    assert "'exploded'" in unmapped.summary and "status_map" in unmapped.summary
    mapped = harness.run("pipeline_failure", {"pipeline_id": "mapped"})
    assert mapped.outcome == "firing", mapped.summary


def test_sql_runs_query_missing_columns_is_an_error(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    _dag_runs(url, [(1, "daily", "success", 1)])
    harness.add_datasource("meta", url)
    harness.add_job(
        "pipeline",
        "bad",
        {"source": "sql", "datasource_id": "meta", "query": "select state from dag_run"},
    )
    result = harness.run("pipeline_failure", {"pipeline_id": "bad"})
    assert result.outcome == "error"
    assert "started_at" in result.summary


# --------------------------------------------------------------------------- dbt


def _run_results(path: Path, statuses: dict[str, str]) -> None:
    """A run_results.json in dbt's documented artifact format (schema v6)."""
    results = []
    for unique_id, status in statuses.items():
        results.append(
            {
                "unique_id": unique_id,
                "status": status,
                "thread_id": "Thread-1",
                "execution_time": 1.5,
                "adapter_response": {},
                "message": "Database Error: relation missing" if status == "error" else "OK",
                "failures": 1 if status == "fail" else None,
                "timing": [
                    {
                        "name": "compile",
                        "started_at": "2025-06-02T10:00:00.000000Z",
                        "completed_at": "2025-06-02T10:00:01.000000Z",
                    },
                    {
                        "name": "execute",
                        "started_at": "2025-06-02T10:00:01.000000Z",
                        "completed_at": "2025-06-02T10:00:05.000000Z",
                    },
                ],
                "compiled": True,
                "compiled_code": "select 1",
                "relation_name": None,
                "batch_results": None,
            }
        )
    document = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.8.0",
            "generated_at": "2025-06-02T10:00:06.000000Z",
            "invocation_id": "7f6d1b2c-0000-4000-8000-000000000001",
            "env": {},
        },
        "results": results,
        "elapsed_time": 6.0,
        "args": {"which": "build"},
    }
    path.write_text(json.dumps(document))


def test_dbt_run_results(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    artifact = target / "run_results.json"
    harness.add_job("pipeline", "dbt", {"source": "dbt", "path": str(artifact)})
    harness.freeze(NOW)

    missing = harness.run("pipeline_failure", {"pipeline_id": "dbt"})
    assert missing.outcome == "error"
    assert "not found" in missing.summary

    _run_results(artifact, {"model.shop.orders": "success", "test.shop.not_null": "pass"})
    ok = harness.run("pipeline_failure", {"pipeline_id": "dbt"})
    assert ok.outcome == "ok", ok.summary
    assert ok.details["runs"][0]["finished_at"] == "2025-06-02T10:00:06+00:00"
    assert ok.details["runs"][0]["started_at"] == "2025-06-02T10:00:00+00:00"

    _run_results(
        artifact,
        {
            "model.shop.orders": "error",
            "test.shop.unique_id": "fail",
            "test.shop.warned": "warn",
            "model.shop.skipped": "skipped",
        },
    )
    failed = harness.run("pipeline_failure", {"pipeline_id": "dbt"})
    assert failed.outcome == "firing"
    error = failed.details["failed_runs"][0]["error"]
    assert "model.shop.orders: Database Error: relation missing" in error
    assert "test.shop.unique_id" in error
    assert "warned" not in error and "skipped" not in error
    assert failed.details["runs"][0]["run_id"] == "7f6d1b2c-0000-4000-8000-000000000001"

    # The target directory works as the path too; a stopped dbt job is caught by age.
    harness.add_job("pipeline", "dbt-dir", {"source": "dbt", "path": str(target)})
    _run_results(artifact, {"model.shop.orders": "success"})
    stale = harness.run("pipeline_failure", {"pipeline_id": "dbt-dir", "max_hours_without_run": 1})
    assert stale.outcome == "firing"


def test_dbt_file_that_is_not_run_results_is_an_error(harness: Harness, tmp_path: Path) -> None:
    artifact = tmp_path / "run_results.json"
    artifact.write_text('{"nodes": {}}')
    harness.add_job("pipeline", "dbt", {"source": "dbt", "path": str(artifact)})
    result = harness.run("pipeline_failure", {"pipeline_id": "dbt"})
    assert result.outcome == "error"
    assert "not a dbt run_results.json" in result.summary
