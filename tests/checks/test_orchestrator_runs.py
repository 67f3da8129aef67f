"""Job runs read the way Airflow, Dagster and dbt write them, on SQLite, PostgreSQL and MariaDB.

The tables follow the orchestrators' own schemas (Airflow's `dag_run` / `task_instance`, where
PostgreSQL columns are `timestamptz` and MySQL ones `TIMESTAMP(6)`; Dagster's `runs` with epoch
seconds). PostgreSQL and MariaDB sessions run in Tokyo time, as a server default could.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from datamantri_alerts.checks.job_runs import without_top_level_limit
from datamantri_alerts.store.engine import normalize_url
from tests.checks.conftest import Harness
from tests.conftest import REPO_ROOT, utc

NOW = utc(2026, 11, 30, 14, 10)

#: The query the README used to give: PostgreSQL sorts the NULL start dates of queued runs first.
OLD_README_QUERY = (
    "select state as status, start_date as started_at, end_date as finished_at "
    "from dag_run where dag_id = 'daily' order by start_date desc limit 20"
)

#: The README's Airflow example per metadata database dialect (the failed tasks in `error`).
_FAILED_TASKS = {
    "postgres": "string_agg(ti.task_id, ', ' order by ti.task_id)",
    "mariadb": "group_concat(ti.task_id order by ti.task_id separator ', ')",
    "sqlite": "group_concat(ti.task_id, ', ')",
}


def readme_query(kind: str) -> str:
    return (
        "select dr.run_id, dr.state as status, dr.start_date as started_at, "
        "dr.end_date as finished_at, "
        f"(select {_FAILED_TASKS[kind]} from task_instance ti "
        "where ti.dag_id = dr.dag_id and ti.run_id = dr.run_id and ti.state = 'failed') as error "
        "from dag_run dr where dr.dag_id = 'daily'"
    )


def _squash(text_: str) -> str:
    return " ".join(text_.split())


def _stamp_type(kind: str) -> str:
    return {"postgres": "timestamptz", "mariadb": "TIMESTAMP(6) NULL", "sqlite": "TIMESTAMP"}[kind]


def _value(kind: str, when: datetime | None) -> Any:
    """How each dialect's test writer stores an instant (naive UTC where the column is naive)."""
    if when is None or kind == "postgres":
        return when
    return when.replace(tzinfo=None)


class Airflow:
    """An Airflow-like metadata database (dag_run + task_instance) on one dialect."""

    def __init__(self, kind: str, write_url: str, read_url: str) -> None:
        self.kind = kind
        self.write_url = write_url
        self.read_url = read_url
        stamp = _stamp_type(kind)
        self._execute(
            "DROP TABLE IF EXISTS task_instance",
            "DROP TABLE IF EXISTS dag_run",
            "CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id VARCHAR(250), "
            f"run_id VARCHAR(250), state VARCHAR(50), queued_at {stamp}, start_date {stamp}, "
            f"end_date {stamp})",
            "CREATE TABLE task_instance (dag_id VARCHAR(250), task_id VARCHAR(250), "
            f"run_id VARCHAR(250), map_index INTEGER, state VARCHAR(20), start_date {stamp}, "
            f"end_date {stamp})",
        )
        self._next = 1

    def _execute(self, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
        engine = create_engine(self.write_url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement), params or {})
        finally:
            engine.dispose()

    def dag_run(
        self,
        state: str,
        start: datetime | None,
        end: datetime | None,
        *,
        dag_id: str = "daily",
        failed_tasks: tuple[str, ...] = (),
    ) -> str:
        run_id = f"scheduled__{self._next:04d}"
        params = {
            "id": self._next,
            "dag": dag_id,
            "run": run_id,
            "state": state,
            "queued": _value(self.kind, (start or NOW) - timedelta(minutes=1)),
            "start": _value(self.kind, start),
            "end": _value(self.kind, end),
        }
        self._next += 1
        self._execute(
            "INSERT INTO dag_run VALUES (:id, :dag, :run, :state, :queued, :start, :end)",
            params=[params],
        )
        for task in failed_tasks:
            self.task(run_id, task, "failed", start, end, dag_id=dag_id)
        return run_id

    def task(
        self,
        run_id: str,
        task_id: str,
        state: str | None,
        start: datetime | None,
        end: datetime | None,
        *,
        dag_id: str = "daily",
    ) -> None:
        params = {
            "dag": dag_id,
            "task": task_id,
            "run": run_id,
            "state": state,
            "start": _value(self.kind, start),
            "end": _value(self.kind, end),
        }
        self._execute(
            "INSERT INTO task_instance VALUES (:dag, :task, :run, -1, :state, :start, :end)",
            params=[params],
        )

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.read_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(query))]
        finally:
            engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        # Sets MariaDB's global time zone (mariadb_server_zone): serial.
        pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.serial]),
    ]
)
def airflow(request: pytest.FixtureRequest, tmp_path: Path) -> Airflow:
    """The metadata database; PostgreSQL and MariaDB are read in sessions on Tokyo time."""
    kind = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'airflow.db'}"
        return Airflow(kind, url, url)
    if kind == "postgres":
        url = request.getfixturevalue("pg_url")
        return Airflow(kind, url, url + "%20-cTimeZone%3DAsia/Tokyo")
    url = request.getfixturevalue("mariadb_database")
    request.getfixturevalue("mariadb_server_zone")("+09:00")
    utc_session = url + "?init_command=SET+time_zone%3D%27%2B00%3A00%27"
    return Airflow(kind, utc_session, url)


