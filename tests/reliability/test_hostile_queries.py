"""Hostile queries through `alerts evaluate`: no check can change a data source, on any dialect.

For SQLite, PostgreSQL and MariaDB, each query below (writes, DDL, a second statement, session
settings that would lift read-only mode, sequence moves, file writers) is configured as a `sql`
alert, as a `query_slow` probe and as the `sql` runs source of a pipeline_failure alert. One
`alerts evaluate` runs them all; every outcome must be `error`, and the data source's contents
(tables, row counts, sequence positions, and for SQLite the files next to the database) must be
identical before and after.

    .venv/bin/pytest tests/reliability/test_hostile_queries.py -s
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect, text

from tests.checks import servers
from tests.conftest import MARIADB_URL, Cli, require_service

#: Shared by every dialect: plain writes, DDL and a second statement after a query.
COMMON = [
    "drop table u",
    "select 1; drop table u",
    "select id from u; delete from u",
    "insert into u values (9)",
    "update u set id = id + 10",
    "delete from u",
    "create table w (x integer)",
    "commit; drop table u",
]

HOSTILE: dict[str, list[str]] = {
    "sqlite": [
        *COMMON,
        "pragma query_only = 0",
        "attach 'evil.db' as evil",
        "vacuum into 'copy.db'",
        "create temp table t (x)",
        "begin immediate",
        "replace into u values (1)",
        "with x(n) as (select 5) insert into u select n from x",
        "pragma journal_mode = delete",
    ],
    "postgresql": [
        *COMMON,
        "set default_transaction_read_only = off; delete from u",
        "set session characteristics as transaction read write",
        "select nextval('s')",
        "select setval('s', 100)",
        "with gone as (delete from u returning id) select id from gone",
        "select * into u_copy from u",
        "create temporary table t as select 1 as x",
        "truncate u",
        "select set_config('transaction_read_only', 'off', false), id from u",
        "copy u to stdout",
        "lock table u in access exclusive mode",
    ],
    "mysql": [
        *COMMON,
        "set session transaction read write",
        "truncate table u",
        "create temporary table t (x int)",
        "lock tables u write",
        "select nextval(s)",
        "call add_row()",
        "rename table u to u2",
        "select id from u for update",
        "create table w2 as select * from u",
        "select 1 into @x",
        "alter table u add column y int",
    ],
}


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A data source with tables u (3 rows) and v (2 rows), a sequence where the dialect has
    them, and on MariaDB a procedure that inserts."""
    if request.param == "sqlite":
        folder = tmp_path / "warehouse"
        folder.mkdir()
        yield _seed(f"sqlite:///{folder / 'w.db'}")
    elif request.param == "postgres":
        yield _seed(request.getfixturevalue("pg_url"))
    else:
        require_service("MariaDB", "127.0.0.1", 3306)
        with servers.mariadb_scratch_database(MARIADB_URL) as url:
            yield _seed(url)


def _seed(url: str) -> str:
    engine = create_engine(url)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (id INTEGER)"))
        conn.execute(text("INSERT INTO u VALUES (1), (2), (3)"))
        conn.execute(text("CREATE TABLE v (id INTEGER)"))
        conn.execute(text("INSERT INTO v VALUES (1), (2)"))
        if dialect in ("postgresql", "mysql"):
            conn.execute(text("CREATE SEQUENCE s"))
        if dialect == "mysql":
            conn.execute(
                text("CREATE PROCEDURE add_row() BEGIN INSERT INTO u VALUES (7); SELECT 1; END")
            )
    engine.dispose()
    return url


def snapshot(url: str) -> dict[str, Any]:
    """Tables and their row counts, sequence positions, and files beside a SQLite database."""
    engine = create_engine(url)
    dialect = engine.dialect.name
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}
            state: dict[str, Any] = {"tables": counts}
            if dialect == "postgresql":
                state["s"] = tuple(conn.execute(text("SELECT last_value, is_called FROM s")).one())
            if dialect == "mysql":
                state["s"] = conn.execute(text("SELECT next_not_cached_value FROM s")).scalar()
    finally:
        engine.dispose()
    if dialect == "sqlite":
        folder = Path(url.removeprefix("sqlite:///")).parent
        files = {p.name for p in folder.iterdir()} - {"w.db-wal", "w.db-shm", "w.db-journal"}
        state["files"] = sorted(files)
    return state


def _definitions(url: str, queries: list[str]) -> dict[str, Any]:
    alerts: list[dict[str, Any]] = []
    pipelines: list[dict[str, Any]] = []
    for n, query in enumerate(queries):
        alerts.append(
            {
                "name": f"sql-{n}",
                "condition_type": "sql",
                "condition_config": {"datasource_id": "wh", "query": query, "timeout_seconds": 20},
            }
        )
        alerts.append(
            {
                "name": f"probe-{n}",
                "condition_type": "query_slow",
                "condition_config": {
                    "datasource_id": "wh",
                    "threshold_seconds": 10,
                    "timeout_seconds": 20,
                    "query": query,
                },
            }
        )
        pipelines.append(
            {
                "id": f"job-{n}",
                "name": f"job {n}",
                "runs": {"source": "sql", "datasource_id": "wh", "query": query},
            }
        )
        alerts.append(
            {
                "name": f"runs-{n}",
                "condition_type": "pipeline_failure",
                "condition_config": {"pipeline_id": f"job-{n}", "timeout_seconds": 20},
            }
        )
    return {
        "datasources": [{"id": "wh", "name": "Warehouse", "url": url}],
        "pipelines": pipelines,
        "alerts": alerts,
    }


def test_no_hostile_query_changes_the_data_source(
    cli: Cli, source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dialect = source.split(":", 1)[0].split("+", 1)[0]
    queries = HOSTILE[dialect]
    assert len(queries) >= 10
    before = snapshot(source)
    definitions = tmp_path / "alerts.yaml"
    definitions.write_text(yaml.safe_dump(_definitions(source, queries)), encoding="utf-8")
    synced = cli("sync", str(definitions))
    assert synced.exit_code == 0, synced.output
    # SQLite resolves relative ATTACH / VACUUM INTO paths against the working directory.
    result = cli("evaluate", "--json")
    assert result.exit_code == 1, result.output  # some checks could not evaluate
    outcomes = {row["name"]: row for row in result.json()["results"]}
    assert len(outcomes) == 3 * len(queries)
    not_errors = {
        name: (row["outcome"], row["summary"])
        for name, row in outcomes.items()
        if row["outcome"] != "error"
    }
    assert not_errors == {}
    for row in outcomes.values():
        assert "refused" in row["summary"] or "failed" in row["summary"], row["summary"]
    assert snapshot(source) == before
    assert not Path("evil.db").exists() and not Path("copy.db").exists()
    refused = sum("refused" in row["summary"] for row in outcomes.values())
    with capsys.disabled():
        print(
            f"\n[hostile queries {dialect}] {len(queries)} queries x 3 paths: all error "
            f"({refused} with a read-only/one-statement reason); contents unchanged: {before}"
        )
