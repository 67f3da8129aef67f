"""Engine and session setup per dialect. Nothing here runs at import time."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from datamantri_alerts.store.types import MYSQL_DIALECTS
from datamantri_alerts.store.write_turns import turn_key, write_turn

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


#: What is said of a store URL that does not parse; the URL itself is never repeated, since
#: the parser's own text (SQLAlchemy's "invalid literal for int(): '...'") can be its password
#: when the `@host` is missing (`postgresql://user:password/db`).
STORE_URL_PROBLEM = (
    "not a database URL that SQLAlchemy can read (dialect, then user, password, host, port and "
    "database, as in sqlite:///path or postgresql://host/db); not repeated, it may hold a password"
)


def parse_store_url(url: str, field: str) -> URL:
    """The store URL, parsed, with our drivers (`normalize_url`); InputError on `field`
    (STORE_URL_PROBLEM: one line, exit 2, the URL not repeated) when it does not parse."""
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(normalize_url(url))
    except (ArgumentError, ValueError):
        from datamantri_alerts.errors import InputError

        raise InputError(STORE_URL_PROBLEM, field=field) from None


#: How long a process waits for another one's schema migration or WAL conversion (seconds).
LOCK_WAIT_SECONDS = 300

#: Bytes 18 and 19 of a SQLite file are its read and write format versions: 2 means WAL
#: (https://www.sqlite.org/fileformat2.html#the_database_header).
_WAL_FORMAT = b"\x02\x02"


def sqlite_lock_path(database: Path) -> Path:
    """The lock file beside a SQLite store, held while it is converted to WAL or migrated."""
    return database.with_suffix(".migrate.lock")


@contextmanager
def sqlite_file_lock(database: Path) -> Iterator[None]:
    """Hold the store's lock file (filelock: flock on POSIX, released if the process dies).

    Raises RuntimeFailure after LOCK_WAIT_SECONDS, naming what it waited for.
    """
    from filelock import FileLock, Timeout

    from datamantri_alerts.errors import RuntimeFailure

    path = sqlite_lock_path(database)
    lock = FileLock(path, timeout=LOCK_WAIT_SECONDS, mode=0o600)
    try:
        lock.acquire()
    except OSError as exc:  # a folder we may not write to, a lock file of another user
        raise RuntimeFailure(f"cannot take the store's lock {path}: {_os_reason(exc)}") from None
    except Timeout:
        raise RuntimeFailure(
            f"another process has held the store's lock for {LOCK_WAIT_SECONDS} s "
            "(migrating it); try again later"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _os_reason(exc: OSError) -> str:
    """The reason of a file system error without the path it repeats ("Permission denied")."""
    return exc.strerror or str(exc)


def _is_wal(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(20)[18:20] == _WAL_FORMAT


def sqlite_store_path(url: URL) -> Path | None:
    """The file of a SQLite store URL, or None for an in-memory store.

    A `file:` URI (`sqlite:///file:/srv/alerts.db?mode=rwc&uri=true`) names its file after the
    scheme; read as a plain path it made a folder `file:` in the current directory to hold the
    lock file, and two processes started from different folders did not share the lock.
    """
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(database)
        mode = url.query.get("mode")
        if parts.path in ("", ":memory:") or "memory" in (
            mode if isinstance(mode, tuple) else (mode,)
        ):
            return None
        return Path(unquote(parts.path)).expanduser()
    return Path(database).expanduser()


def _prepare_sqlite_file(path: Path) -> None:
    """Create the store file (and its folder) readable by its owner only, in WAL mode; an
    error of the file system (a folder without write permission, a path through a file, a
    folder where the file should be) is one line naming the path (RuntimeFailure), not a
    traceback.

    Changing the journal mode takes an exclusive lock that SQLite does not wait for: two first
    runs converting the same new file at once made one fail with "database is locked" (the
    busy timeout is not consulted when waiting could deadlock). The conversion therefore runs
    once, under the store's lock file; every later open finds the WAL header and skips it.
    """
    from datamantri_alerts.errors import RuntimeFailure

    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:  # a file where a folder of the path should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        if _is_wal(path):
            return
    except OSError as exc:
        raise RuntimeFailure(f"cannot open the store {path}: {_os_reason(exc)}") from None
    with sqlite_file_lock(path):
        if _is_wal(path):
            return
        import sqlite3

        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            mode = _set_wal(conn)
        finally:
            conn.close()
    if mode != "wal":
        log.warning("SQLite store is in journal_mode %s, not WAL; concurrent runs will wait", mode)


def _set_wal(dbapi_connection: Any) -> str:
    """Ask for WAL; the mode in effect (a file system without shared memory keeps the old one).

    A connection of a process that does not take the lock (an older release, the sqlite3 shell)
    can hold the write lock of a file not yet in WAL: the request is then repeated until the
    busy timeout, and the file is left in its mode rather than failing the run.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except Exception as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                return str(dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            time.sleep(0.02)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself, so writers can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    # Reading the mode waits on the busy timeout like any read; only a file that is not in WAL
    # yet (a network mount without shared memory, a store made elsewhere) is asked again.
    mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode != "wal" and mode != "memory":
        mode = _set_wal(dbapi_connection)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
    if mode not in ("wal", "memory"):
        log.warning("SQLite store is in journal_mode %s, not WAL; concurrent runs will wait", mode)
    else:
        log.debug("SQLite store connection opened: journal_mode=%s", mode)


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


#: 19 digits in a row: perhaps an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
#: The digits `_LONG_DIGITS` looks for: a text with fewer than 19 of them holds no 19 in a row.
_DIGITS = b"0123456789"
#: The orjson module, imported by the first `json_loads` (not at import: `alerts --help`).
_orjson: Any = None


def json_loads(text: str | bytes) -> Any:
    """The value `json.loads(text)` gives, for the store's JSON columns: by orjson, about seven
    times faster on the store's small objects (a run decodes each claimed alert's
    configuration). A text orjson refuses and `json` reads (`NaN`, `Infinity`, an escaped lone
    surrogate) goes to `json`, so the value, or the error, is json's; so does a text with 19
    digits in a row, where orjson would read an integer beyond 64 bits as a float.

    The digits are counted first (a copy of the text without them, a fraction of the
    regex's scan of a configuration): a text with fewer than 19 cannot have 19 in a row."""
    global _orjson
    orjson = _orjson
    if orjson is None:
        import orjson

        _orjson = orjson
    # ASCII digits are the same bytes in UTF-8 ("surrogatepass": any str encodes), and bytes
    # decoded with "replace" keep no digit they did not have.
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data) - len(data.translate(None, _DIGITS)) >= 19 and _LONG_DIGITS.search(
        text if isinstance(text, str) else text.decode("utf-8", "replace")
    ):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str) -> Engine:
    """The store's engine. `hide_parameters`: statement parameters (webhook URLs, data source
    URLs) never appear in SQLAlchemy's error text or logs. JSON columns are read with
    `json_loads`; they are written with `json.dumps`, as SQLAlchemy does by default (the
    result writer binds the text it made to check a value: `store.types.RedactedJSON`)."""
    parsed = parse_store_url(url, "store URL")  # the CLI checks it first, naming its field
    url = parsed.render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        # A `file:` URI's options (mode=ro, mode=rw) decide whether the file may be created.
        path = sqlite_store_path(parsed)
        if path is not None and not str(parsed.database).startswith("file:"):
            _prepare_sqlite_file(path)
            # SQLite does not expand `~`: it opens the file just made (`sqlite_store_path`), not
            # a path under a folder named `~` in the current directory.
            url = parsed.set(database=str(path)).render_as_string(hide_password=False)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
            json_deserializer=json_loads,
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
            json_deserializer=json_loads,
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
            json_deserializer=json_loads,
        )
    return create_engine(
        url, pool_pre_ping=True, hide_parameters=True, json_deserializer=json_loads
    )