def _pipeline(harness: Harness, airflow: Airflow, query: str, job_id: str = "daily") -> None:
    harness.add_datasource(f"meta-{job_id}", airflow.read_url)
    harness.add_job(
        "pipeline", job_id, {"source": "sql", "datasource_id": f"meta-{job_id}", "query": query}
    )


# --------------------------------------------------------------------------- ordering


def test_a_backlog_of_queued_runs_does_not_hide_a_fresh_failure(
    harness: Harness, airflow: Airflow
) -> None:
    """Issue 11 section 8: 25 queued runs (no start date) and a failed run minutes old."""
    for hours in (30, 26, 2):
        start = NOW - timedelta(hours=hours)
        airflow.dag_run("success", start, start + timedelta(minutes=20))
    failed_end = NOW - timedelta(minutes=4)
    failed = airflow.dag_run(
        "failed",
        NOW - timedelta(minutes=9),
        failed_end,
        failed_tasks=("extract_orders", "extract_users"),
    )
    for _ in range(25):
        airflow.dag_run("queued", None, None)
    airflow.dag_run("failed", NOW - timedelta(minutes=3), NOW, dag_id="other")

    if airflow.kind == "postgres":
        # The defect as users met it: the old query sees only queued runs on PostgreSQL.
        assert {row[0] for row in airflow.rows(OLD_README_QUERY)} == {"queued"}

    _pipeline(harness, airflow, OLD_README_QUERY, "old")
    _pipeline(harness, airflow, readme_query(airflow.kind), "new")
    harness.freeze(NOW)
    for job_id in ("old", "new"):
        result = harness.run("pipeline_failure", {"pipeline_id": job_id})
        assert result.outcome == "firing", (job_id, result.summary)
        newest = result.details["failed_runs"][0]
        # Read right whatever the session zone (Tokyo on PostgreSQL and MariaDB).
        assert newest["finished_at"] == failed_end.isoformat(), job_id
        assert result.details["last_finished_at"] == "2026-11-30T14:06:00+00:00"

    new = harness.run("pipeline_failure", {"pipeline_id": "new", "check_last_n_runs": 3})
    assert new.outcome == "firing", new.summary
    assert [run["run_id"] for run in new.details["runs"]] == [
        failed,
        "scheduled__0003",
        "scheduled__0002",
    ]
    assert new.details["failed_runs"][0]["error"] == "extract_orders, extract_users"
    assert "extract_orders, extract_users" in new.summary


