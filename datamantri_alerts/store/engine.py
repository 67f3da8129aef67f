"""Engine and session setup per dialect. Nothing here runs at import time."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from datamantri_alerts.store.types import MYSQL_DIALECTS

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


#: Backends whose URLs are given the driver we ship, whatever driver the URL names: users paste
#: their orchestrator's connection string (`postgresql+psycopg2://`, `mysql+mysqldb://`, ...).
SHIPPED_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


def normalize_url(url: str) -> str:
    """Pick the drivers we ship: psycopg 3 for PostgreSQL, PyMySQL for MySQL/MariaDB.

    Any driver named after `+` (`psycopg2`, `pg8000`, `asyncpg`, `mysqldb`, `mysqlconnector`,
    `aiomysql`, `mariadbconnector`, ...) is replaced; other backends are left as written.
    """
    parsed = make_url(url)
    backend = parsed.drivername.partition("+")[0]
    if backend in SHIPPED_DRIVERS:
        parsed = parsed.set(drivername=SHIPPED_DRIVERS[backend])
    return parsed.render_as_string(hide_password=False)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the store file (and its folder) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself, so writers can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    # The pragma answers with the mode in effect: a file system without shared memory
    # (some network mounts) keeps the old mode, and overlapping runs would then block.
    mode = str(cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
    if mode != "wal":
        log.warning("SQLite store is in journal_mode %s, not WAL; concurrent runs will wait", mode)
    else:
        log.debug("SQLite store connection opened: journal_mode=%s", mode)


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """The store's engine. `hide_parameters`: statement parameters (webhook URLs, data source
    URLs) never appear in SQLAlchemy's error text or logs."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            _prepare_sqlite_file(Path(database).expanduser())
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=20,
            connect_args={"connect_timeout": 10, "application_name": "datamantri-alerts"},
            hide_parameters=True,
        )
    if parsed.get_backend_name() in MYSQL_DIALECTS:
        # READ COMMITTED as on PostgreSQL: a locking read sees the latest committed lease, and
        # InnoDB takes no gap locks, so concurrent claims skip rows instead of deadlocking.
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=20,
            isolation_level="READ COMMITTED",
            connect_args={"connect_timeout": 10, "charset": "utf8mb4"},
            hide_parameters=True,
        )
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


@dataclass
class Store:
    """An engine plus session factories; built by the CLI callback or by tests."""

    url: str
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reading (and writes that cannot conflict)."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error.

        On SQLite it starts with BEGIN IMMEDIATE so concurrent writers queue on the busy timeout
        instead of failing with "database is locked" on lock upgrade.
        """
        with self._write_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    store = Store(url)
    if migrate:
        from datamantri_alerts.store.migrate import ensure_schema

        ensure_schema(store.engine)
    return store