T = TypeVar("T")

#: Tries of a write transaction the server rolled back to break a deadlock.
WRITE_CONFLICT_ATTEMPTS = 4


def is_write_conflict(exc: BaseException) -> bool:
    """Whether exc is a transaction the server rolled back whole to break a deadlock or a
    serialization conflict: MySQL/MariaDB error 1213 (ER_LOCK_DEADLOCK), PostgreSQL SQLSTATE
    40P01 (deadlock_detected) or 40001 (serialization_failure). Such a transaction is to be
    issued again (MySQL reference manual, "How to Minimize and Handle Deadlocks")."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if args and args[0] == 1213:
        return True
    return getattr(orig, "sqlstate", None) in ("40P01", "40001")


def retry_write_conflicts(
    work: Callable[[], T],
    *,
    undo: Callable[[], None] | None = None,
    attempts: int = WRITE_CONFLICT_ATTEMPTS,
) -> T:
    """`work()` (one write transaction), issued again when the server rolled it back to break
    a deadlock (`is_write_conflict`), after a short random pause, up to `attempts` times;
    `undo()` first takes back what the failed try changed outside the store. Any other error,
    or the last conflict, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as exc:
            if attempt == attempts or not is_write_conflict(exc):
                raise
            if undo is not None:
                undo()
            log.info(
                "a write transaction lost a deadlock; issuing it again (%d/%d)", attempt, attempts
            )
            time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


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
        #: SQLite: this process's threads take turns writing the file (`store.write_turns`).
        self._turn_key: str | None = None
        if self.engine.dialect.name == "sqlite":
            path = sqlite_store_path(self.engine.url)
            if path is not None:
                self._turn_key = turn_key(path)

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
        instead of failing with "database is locked" on lock upgrade; the threads of this process
        queue on `store.write_turns` first, each woken as the one before it ends.
        """
        if self._turn_key is None:
            with self._write_sessions() as session, session.begin():
                yield session
            return
        with (
            write_turn(self._turn_key),
            self._write_sessions() as session,
            session.begin(),
        ):
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    store = Store(url)
    if migrate:
        from datamantri_alerts.store.migrate import ensure_schema

        ensure_schema(store.engine)
    return store
