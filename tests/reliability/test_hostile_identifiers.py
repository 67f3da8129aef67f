"""Hostile freshness identifiers through `alerts evaluate`: quoted, never executed, and exactly
one SELECT per evaluation on the data source.

The statements are recorded by the driver of every connection the product checks out to the
warehouse (SQLite's trace callback, libpq's protocol trace): a check sends its query straight to
the driver's cursor, past SQLAlchemy's execution events, so the driver is what sees it. Each
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
from sqlalchemy.pool import Pool

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


class Sent:
    """The statements sent to the warehouse so far, in order (`sent()`): SQLite's trace callback
    and libpq's protocol trace, installed on each warehouse connection when it is checked out.
    A PostgreSQL cursor's query is read out of its `DECLARE ... FOR <query>`."""

    def __init__(self, warehouse: str, tmp_path: Path) -> None:
        self.warehouse = warehouse
        self.sqlite = warehouse.startswith("sqlite")
        self.recorded: list[str] = []
        self.traces: list[Path] = []
        self.handles: list[Any] = []
        self.traced: set[int] = set()
        self.tmp_path = tmp_path

    def on_connect(self, _dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        """Mark the warehouse's connections as they are made (the URL is known only here)."""
        if _key(self.warehouse) in f"{cargs} {cparams}":
            record.info["traced_warehouse"] = True

    def on_checkout(self, dbapi: Any, record: Any, _proxy: Any) -> None:
        """Trace a warehouse connection when it leaves SQLAlchemy's pool for a check (the
        run's pool keeps it for the next checks)."""
        if not record.info.get("traced_warehouse"):
            return
        if self.sqlite:
            dbapi.set_trace_callback(self.recorded.append)
            return
        if id(dbapi) in self.traced:
            return
        from psycopg import pq

        self.traced.add(id(dbapi))
        path = self.tmp_path / f"libpq-{len(self.traces)}.trace"
        handle = path.open("w")
        self.traces.append(path)
        self.handles.append(handle)
        dbapi.pgconn.trace(handle.fileno())
        dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def __call__(self) -> list[str]:
        if self.sqlite:
            return list(self.recorded)
        out: list[str] = []
        for handle in self.handles:
            handle.flush()
        for path in self.traces:
            for line in path.read_text().splitlines():
                fields = line.split("\t")
                if len(fields) > 3 and fields[0] == "F" and fields[2] in ("Parse", "Query"):
                    text = fields[3]
                    text = text[text.index('"', text.index('"') + 2) + 1 : text.rindex('"')]
                    out.append(_query_of(text))
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.close()


def _query_of(statement: str) -> str:
    """The query a `DECLARE name ... CURSOR ... FOR <query>` runs; other statements as sent."""
    head, found, query = statement.partition(" CURSOR WITHOUT HOLD FOR ")
    return query if found and head.upper().startswith("DECLARE") else statement


#: Statements a check may send around its one query: transaction and cursor control, session
#: settings.
CONTROL = ("SET ", "BEGIN", "ROLLBACK", "COMMIT", "FETCH ", "CLOSE ", "PRAGMA ")


@pytest.fixture
def statements(warehouse: str, tmp_path: Path) -> Iterator[Sent]:
    """Every statement the product sends to the warehouse, in order (call it for the list)."""
    sent = Sent(warehouse, tmp_path)
    event.listen(Engine, "do_connect", sent.on_connect)
    event.listen(Pool, "checkout", sent.on_checkout)
    try:
        yield sent
    finally:
        event.remove(Engine, "do_connect", sent.on_connect)
        event.remove(Pool, "checkout", sent.on_checkout)
        sent.close()


def test_hostile_identifiers_are_quoted_and_one_select_runs_per_evaluation(
    cli: Cli, warehouse: str, statements: Sent, capsys: pytest.CaptureFixture[str]
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
        before = len(statements())
        result = cli("evaluate", "--alert", f"fresh-{n}", "--json")
        assert result.exit_code == 0, result.output
        [row] = result.json()["results"]
        assert row["outcome"] == "ok", (table, column, row["summary"])
        per_alert[table] = statements()[before:]
    # Every evaluation: exactly one SELECT, of max() over the quoted names; anything else is
    # transaction or cursor control or a session setting.
    for table, run in per_alert.items():
        selects = [s for s in run if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1, (table, run)
        assert selects[0].upper().startswith("SELECT MAX("), selects
        assert all(s.upper().startswith(CONTROL) for s in run if s not in selects), run
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
    cli: Cli, warehouse: str, statements: Sent
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
    sent = statements()
    selects = [s for s in sent if s.upper().startswith("SELECT")]
    # SQLite refuses the SELECT while preparing it (no such table), so it never runs and its
    # trace never sees it; PostgreSQL receives it and fails it.
    assert len(selects) == (0 if statements.sqlite else 1), sent
    assert all(s.upper().startswith(CONTROL) for s in sent if s not in selects), sent
    engine = create_engine(warehouse)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()