def test_finished_runs_come_newest_first_whatever_the_query_orders(
    harness: Harness, airflow: Airflow
) -> None:
    early = NOW - timedelta(hours=5)
    airflow.dag_run("failed", early, early + timedelta(minutes=10))
    airflow.dag_run("running", NOW - timedelta(minutes=30), None)
    late = NOW - timedelta(hours=1)
    last = airflow.dag_run("success", late, late + timedelta(minutes=10))
    ascending = readme_query(airflow.kind) + " order by dr.start_date asc limit 1 -- oldest"
    _pipeline(harness, airflow, ascending)
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "daily"})
    assert result.outcome == "ok", result.summary
    assert [run["run_id"] for run in result.details["runs"]] == [last]
    two = harness.run("pipeline_failure", {"pipeline_id": "daily", "check_last_n_runs": 2})
    assert two.outcome == "firing", two.summary


def test_task_instance_states_skipped_and_null(harness: Harness, airflow: Airflow) -> None:
    """A task_instance query: skipped counts as not failed, NULL (not started) is not finished."""
    start = NOW - timedelta(minutes=40)
    run_id = airflow.dag_run("running", start, None)
    airflow.task(run_id, "extract", "success", start, start + timedelta(minutes=5))
    airflow.task(run_id, "branch_b", "skipped", start, start + timedelta(minutes=6))
    airflow.task(run_id, "report", None, None, None)
    airflow.task(run_id, "retry_me", "up_for_retry", start, start + timedelta(minutes=7))
    airflow.task(run_id, "gone", "removed", None, None)
    airflow.task(run_id, "waiting", "deferred", start, None)
    query = (
        "select task_id as run_id, state as status, start_date as started_at, "
        f"end_date as finished_at from task_instance where run_id = '{run_id}'"
    )
    _pipeline(harness, airflow, query, "tasks")
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "tasks", "check_last_n_runs": 10})
    assert result.outcome == "ok", result.summary
    assert [(r["run_id"], r["status"]) for r in result.details["runs"]] == [
        ("branch_b", "success"),
        ("extract", "success"),
    ]

    airflow.task(run_id, "load", "upstream_failed", start, start + timedelta(minutes=8))
    failing = harness.run("pipeline_failure", {"pipeline_id": "tasks", "check_last_n_runs": 10})
    assert failing.outcome == "firing", failing.summary
    assert failing.details["failed_runs"][0]["run_id"] == "load"


# --------------------------------------------------------------------------- status values

#: (status as the orchestrator writes it, what it means)
ORCHESTRATOR_STATES = [
    *[
        (state, "running")
        for state in (
            "queued",
            "scheduled",
            "running",
            "up_for_retry",
            "up_for_reschedule",
            "restarting",
            "deferred",
            "removed",
            "none",
        )
    ],
    ("success", "success"),
    ("skipped", "success"),
    ("failed", "failed"),
    ("upstream_failed", "failed"),
    ("shutdown", "failed"),
    # Dagster
    ("SUCCESS", "success"),
    ("FAILURE", "failed"),
    ("CANCELED", "failed"),
    *[(s, "running") for s in ("STARTED", "QUEUED", "NOT_STARTED", "STARTING", "CANCELING")],
    # dbt
    ("pass", "success"),
    ("warn", "success"),
    ("error", "failed"),
    ("fail", "failed"),
    ("runtime error", "failed"),
    (None, "running"),
]


