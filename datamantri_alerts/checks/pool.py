"""The run-scoped pool of data source connections: one pooled engine per data source per run.

A `SourcePool` belongs to one run of checks (the runner in `services.checking` creates it and
closes it at the end; `datasources check` makes one of its own). It holds:

- one SQLAlchemy engine per data source URL (SQLite: per URL and timeout, its busy timeout being
  fixed at connect), with at most `concurrency` connections checked out at once. A checkout waits
  for a free connection no longer than the check's own timeout. Between checks a healthy
  connection is kept by the run (rolled back), not returned to SQLAlchemy's pool, so a check does
  not pay for SQLAlchemy's checkout and checkin. Every new connection goes through
  `checks.readonly` (read-only, UTC, one statement per execute) and gets the timeouts of the
  check that opened it (SQLAlchemy's `do_connect` event); a reused MySQL connection gets the
  socket read timeout of the check now using it. A connection whose statement failed, timed out,
  was cancelled or refused, or whose check raised, is invalidated (closed), never returned.
- one `Watchdog` thread cancelling statements that outlive their bound (`checks.watchdog`),
- one guarded HTTP session for HTTP data sources (`checks.http_source.datasource_session`),
  which keeps no cookies between checks.

`close()` disposes every engine, closes the HTTP session and lets the watchdog end once the
alarms still armed (for checks the runner gave up on) have gone off or been cancelled.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from datamantri_alerts.checks.watchdog import Watchdog

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import URL

    from datamantri_alerts.net.session import GuardedSession

#: Seconds the outside watchdog waits beyond a server-side bound before cancelling itself.
WATCHDOG_GRACE_SECONDS = 1.0

#: `Connection.info` key: the statement_timeout a PostgreSQL connection started with (seconds).
STARTUP_BOUND_KEY = "startup_statement_bound"


def statement_timeout_ms(seconds: float) -> int:
    """PostgreSQL's statement_timeout for a bound (milliseconds, at least 1: 0 means none)."""
    return max(1, int(seconds * 1000))


@dataclass(frozen=True)
class PsycopgParts:
    """What `_PgPortal` and the pool use of psycopg, imported once (psycopg is loaded only
    for a PostgreSQL data source; an import inside a function costs a lookup per call)."""

    errors: Any
    Transformer: Any
    send: Any
    fetch_many: Any
    IDLE: Any
    IN_TRANSACTION: tuple[Any, ...]
    PIPELINE_SYNC: Any
    FATAL_ERROR: Any
    TUPLES_OK: Any


@cache
def psycopg_parts() -> PsycopgParts:
    from psycopg import errors, pq
    from psycopg.adapt import Transformer
    from psycopg.generators import fetch_many, send

    status = pq.TransactionStatus
    return PsycopgParts(
        errors=errors,
        Transformer=Transformer,
        send=send,
        fetch_many=fetch_many,
        IDLE=status.IDLE,
        IN_TRANSACTION=(status.INTRANS, status.INERROR),
        PIPELINE_SYNC=pq.ExecStatus.PIPELINE_SYNC,
        FATAL_ERROR=pq.ExecStatus.FATAL_ERROR,
        TUPLES_OK=pq.ExecStatus.TUPLES_OK,
    )


class CheckoutTimeout(TimeoutError):
    """No connection to the data source became free within the check's timeout."""


@dataclass(frozen=True)
class Limits:
    """The time bounds of the check opening a connection (seconds)."""

    timeout: float
    query_bound: float | None = None


def connect_args(url: URL, limits: Limits) -> dict[str, Any]:
    """Driver arguments bounding connect and socket waits for one check.

    `query_bound`: the longest statement that will be run; socket reads wait a little longer
    than that, so the server's own cancellation arrives before the client gives up.
    """
    timeout = limits.timeout
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        return {"timeout": timeout, "check_same_thread": False}
    if backend == "postgresql" and driver == "psycopg":
        seconds = max(2, math.ceil(timeout))  # libpq's minimum is 2 s
        return {
            "connect_timeout": seconds,
            "application_name": "datamantri-alerts check",
            # A peer that vanishes mid-query is noticed instead of waited on forever.
            "keepalives": 1,
            "keepalives_idle": seconds,
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": int(timeout * 1000),
        }
    if backend in ("mysql", "mariadb") and driver == "pymysql":
        return {
            "connect_timeout": timeout,
            "read_timeout": mysql_read_timeout(limits),
            "write_timeout": timeout,
        }
    return {}


