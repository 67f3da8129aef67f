"""Schema migrations with Alembic, applied automatically on first use.

The fast path (store already at head) asks one query and never imports Alembic.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from datamantri_alerts.errors import RuntimeFailure

#: The newest revision shipped; a test checks it matches Alembic's head.
SCHEMA_HEAD = "nospam1_signal"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise concurrent first runs (two cron jobs starting on a new store)."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock_path = Path(engine.url.database).expanduser().with_suffix(".migrate.lock")
        with os.fdopen(os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600), "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(727274)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                conn.commit()
        return
    yield


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to revision; returns (before, after)."""
    from alembic import command

    with _migration_lock(engine):
        before = current_revision(engine)
        command.upgrade(_alembic_config(engine), revision)
        after = current_revision(engine)
    return before, after


def ensure_schema(engine: Engine) -> None:
    """Create and migrate a new store; bring an old one to head."""
    try:
        revision = current_revision(engine)
    except Exception as exc:  # the store is unreachable: a runtime failure, not a traceback
        from datamantri_alerts.secrets import redact_text

        raise RuntimeFailure(f"cannot open the store: {redact_text(str(exc))}") from exc
    if revision != SCHEMA_HEAD:
        upgrade(engine)