def test_default_status_map_covers_airflow_dagster_and_dbt(
    harness: Harness, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (job TEXT, status TEXT, ended TIMESTAMP)"))
        for n, (state, _) in enumerate(ORCHESTRATOR_STATES):
            conn.execute(
                text("INSERT INTO runs VALUES (:job, :status, :ended)"),
                {"job": f"job{n}", "status": state, "ended": "2026-11-30 13:00:00"},
            )
    engine.dispose()
    harness.add_datasource("meta", url)
    alerts = []
    for n in range(len(ORCHESTRATOR_STATES)):
        query = (
            "select status, ended as started_at, ended as finished_at "
            f"from runs where job = 'job{n}'"
        )
        harness.add_job(
            "pipeline", f"job{n}", {"source": "sql", "datasource_id": "meta", "query": query}
        )
        alerts.append(("pipeline_failure", {"pipeline_id": f"job{n}"}))
    harness.freeze(NOW)
    results = harness.run_many(alerts)
    expected_outcome = {"success": "ok", "failed": "firing", "running": "ok"}
    for (state, meaning), result in zip(ORCHESTRATOR_STATES, results, strict=True):
        assert result.outcome == expected_outcome[meaning], (state, result.summary)
        statuses = [run["status"] for run in result.details["runs"]]
        assert statuses == ([] if meaning == "running" else [meaning]), state


def test_dagster_runs_with_epoch_seconds(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dagster.db'}"
    engine = create_engine(url)
    failed_end = NOW - timedelta(minutes=10)
    rows = [
        ("a1", "SUCCESS", NOW - timedelta(hours=3), NOW - timedelta(hours=2)),
        ("a2", "FAILURE", NOW - timedelta(minutes=20), failed_end),
        ("a3", "STARTED", NOW - timedelta(minutes=5), None),
        ("a4", "QUEUED", None, None),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE runs (run_id TEXT, pipeline_name TEXT, status TEXT, "
                "start_time REAL, end_time REAL)"
            )
        )
        for run_id, status, start, end in rows:
            conn.execute(
                text("INSERT INTO runs VALUES (:id, 'nightly', :status, :start, :end)"),
                {
                    "id": run_id,
                    "status": status,
                    "start": start.timestamp() if start else None,
                    "end": end.timestamp() if end else None,
                },
            )
    engine.dispose()
    harness.add_datasource("dagster", url)
    query = (
        "select run_id, status, start_time as started_at, end_time as finished_at "
        "from runs where pipeline_name = 'nightly'"
    )
    harness.add_job(
        "pipeline", "nightly", {"source": "sql", "datasource_id": "dagster", "query": query}
    )
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "nightly", "check_last_n_runs": 5})
    assert result.outcome == "firing", result.summary
    assert [(r["run_id"], r["finished_at"]) for r in result.details["runs"]] == [
        ("a2", failed_end.isoformat()),
        ("a1", (NOW - timedelta(hours=2)).isoformat()),
    ]


def test_naive_run_times_in_timestamp_timezone(harness: Harness, tmp_path: Path) -> None:
    """An in-house table written in New York wall-clock time."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE etl_runs (status TEXT, began TEXT, ended TEXT)"))
        conn.execute(
            text(
                "INSERT INTO etl_runs VALUES ('failed', '2026-11-30 08:00:00', "
                "'2026-11-30 08:30:00')"
            )
        )
    engine.dispose()
    harness.add_datasource("meta", url)
    query = "select status, began as started_at, ended as finished_at from etl_runs"
    harness.add_job(
        "pipeline",
        "etl",
        {
            "source": "sql",
            "datasource_id": "meta",
            "query": query,
            "timestamp_timezone": "America/New_York",
        },
    )
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "etl"})
    assert result.outcome == "firing", result.summary
    assert result.details["runs"][0]["started_at"] == "2026-11-30T13:00:00+00:00"
    assert result.details["runs"][0]["finished_at"] == "2026-11-30T13:30:00+00:00"


# --------------------------------------------------------------------------- driver names


@pytest.mark.postgres
@pytest.mark.mariadb
def test_orchestrator_driver_names_use_the_shipped_drivers(
    harness: Harness, pg_url: str, mariadb_database: str
) -> None:
    """Airflow's `postgresql+psycopg2://` and `mysql+mysqldb://` (and friends) just work."""
    assert pg_url.startswith("postgresql+psycopg://")
    assert mariadb_database.startswith("mysql+pymysql://")
    pasted = {
        "pg-psycopg2": pg_url.replace("postgresql+psycopg://", "postgresql+psycopg2://"),
        "pg-asyncpg": pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://"),
        "pg-pg8000": pg_url.replace("postgresql+psycopg://", "postgres+pg8000://"),
        "my-mysqldb": mariadb_database.replace("mysql+pymysql://", "mysql+mysqldb://"),
        "my-connector": mariadb_database.replace("mysql+pymysql://", "mysql+mysqlconnector://"),
        "my-aiomysql": mariadb_database.replace("mysql+pymysql://", "mariadb+aiomysql://"),
    }
    for name, url in pasted.items():
        harness.add_datasource(name, url)
    results = harness.run_many([("datasource_failure", {"datasource_id": name}) for name in pasted])
    for name, result in zip(pasted, results, strict=True):
        assert result.outcome == "ok", (name, result.summary)
    assert normalize_url(pasted["pg-psycopg2"]).startswith("postgresql+psycopg://")
    assert normalize_url(pasted["my-mysqldb"]).startswith("mysql+pymysql://")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"

    from datamantri_alerts.store.engine import open_store

    store = open_store(pasted["pg-psycopg2"])  # the store takes such URLs too
    try:
        assert store.dialect == "postgresql"
    finally:
        store.dispose()


