"""Hostile freshness identifiers through `alerts evaluate`: quoted, never executed, and exactly
one SELECT per evaluation on the data source.

The statements are counted with SQLAlchemy's `before_cursor_execute` event on the Engine class,
filtered to engines on the warehouse: the product's own engines, uninstrumented otherwise. Each
hostile table has a stale decoy column, and on PostgreSQL (where quoted names keep their case) a
stale lower-case `orders` sits beside `Orders`, so folding case would read the wrong table and
fire.

    .venv/bin/pytest tests/reliability/test_hostile_identifiers.py -s
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, text

from tests.conftest import Cli

#: (table, timestamp column): mixed case, reserved words, and an injection attempt.
NAMES = [
    ("Orders", "Loaded_At"),
    ("order", "select"),
    ("select", "from"),
    ("user", "order"),
    ('x"; DROP TABLE t;--', 'y"; DROP TABLE t;--'),
    ("t; DROP TABLE t", "ts"),
]


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each hostile table fresh (loaded now) with a stale decoy column; a victim table `t`.
    On PostgreSQL, where quoted names keep their case, also a stale lower-case `orders`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    fresh = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    stale = (datetime.now(UTC) - timedelta(days=3)).replace(tzinfo=None).isoformat(sep=" ")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        if request.param == "postgres":
            conn.execute(text("CREATE TABLE orders (loaded_at TEXT)"))
            conn.execute(text(f"INSERT INTO orders VALUES ('{stale}')"))
        for table, column in NAMES:
            conn.execute(text(f"CREATE TABLE {quoted(table)} ({quoted(column)} TEXT, x TEXT)"))
            conn.execute(text(f"INSERT INTO {quoted(table)} VALUES ('{fresh}', '{stale}')"))
    engine.dispose()
    return url


def _key(url: str) -> str:
    """What identifies the warehouse in an engine's URL (SQLite file path, PostgreSQL schema)."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite") else url.rsplit("%3D", 1)[1]


@pytest.fixture
def statements(warehouse: str) -> Iterator[list[str]]:
    """Every statement any engine on the warehouse file executes, in order."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _key(warehouse) in str(conn.engine.url):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_hostile_identifiers_are_quoted_and_one_select_runs_per_evaluation(
    cli: Cli, warehouse: str, statements: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("datasources", "add", "wh", "--name", "W", "--url", warehouse)
    for n, (table, column) in enumerate(NAMES):
        created = cli(
            *("create", "--name", f"fresh-{n}", "--type", "sla_breach"),
            *("--config", "datasource_id=wh", "--config", "expected_load_time=00:00"),
            *("--config", f"table={table}", "--config", f"timestamp_column={column}"),
            *("--channel", "slack", "--slack", "http://127.0.0.1:9/unused"),
        )
        assert created.exit_code == 0, created.output
    per_alert: dict[str, list[str]] = {}
    for n, (table, column) in enumerate(NAMES):
        before = len(statements)
        result = cli("evaluate", "--alert", f"fresh-{n}", "--json")
        assert result.exit_code == 0, result.output
        [row] = result.json()["results"]
        assert row["outcome"] == "ok", (table, column, row["summary"])
        per_alert[table] = statements[before:]
    # Every evaluation: exactly one SELECT, of max() over the quoted names; anything else is a
    # session setting (PostgreSQL: SET statement_timeout).
    for table, run in per_alert.items():
        selects = [s for s in run if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1, (table, run)
        assert all(s.upper().startswith("SET ") for s in run if s not in selects), run
    # Nothing was dropped, the victim still has its row.
    engine = create_engine(warehouse)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {"t", *(table for table, _ in NAMES)} <= tables
    with capsys.disabled():
        print(
            f"\n[hostile {warehouse.split(':')[0]}] {len(per_alert)} evaluations, statements on "
            f"the data source per evaluation: {[v for v in per_alert.values()][:2]} ..."
        )


def test_a_name_that_does_not_exist_is_an_error_and_runs_nothing_else(
    cli: Cli, warehouse: str, statements: list[str]
) -> None:
    assert cli("datasources", "add", "wh", "--name", "W", "--url", warehouse)
    created = cli(
        *("create", "--name", "missing", "--type", "sla_breach"),
        *("--config", "datasource_id=wh", "--config", "expected_load_time=00:00"),
        *("--config", 'table=t"; DROP TABLE t; --', "--config", "timestamp_column=id"),
        *("--channel", "slack", "--slack", "http://127.0.0.1:9/unused"),
    )
    assert created.exit_code == 0, created.output
    # (The error notification to the closed port is tried once: no backoff to wait for.)
    result = cli("evaluate", "--alert", "missing", "--json", env={"ALERTS_RETRY_ATTEMPTS": "1"})
    assert result.exit_code == 1  # the check could not evaluate
    [row] = result.json()["results"]
    assert row["outcome"] == "error" and "\n" not in row["summary"]
    selects = [s for s in statements if s.upper().startswith("SELECT")]
    assert len(selects) == 1
    assert all(s.upper().startswith("SET ") for s in statements if s not in selects)
    engine = create_engine(warehouse)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()
