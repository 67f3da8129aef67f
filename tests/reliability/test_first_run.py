"""Concurrent first runs on an empty store: every process exits 0, the schema is made once.

Six `alerts evaluate` processes start together on a store that has no tables yet, as cron jobs
on several hosts do the first minute after installation. The migration lock of each dialect (a
file lock for SQLite, an advisory lock on PostgreSQL, `GET_LOCK()` on MySQL/MariaDB) lets one of
them create the schema while the others wait, then find it at head.

CI: one round per dialect. More rounds (a fresh database each):

    .venv/bin/pytest -m slow tests/reliability/test_first_run.py
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from datamantri_alerts.store.engine import normalize_url
from datamantri_alerts.store.migrate import SCHEMA_HEAD
from tests.conftest import scratch_mariadb_database, scratch_pg_database
from tests.evaluator.conftest import alerts_process

PROCESSES = 6
ROUNDS = [pytest.param(1, id="1-round"), pytest.param(5, id="5-rounds", marks=pytest.mark.slow)]


def first_runs(url: str) -> list[tuple[int, str, str]]:
    """Start PROCESSES evaluators together on url; (exit code, stdout, stderr) of each."""
    procs = [
        alerts_process(url, "--hostname", f"h{i}", "evaluate", "--json") for i in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def assert_all_started(url: str) -> None:
    results = first_runs(url)
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert "Traceback" not in err and "already exists" not in err, err[-2000:]
        assert json.loads(out)["evaluated"] == 0
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            runs = conn.execute(text("SELECT count(*) FROM evaluator_runs")).scalar()
    finally:
        engine.dispose()
    assert [v for (v,) in versions] == [SCHEMA_HEAD]
    assert runs == PROCESSES


@contextmanager
def _sqlite(tmp_path: Path, n: int) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / f'first-{n}.db'}"


def _rounds(make: Callable[[int], AbstractContextManager[str]], rounds: int) -> None:
    for n in range(rounds):
        with make(n) as url:
            assert_all_started(url)


@pytest.mark.parametrize("rounds", ROUNDS)
def test_six_first_runs_on_an_empty_sqlite_store(tmp_path: Path, rounds: int) -> None:
    _rounds(lambda n: _sqlite(tmp_path, n), rounds)


@pytest.mark.parametrize("rounds", ROUNDS)
def test_six_first_runs_on_an_empty_postgresql_store(rounds: int) -> None:
    # A database of its own each round, not a schema: the advisory lock is per database.
    _rounds(lambda n: scratch_pg_database("alerts_first"), rounds)


@pytest.mark.parametrize("rounds", ROUNDS)
def test_six_first_runs_on_an_empty_mariadb_store(rounds: int) -> None:
    """Without the GET_LOCK() migration lock, 2-5 of 6 failed: `Table 'alerts' already exists`."""
    _rounds(lambda n: scratch_mariadb_database(), rounds)