def mysql_read_timeout(limits: Limits) -> float:
    """PyMySQL's socket read timeout for a check: past its statement bound plus the grace."""
    if limits.query_bound is None:
        return limits.timeout
    return max(limits.timeout, limits.query_bound) + WATCHDOG_GRACE_SECONDS * 2


class SourceEngine:
    """One data source's pooled engine and the gate keeping checkouts ≤ concurrency."""

    def __init__(self, url: URL, limits: Limits, concurrency: int) -> None:
        from sqlalchemy import event

        from datamantri_alerts.checks.readonly import read_only_engine

        self.url = url
        self.default_limits = limits
        self.disposed = False
        self.gate = threading.BoundedSemaphore(concurrency)
        # The gate bounds checkouts; the pool's overflow is for MySQL `KILL QUERY` connections
        # opened by the watchdog, which never wait for a check's connection to come back.
        self.engine: Engine = read_only_engine(
            url,
            connect_args(url, limits),
            pool_size=concurrency,
            max_overflow=concurrency,
            pool_timeout=max(1.0, limits.timeout),
        )
        self._local = threading.local()
        #: Connections between checks, kept checked out of SQLAlchemy's pool.
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()
        self._pg_options: str | None = None
        event.listen(self.engine, "do_connect", self._apply_limits)

    def _apply_limits(self, _dialect: Any, record: Any, _cargs: Any, cparams: Any) -> None:
        """Give a new connection the timeouts of the check opening it (same thread); a
        PostgreSQL one also starts with its statement bound, saving a `SET` per check."""
        limits = getattr(self._local, "limits", None) or self.default_limits
        cparams.update(connect_args(self.url, limits))
        if self.url.get_backend_name() != "postgresql":
            return
        if self._pg_options is None:  # `cparams` is reused by every connect: keep the base
            self._pg_options = str(cparams.get("options", ""))
        bound = limits.query_bound
        options = self._pg_options
        if bound is not None:
            options = f"{options} -c statement_timeout={statement_timeout_ms(bound)}"
            record.info[STARTUP_BOUND_KEY] = bound
        else:
            record.info.pop(STARTUP_BOUND_KEY, None)
        cparams["options"] = options.strip()

    @contextmanager
    def checkout(self, limits: Limits) -> Iterator[PooledConnection]:
        """A connection within `limits.timeout` (CheckoutTimeout), invalidated when the body
        raises or `invalidate()` was called, else kept for the next check (rolled back).

        Connections come from this run's own list of idle ones, else from SQLAlchemy's pool
        (a new connection is made there, set up read-only): a connection stays checked out of
        SQLAlchemy's pool between checks, so a check pays for neither `Engine.connect()` nor
        the pool's checkout and checkin. The gate keeps checkouts ≤ concurrency, and a
        connection is only ever made when none is idle, so a source never has more sessions
        than that. One whose check used SQLAlchemy (a statement object, bind parameters)
        goes back through SQLAlchemy's own checkin instead.
        """
        connection = self.acquire(limits)
        failed = True
        try:
            yield connection
            failed = False
        finally:
            self.release(connection, failed=failed)

    def acquire(self, limits: Limits) -> PooledConnection:
        """`checkout` without the context manager: a connection within `limits.timeout`
        (CheckoutTimeout); hand it back with `release`."""
        if not self.gate.acquire(timeout=limits.timeout):
            raise CheckoutTimeout(
                f"no connection became free within {limits.timeout:g}s "
                "(every pooled connection is busy with other checks)"
            )
        try:
            return self._take(limits)
        except BaseException:
            self.gate.release()
            raise

    def release(self, connection: PooledConnection, *, failed: bool) -> None:
        """Hand back what `acquire` gave: invalidated when its check `failed` (raised)."""
        try:
            if failed:
                connection.invalidate()
            self._give_back(connection)
        finally:
            self.gate.release()

    def _take(self, limits: Limits) -> PooledConnection:
        with self._idle_lock:
            fairy = self._idle.pop() if self._idle else None

        def connect() -> Any:
            self._local.limits = limits
            try:
                return self.engine.raw_connection()
            finally:
                self._local.limits = None

        if fairy is None:
            fairy = connect()
        dbapi = fairy.dbapi_connection
        if hasattr(dbapi, "_read_timeout"):  # PyMySQL: reads are bounded per check
            dbapi._read_timeout = mysql_read_timeout(limits)
            dbapi._write_timeout = limits.timeout
        return PooledConnection(self.engine, fairy, connect)

    def _give_back(self, connection: PooledConnection) -> None:
        """Keep a healthy connection for the next check (its transaction rolled back); close
        one that was invalidated or comes back after the run ended (a check the runner gave up
        on). A connection broken by a cancel has nothing left to close."""
        with contextlib.suppress(Exception):
            if self.disposed:
                connection.invalidate()
            if connection.sqlalchemy_used or connection.invalidated:
                connection.release()
                return
            if not self._reset(connection.fairy.dbapi_connection):
                connection.invalidate()
                connection.release()
                return
            with self._idle_lock:
                if not self.disposed:
                    self._idle.append(connection.fairy)
                    return
            connection.invalidate()
            connection.release()

    def _reset(self, dbapi: Any) -> bool:
        """End what the check left open (as the pool's reset-on-return does): whether the
        connection can be used again."""
        pgconn = getattr(dbapi, "pgconn", None)
        if pgconn is not None:
            status = pgconn.transaction_status
            if status == psycopg_parts().IDLE:  # the check's ROLLBACK went with it
                return True
            if status not in psycopg_parts().IN_TRANSACTION:
                return False
        dbapi.rollback()
        return True

    def close_idle(self) -> None:
        """Return the idle connections to SQLAlchemy's pool (before `engine.dispose()`)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for fairy in idle:
            with contextlib.suppress(Exception):
                fairy.close()


class PooledConnection:
    """One check's connection: the driver's connection (`dbapi`), and a SQLAlchemy
    `Connection` over it built only when a statement goes through SQLAlchemy (`sqlalchemy`).

    After `invalidate()` the connection is closed; a statement the same check still sends
    gets a new connection, as a SQLAlchemy `Connection` revalidates after `invalidate()`.
    """

    __slots__ = ("_connect", "_dead", "_fairy", "_sqlalchemy", "engine", "invalidated")

    def __init__(self, engine: Engine, fairy: Any, connect: Callable[[], Any]) -> None:
        self.engine = engine
        self._fairy = fairy  # SQLAlchemy's pooled connection (`PoolProxiedConnection`)
        self._connect = connect  # a new pooled connection, set up for this check
        self._dead = False  # `_fairy` was invalidated
        self._sqlalchemy: Connection | None = None
        #: Whether this check invalidated a connection (it is then not kept for the next).
        self.invalidated = False

    @property
    def fairy(self) -> Any:
        """The pooled connection in use now."""
        if self._sqlalchemy is not None:
            return self._sqlalchemy.connection  # revalidated by SQLAlchemy when invalidated
        if self._dead:
            with contextlib.suppress(Exception):
                self._fairy.close()
            self._fairy = self._connect()
            self._dead = False
        return self._fairy

    @property
    def dbapi(self) -> Any:
        """The driver's connection."""
        if self._sqlalchemy is None and not self._dead:
            return self._fairy.dbapi_connection
        return self.fairy.dbapi_connection

    @property
    def live_dbapi(self) -> Any:
        """The driver's connection if one is open now, else None (never connects: for a
        cancel from another thread)."""
        if self._sqlalchemy is not None:
            if self._sqlalchemy.invalidated or self._sqlalchemy.closed:
                return None
            return self._sqlalchemy.connection.dbapi_connection
        return None if self._dead else self._fairy.dbapi_connection

    @property
    def info(self) -> dict[Any, Any]:
        """What travels with the pooled connection (`ConnectionRecord.info`)."""
        return self.fairy.info  # type: ignore[no-any-return]

    @property
    def sqlalchemy_used(self) -> bool:
        return self._sqlalchemy is not None

    @property
    def sqlalchemy(self) -> Connection:
        """A SQLAlchemy `Connection` on this same connection (made on first use)."""
        if self._sqlalchemy is None:
            from sqlalchemy import Connection

            fairy = self.fairy
            self._sqlalchemy = Connection(self.engine, connection=fairy)
        return self._sqlalchemy

    def rollback(self) -> None:
        """End the connection's transaction (e.g. a failed one, before the next statement)."""
        if self._sqlalchemy is not None:
            self._sqlalchemy.rollback()
        else:
            self.dbapi.rollback()

    def invalidate(self) -> None:
        """Close the connection now: it is never handed to another check."""
        self.invalidated = True
        with contextlib.suppress(Exception):
            if self._sqlalchemy is not None:
                self._sqlalchemy.invalidate()
            elif not self._dead:
                self._dead = True
                self._fairy.invalidate()

    def release(self) -> None:
        """Give the connection back to SQLAlchemy's pool (closed there if invalidated)."""
        if self._sqlalchemy is not None:
            self._sqlalchemy.close()
        else:
            self._fairy.close()


