"""Schema migrations with Alembic, applied automatically on first use.

The fast path (store already at head) asks one query and never imports Alembic. Concurrent first
runs are serialised by a lock per dialect (a file lock next to a SQLite store, an advisory lock on
PostgreSQL, a named `GET_LOCK()` on MySQL/MariaDB). A store whose revision this package does not
know was made by a newer release: every command refuses it with `StoreTooNewError` (exit 2)
instead of touching it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from datamantri_alerts.errors import AlertsError, RuntimeFailure
from datamantri_alerts.store.engine import (
    LOCK_WAIT_SECONDS,
    sqlite_file_lock,
    sqlite_store_path,
)
from datamantri_alerts.store.types import MYSQL_DIALECTS

#: The newest revision shipped; a test checks it matches Alembic's head.
SCHEMA_HEAD = "incident_key"

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: PostgreSQL advisory lock key and MySQL/MariaDB lock name held while migrating.
PG_LOCK_KEY = 727274
MYSQL_LOCK_NAME = "datamantri_alerts.migrate"


class StoreTooNewError(AlertsError):
    """The store's schema revision is unknown here: a newer release created or upgraded it."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__(
            "the store was created by a newer version of datamantri-alerts; upgrade the package"
        )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # BEGIN IMMEDIATE on SQLite: a deferred transaction that reads alembic_version and then
    # writes would fail at once (SQLITE_BUSY_SNAPSHOT) if another process committed in between.
    cfg.attributes["engine"] = engine.execution_options(sqlite_begin="IMMEDIATE")
    return cfg


def known_revisions() -> frozenset[str]:
    """Every revision this package ships (imports Alembic; off the fast path)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return frozenset(rev.revision for rev in script.walk_revisions())


def refuse_newer(revision: str | None) -> None:
    """Raise StoreTooNewError when revision is set and not one this package knows."""
    if revision is not None and revision != SCHEMA_HEAD and revision not in known_revisions():
        raise StoreTooNewError()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise concurrent first runs (two cron jobs starting on a new store)."""
    dialect = engine.dialect.name
    if dialect == "sqlite" and (path := sqlite_store_path(engine.url)) is not None:
        with sqlite_file_lock(path):
            yield
        return
    if dialect == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                conn.commit()
        return
    if dialect in MYSQL_DIALECTS:
        # A named lock belongs to this connection (kept open while migrating) and is released
        # by the server if the process dies. Names are server-wide, so the database is in it.
        name = f"{MYSQL_LOCK_NAME}.{engine.url.database or ''}"[:64]
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": LOCK_WAIT_SECONDS}
            ).scalar()
            conn.commit()
            if got != 1:
                raise RuntimeFailure(
                    f"another process has been migrating the store for {LOCK_WAIT_SECONDS} s; "
                    "try again later"
                )
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                conn.commit()
        return
    yield


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to revision; returns (before, after).

    Raises StoreTooNewError (and changes nothing) when the store is ahead of this package.
    """
    from alembic import command

    with _migration_lock(engine):
        before = current_revision(engine)
        refuse_newer(before)
        command.upgrade(_alembic_config(engine), revision)
        after = current_revision(engine)
    return before, after


def ensure_schema(engine: Engine) -> None:
    """Create and migrate a new store; bring an old one to head; refuse a newer one."""
    try:
        revision = current_revision(engine)
    except Exception as exc:  # the store is unreachable: a runtime failure, not a traceback
        from datamantri_alerts.secrets import redact_text

        # The driver's reason (SQLAlchemy's text adds a second line, "(Background on ...)").
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise RuntimeFailure(
            f"cannot open the store: {redact_text(reason[0] if reason else type(exc).__name__)}"
        ) from exc
    if revision != SCHEMA_HEAD:
        refuse_newer(revision)
        upgrade(engine)
