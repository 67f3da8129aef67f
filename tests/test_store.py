"""The store: migrations, dialect setup, permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.migrate import SCHEMA_HEAD, current_revision
from tests.conftest import Cli


def test_schema_head_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from datamantri_alerts.store.migrate import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD


def test_new_store_is_migrated_on_first_use(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert current_revision(store.engine) == SCHEMA_HEAD
        with store.session() as session:
            if store.dialect == "sqlite":
                assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30000
            names = set(
                session.execute(
                    text("SELECT 1")  # the tables exist: a query on each succeeds
                ).scalars()
            )
            assert names == {1}
            for table in (
                "alerts",
                "alert_history",
                "notifications",
                "datasources",
                "pipelines",
                "dashboards",
                "job_runs",
                "evaluator_runs",
            ):
                session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        store.dispose()


def test_history_indexes_exist(store_url: str) -> None:
    from sqlalchemy import inspect

    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            indexes = {tuple(i["column_names"]) for i in inspect(conn).get_indexes("alert_history")}
            alert_indexes = {tuple(i["column_names"]) for i in inspect(conn).get_indexes("alerts")}
        assert ("alert_id",) in indexes and ("triggered_at",) in indexes
        assert ("is_active",) in alert_indexes
    finally:
        store.dispose()


def test_db_upgrade_command(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    first = cli("db", "upgrade")
    assert first.exit_code == 0
    assert SCHEMA_HEAD in first.stdout
    again = cli("db", "upgrade")
    assert "already at" in again.stdout
    assert SCHEMA_HEAD in cli("db", "current").stdout
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0


def test_postgres_url_uses_psycopg3(pg_url: str) -> None:
    store = open_store(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert store.engine.dialect.driver == "psycopg"
    finally:
        store.dispose()


def test_store_keeps_microseconds_full_unicode_and_exact_names(store_url: str) -> None:
    """What MySQL/MariaDB lose unless asked: DATETIME(6), utf8mb4, binary (case-exact) names."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from datamantri_alerts.clock import FrozenClock
    from datamantri_alerts.schema import validate_alert
    from datamantri_alerts.services.alerts import create_alert
    from datamantri_alerts.store.models import Alert

    assert Cli(store_url)("pipelines", "add", "p1", "--name", "P1").exit_code == 0
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    names = {"Nightly ETL", "nightly etl", "Ünïcødé 🚨 ETL"}
    store = open_store(store_url)
    try:
        with store.transaction() as session:
            for name in sorted(names):
                document = {
                    "name": name,
                    "description": "ends at 😴 – «quoted»",
                    "condition_type": "pipeline_failure",
                    "condition_config": {"pipeline_id": "p1"},
                    "channels": ["email"],
                    "recipients": {"email": ["ops@example.com"]},
                    "muted_until": when.isoformat(),
                }
                create_alert(session, validate_alert(document), FrozenClock(when))
        with store.session() as session:
            rows = {a.name: a for a in session.scalars(select(Alert))}
        assert set(rows) == names
        emoji = rows["Ünïcødé 🚨 ETL"]
        assert emoji.description == "ends at 😴 – «quoted»"
        assert emoji.muted_until == when and emoji.created_at == when
        assert emoji.condition_config == {"pipeline_id": "p1"}
    finally:
        store.dispose()


def test_long_text_is_stored_whole(store_url: str) -> None:
    """Text columns hold more than MySQL's 64 KiB TEXT on every dialect (LONGTEXT there)."""
    from sqlalchemy import select

    from datamantri_alerts.store.models import JobRun

    cli = Cli(store_url)
    assert cli("pipelines", "add", "p1", "--name", "P1").exit_code == 0
    error = "é" * 70_000  # 140,000 bytes in UTF-8
    result = cli("runs", "record", "p1", "--status", "failed", "--error", error)
    assert result.exit_code == 0, result.output
    store = open_store(store_url)
    try:
        with store.session() as session:
            stored = session.scalars(select(JobRun.error)).one()
    finally:
        store.dispose()
    assert stored == error


def test_a_store_path_under_the_home_folder_is_the_file_that_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///~/alerts.db`: the file is made under $HOME and SQLite opens that file, not a
    path under a folder named `~` in the current directory (it does not expand `~`)."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)

    result = Cli("sqlite:///~/alerts.db")("list")

    assert result.exit_code == 0, result.output
    store = open_store(f"sqlite:///{home / 'alerts.db'}")
    try:
        assert current_revision(store.engine) == SCHEMA_HEAD
    finally:
        store.dispose()
    assert not (elsewhere / "~").exists()