class SourcePool:
    """Pooled engines, one watchdog and one HTTP session for one run of checks.

    `concurrency`: connections per data source checked out at once (the runner's slots).
    Use as a context manager, or call `close()`.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.watchdog = Watchdog()
        self._engines: dict[tuple[str, float | None], SourceEngine] = {}
        self._lock = threading.Lock()
        self._http: GuardedSession | None = None
        self._in_flight: set[Any] = set()
        self._closed = False
        #: A data source URL as configured -> (the URL resolved, its secrets), for this run.
        self._resolved: dict[str, tuple[str, list[str]]] = {}

    def __enter__(self) -> SourcePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def engine_for(self, url: str, limits: Limits) -> SourceEngine:
        """The pooled engine for a resolved data source URL, created on first use.

        Raises SourceSetupError for a URL a read-only session cannot allow, ArgumentError for
        an unusable URL, RuntimeError once the pool is closed.
        """
        if self._closed:
            raise RuntimeError("the run's source pool is closed")
        # The common case, an engine made earlier in the run, costs two dict lookups.
        entry = self._engines.get((url, None)) or self._engines.get((url, limits.timeout))
        if entry is not None:
            return entry
        from sqlalchemy.engine import make_url

        from datamantri_alerts.store.engine import normalize_url

        parsed = make_url(normalize_url(url))
        sqlite = parsed.get_backend_name() == "sqlite"
        key = (url, limits.timeout if sqlite else None)
        with self._lock:
            if self._closed:
                raise RuntimeError("the run's source pool is closed")
            entry = self._engines.get(key)
            if entry is None:
                entry = SourceEngine(parsed, limits, self.concurrency)
                self._engines[key] = entry
            return entry

    def resolved(
        self, configured: str, resolve: Callable[[], tuple[str, list[str]]]
    ) -> tuple[str, list[str]]:
        """`resolve()` for a configured URL, once per run (`${VAR}` values and the URL's
        secrets do not change within a run; parsing a URL per check cost ~0.1 ms)."""
        found = self._resolved.get(configured)
        if found is None:
            found = self._resolved[configured] = resolve()
        return found

    def track(self, source_connection: Any) -> None:
        """Remember a connection running a check's statements (see `cancel_all`)."""
        with self._lock:
            self._in_flight.add(source_connection)

    def untrack(self, source_connection: Any) -> None:
        with self._lock:
            self._in_flight.discard(source_connection)

    def cancel_all(self) -> None:
        """Cancel whatever every checked-out connection is running (on SIGTERM/interrupt)."""
        with self._lock:
            running = list(self._in_flight)
        for source_connection in running:
            with contextlib.suppress(Exception):
                source_connection._cancel_running()

    def http_session(self) -> GuardedSession:
        """The run's session for HTTP data sources (created on first use, no cookies kept)."""
        from datamantri_alerts.checks.http_source import datasource_session

        with self._lock:
            if self._http is None:
                self._http = datasource_session(self.concurrency)
            return self._http

    def close(self) -> None:
        """Dispose every engine and the HTTP session; pending statement alarms still go off."""
        with self._lock:
            self._closed = True
            engines, self._engines = list(self._engines.values()), {}
            http, self._http = self._http, None
        for entry in engines:
            entry.disposed = True
            entry.close_idle()
            with contextlib.suppress(Exception):
                entry.engine.dispose()
        if http is not None:
            with contextlib.suppress(Exception):
                http.close()
        self.watchdog.stop()