# --------------------------------------------------------------------------- the query rewrite


def test_only_a_top_level_limit_makes_the_query_rewritten() -> None:
    plain = "select state as status from dag_run order by start_date desc"
    assert without_top_level_limit(plain, "postgresql") == plain
    assert without_top_level_limit(plain + " ;", "postgresql") == plain
    limited = without_top_level_limit(plain + " limit 20 offset 5", "postgresql")
    assert re.search(r"\b(ORDER|LIMIT|OFFSET)\b", limited, re.IGNORECASE) is None
    inner = "select * from (select state as status from dag_run limit 5) as x"
    assert without_top_level_limit(inner, "mysql") == inner
    union = "select 'failed' as status union all select 'success' as status limit 1"
    assert "limit" not in without_top_level_limit(union, "sqlite").lower()
    commented = "select status from runs -- no limit here"
    assert without_top_level_limit(commented, "sqlite") == commented
    unparsable = "select status from runs where (( limit 1"
    assert without_top_level_limit(unparsable, "postgresql") == unparsable
    assert without_top_level_limit(plain + " limit 3", "oracle") == plain + " limit 3"


def test_a_query_ending_in_a_comment_is_wrapped_intact(harness: Harness, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE etl_runs (status TEXT, ended TEXT)"))
        conn.execute(text("INSERT INTO etl_runs VALUES ('failed', '2026-11-30 13:00:00')"))
    engine.dispose()
    harness.add_datasource("meta", url)
    query = "select status, ended as started_at, ended as finished_at from etl_runs -- mine;"
    harness.add_job("pipeline", "etl", {"source": "sql", "datasource_id": "meta", "query": query})
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "etl"})
    assert result.outcome == "firing", result.summary


# --------------------------------------------------------------------------- shipped examples


def test_readme_and_example_state_the_airflow_query() -> None:
    readme = _squash((REPO_ROOT / "README.md").read_text())
    assert _squash(readme_query("postgres")) in readme
    for kind in ("mariadb", "sqlite"):
        assert _FAILED_TASKS[kind] in readme, kind
    example = yaml.safe_load((REPO_ROOT / "alerts.yaml.example").read_text())
    runs = next(p["runs"] for p in example["pipelines"] if p["id"] == "airflow-daily")
    assert _squash(runs["query"]) == _squash(readme_query("postgres"))
    for column in ("status", "started_at", "finished_at", "run_id", "status_map"):
        assert f"`{column}`" in readme, column


def test_a_query_without_the_contract_columns_is_named(harness: Harness, airflow: Airflow) -> None:
    """The wrapped statement fails on the missing column; the error names what is missing
    (on PostgreSQL after rolling back the failed transaction)."""
    airflow.dag_run("failed", NOW - timedelta(hours=1), NOW - timedelta(minutes=30))
    _pipeline(harness, airflow, "select run_id, state as status from dag_run", "bad")
    harness.freeze(NOW)
    result = harness.run("pipeline_failure", {"pipeline_id": "bad"})
    assert result.outcome == "error"
    assert "returns no column started_at, finished_at" in result.summary, result.summary
    assert "(it returned: run_id, status)" in result.summary
