"""Data sources as checks use them: looked up in the store, opened from the run's pool, bounded.

Connections come from the run's `checks.pool.SourcePool` (one pooled engine per data source per
run, at most `--concurrency` connections each), with a connect timeout and socket timeouts per
driver, so a dead or black-holed server costs at most the check's timeout; a connection whose
statement failed or was cancelled is discarded, never reused. Queries can be bounded: the server
is told to cancel the statement (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`,
MySQL `max_execution_time`) and the run's one watchdog thread cancels it from outside if the
server did not, so no probe is ever left running.
Every connection is read-only and in UTC (`checks.readonly` sets it up, for every check), and
results are streamed: at most `max_rows` + 1 rows are ever fetched, so memory stays bounded
whatever a query returns. Error text leaving this module has the URL's password and every URL
masked.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from datamantri_alerts.checks.base import CannotEvaluate, CheckContext
from datamantri_alerts.checks.pool import (
    STARTUP_BOUND_KEY,
    WATCHDOG_GRACE_SECONDS,
    Limits,
    PooledConnection,
    SourcePool,
    psycopg_parts,
    statement_timeout_ms,
)
from datamantri_alerts.checks.readonly import (
    NOT_A_QUERY_REASON,
    first_keyword,
    is_query,
    refusal_reason,
)
from datamantri_alerts.checks.values import truncate
from datamantri_alerts.errors import RuntimeFailure
from datamantri_alerts.secrets import redact_text, resolve_env

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.sql import Executable

    from datamantri_alerts.checks.watchdog import Watchdog

#: Rows a statement keeps unless its caller says otherwise (sla_breach reads one).
DEFAULT_MAX_ROWS = 1000

#: Rows fetched from a server-side cursor per round trip.
FETCH_BATCH_ROWS = 1000

# Driver error codes that mean "the statement was cancelled", not "the statement is wrong".
_MYSQL_CANCELLED = {1317, 1969, 3024}  # interrupted, max_statement_time, max_execution_time
_PG_QUERY_CANCELED = "57014"
_CURSOR_NAMES = itertools.count(1)
#: `Connection.info` key: the MySQL session's statement bound (seconds).
_MYSQL_BOUND_KEY = "mysql_statement_bound"


@dataclass(frozen=True)
class SourceInfo:
    """A data source row, detached from the session that read it."""

    id: str
    name: str
    url: str  # as stored: may hold ${VAR}
    freshness: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.id if self.name in ("", self.id) else f"{self.name} ({self.id})"

    @cached_property
    def is_http(self) -> bool:
        """Whether the URL, `${VAR}` resolved, is http(s)://; an unset variable is judged on the
        text as written (using the source then reports the unset variable). Worked out once
        per `SourceInfo` (one per data source per run, `load_datasource`)."""
        try:
            return is_http_url(resolve_env(self.url.strip()))
        except RuntimeFailure:
            return is_http_url(self.url)


def is_http_url(url: str) -> bool:
    """Whether a (resolved) data source URL is an HTTP endpoint rather than a database."""
    return url.strip().lower().startswith(("http://", "https://"))


class SourceError(CannotEvaluate):
    """Connecting to a data source or running a statement on it failed (message redacted)."""

    def __init__(self, message: str, *, cancelled: bool = False, **details: Any) -> None:
        super().__init__(message, **details)
        self.cancelled = cancelled


def load_datasource(ctx: CheckContext, datasource_id: str) -> SourceInfo:
    """The data source from the store, read in a short session of its own (once per run)."""
    from datamantri_alerts.store.models import DataSource

    key = ("datasource", datasource_id)
    cached = ctx.run_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    with ctx.session_factory() as session:
        row = session.get(DataSource, datasource_id)
        if row is None:
            raise CannotEvaluate(f"data source {datasource_id!r} does not exist")
        source = SourceInfo(
            id=row.id, name=row.name, url=row.url, freshness=dict(row.freshness or {}) or None
        )
    ctx.run_cache[key] = source
    return source


def resolve_source_url(source: SourceInfo) -> tuple[str, list[str]]:
    """The usable URL and the secrets (password, resolved values) to keep out of error text."""
    try:
        url = resolve_env(source.url.strip())
    except RuntimeFailure as exc:
        raise CannotEvaluate(f"data source {source.id!r}: {exc}") from None
    secrets: list[str] = []
    if url != source.url.strip():
        secrets.append(url)
    if is_http_url(url):
        from urllib.parse import urlsplit

        password = urlsplit(url).password
    else:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            password = make_url(url).password
        except (ArgumentError, ValueError):
            raise CannotEvaluate(f"data source {source.id!r} has no valid SQLAlchemy URL") from None
    if password:
        secrets.append(str(password))
    return url, secrets


def describe_error(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One readable line for an exception, secrets and URLs masked."""
    from sqlalchemy.exc import DBAPIError

    inner: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        inner = exc.orig
    # psycopg's primary message, without the LINE/caret lines quoting our DECLARE wrapper.
    primary = getattr(getattr(inner, "diag", None), "message_primary", None)
    text = str(primary or inner).strip()
    if not text:
        text = type(inner).__name__
    elif isinstance(inner, TimeoutError | OSError) and type(inner).__name__ not in text:
        text = f"{type(inner).__name__}: {text}"
    return truncate(redact_text(text, secrets)) or ""


# --------------------------------------------------------------------------- databases


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    duration: float  # seconds
    #: The driver's type code per column (DB-API `cursor.description[i][1]`), e.g. to tell a
    #: MySQL TIMESTAMP (rendered in the session time zone) from a DATETIME.
    column_types: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class SourceConnection:
    """An open connection to a data source, with statement bounds per dialect."""

    source: SourceInfo
    engine: Engine
    #: The checked-out connection (`.dbapi` the driver's, `.sqlalchemy` SQLAlchemy's over it).
    connection: PooledConnection
    watchdog: Watchdog
    secrets: list[str] = field(default_factory=list)
    #: PostgreSQL statement_timeout in force in this checkout's transaction (seconds).
    _pg_bound: float | None = None
    #: A PostgreSQL `SET statement_timeout` for `_PgPortal` to send in its pipeline.
    _pg_setting: bytes | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_mariadb(self) -> bool:
        return bool(getattr(self.engine.dialect, "is_mariadb", False))

    @property
    def identifiers(self) -> Any:
        """The dialect's `IdentifierPreparer` (`quote`, `quote_schema`): for SQL text a check
        builds itself (`checks.newest`)."""
        return self.engine.dialect.identifier_preparer

    def _set_server_bound(self, seconds: float, *, in_pipeline: bool = False) -> bool:
        """Ask the server to cancel statements running longer than seconds.

        The bound the session already has is not sent again: PostgreSQL connections start
        with the bound of the check that opened them (`checks.pool`, a startup option), and a
        `SET` there is undone with the transaction (the check's ROLLBACK, or the pool's), so
        it is tracked per transaction; with `in_pipeline` the `SET` is left for `_PgPortal` to
        send in its pipeline, before its DECLARE (no round trip of its own). A MySQL session
        setting outlives the transaction, so it is tracked on the pooled connection
        (`Connection.info` travels with it).
        """
        if self.dialect == "postgresql":
            if self._pg_bound is None:
                self._pg_bound = self.connection.info.get(STARTUP_BOUND_KEY)
            if self._pg_bound != seconds:
                # In the check's transaction, undone with it.
                setting = f"SET statement_timeout = {statement_timeout_ms(seconds)}"
                if in_pipeline:
                    self._pg_setting = setting.encode()
                else:
                    self.connection.dbapi.execute(setting)
                self._pg_bound = seconds
            return True
        if self.dialect == "mysql":
            if self.connection.info.get(_MYSQL_BOUND_KEY) == seconds:
                return True
            self.connection.info.pop(_MYSQL_BOUND_KEY, None)
            if self.is_mariadb:
                setting = f"SET SESSION max_statement_time = {max(0.001, seconds):.3f}"
            else:
                setting = f"SET SESSION max_execution_time = {max(1, int(seconds * 1000))}"
            cursor = self.connection.dbapi.cursor()
            try:
                cursor.execute(setting)
            finally:
                cursor.close()
            self.connection.info[_MYSQL_BOUND_KEY] = seconds
            return True
        return False

    def _cancel_running(self) -> None:
        """Cancel what this connection is running, from the watchdog thread."""
        dbapi = self.connection.live_dbapi
        if dbapi is None:  # discarded: nothing runs on it
            return
        if self.dialect == "postgresql" and hasattr(dbapi, "cancel_safe"):
            dbapi.cancel_safe(timeout=5)
        elif self.dialect == "postgresql" and hasattr(dbapi, "cancel"):
            dbapi.cancel()
        elif self.dialect == "mysql" and hasattr(dbapi, "thread_id"):
            thread_id = int(dbapi.thread_id())
            with self.engine.connect() as killer:  # from the pool's overflow, never waits
                killer.exec_driver_sql(f"KILL QUERY {thread_id}")
        elif self.dialect == "sqlite" and hasattr(dbapi, "interrupt"):
            dbapi.interrupt()

    def execute(
        self,
        statement: str | Executable,
        *,
        bound: float | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        keep_rows: bool = True,
        params: dict[str, Any] | None = None,
    ) -> QueryResult:
        """Run one statement in the read-only session; with `bound`, it is cancelled once it
        runs that long. A string without `params` runs as written (colons are not binds).

        Rows are streamed (server-side cursor on PostgreSQL and MySQL/MariaDB, SQLite steps
        lazily): at most `max_rows` are kept and one more is read to know whether there were
        more (`truncated`); the rest is never fetched. `keep_rows=False` reads the result to
        its end instead, keeping none (a probe timing the whole query), in batches, so memory
        stays bounded either way. Raises SourceError (cancelled=True when the bound cut it off;
        a write or a second statement is refused with the reason).
        """
        if isinstance(statement, str) and not is_query(statement):
            # Refused before it is sent: a MySQL session runs KILL, SET GLOBAL, DO or CALL and
            # only then shows that there is no result set.
            keyword = first_keyword(statement) or "something else"
            raise SourceError(
                f"query on {self.source.label} refused: {NOT_A_QUERY_REASON} "
                f"(it starts with {keyword}; nothing was sent)"
            )
        alarm = None

        def cancel() -> None:
            # The statement may have ended meanwhile; then there is nothing to cancel.
            with contextlib.suppress(Exception):
                self._cancel_running()

        started = time.monotonic()
        try:
            if bound is not None:
                server_side = self._set_server_bound(
                    bound, in_pipeline=self._uses_portal(statement, params)
                )
                alarm = self.watchdog.schedule(
                    bound + (WATCHDOG_GRACE_SECONDS if server_side else 0.0), cancel
                )
                started = time.monotonic()
            columns, rows, truncated, column_types = self._fetch(
                statement, params or {}, max_rows, keep_rows
            )
            duration = time.monotonic() - started
        except SourceError:
            self._discard()
            raise
        except Exception as exc:
            self._discard()
            duration = time.monotonic() - started
            cancelled = (alarm is not None and alarm.went_off) or _is_cancellation(exc)
            message = describe_error(exc, self.secrets)
            written = statement if isinstance(statement, str) else ""
            reason = None if cancelled else refusal_reason(exc, written)
            if reason is not None:
                summary = f"query on {self.source.label} refused: {reason} ({message})"
            else:
                summary = f"query on {self.source.label} failed: {message}"
            raise SourceError(
                summary, cancelled=cancelled, duration_seconds=round(duration, 3)
            ) from None
        finally:
            if alarm is not None:
                alarm.cancel()
        if alarm is not None and alarm.went_off:
            self._discard()
            # Some drivers end a cancelled statement quietly (MySQL's SLEEP returns 1).
            raise SourceError(
                f"query on {self.source.label} was cancelled after {bound:g}s",
                cancelled=True,
                duration_seconds=round(duration, 3),
            )
        return QueryResult(
            columns=columns,
            rows=rows,
            truncated=truncated,
            duration=duration,
            column_types=column_types,
        )

    def _uses_portal(self, statement: str | Executable, params: dict[str, Any] | None) -> bool:
        """Whether `_fetch` runs this statement through `_PgPortal`."""
        return isinstance(statement, str) and not params and self.dialect == "postgresql"

    def _discard(self) -> None:
        """Never return this connection to the pool: its statement failed, was refused or
        cancelled, so its session state (an aborted transaction, a pending cancel) is unknown."""
        self._pg_bound = self._pg_setting = None  # a next statement gets a new connection
        with contextlib.suppress(Exception):
            self.connection.invalidate()

    def _fetch(
        self,
        statement: str | Executable,
        params: dict[str, Any],
        max_rows: int,
        keep_rows: bool,
    ) -> tuple[list[str], list[tuple[Any, ...]], bool, list[Any]]:
        """Execute with a streaming cursor.

        A query from config (a string without params) goes straight to the driver's streaming
        cursor, exactly as written (no bind parameters, no escaping, one FETCH for a small
        result); a SQLAlchemy statement or a string with params goes through SQLAlchemy with a
        fixed buffer of rows. Returns (columns, first max_rows rows, more rows exist, the
        driver's type code per column from `cursor.description`).
        """
        batch = max(1, min(max_rows + 1, FETCH_BATCH_ROWS) if keep_rows else FETCH_BATCH_ROWS)
        reader: Any
        portal = None
        if self._uses_portal(statement, params):
            reader = dbapi_cursor = None
            portal = _PgPortal(self.connection.dbapi)
        elif isinstance(statement, str) and not params:
            reader = dbapi_cursor = self._streaming_cursor()
        else:
            reader = dbapi_cursor = None
        try:
            if portal is not None:
                # Keeping rows, the first FETCH brings all a check keeps (max_rows + 1), so the
                # transaction ends in the same round trip; a probe reading to the end keeps it.
                setting, self._pg_setting = self._pg_setting, None
                portal.open(
                    statement,
                    max_rows + 1 if keep_rows else batch,
                    last=keep_rows,
                    setting=setting,
                )
                if keep_rows:  # its transaction ended with it, and a SET with it
                    self._pg_bound = None
                reader = dbapi_cursor = portal
                returns_rows = True
            elif dbapi_cursor is not None:
                dbapi_cursor.execute(statement)
                returns_rows = dbapi_cursor.description is not None
            else:
                from sqlalchemy import text

                stmt = text(statement) if isinstance(statement, str) else statement
                # yield_per: a fixed buffer of `batch` rows.
                reader = self.connection.sqlalchemy.execute(
                    stmt, params, execution_options={"yield_per": batch}
                )
                dbapi_cursor, returns_rows = reader.cursor, reader.returns_rows
            if not returns_rows:
                # MySQL runs COMMIT, SET, DO or LOCK TABLES without a result set; the check
                # could not have meant that (the session stays read-only whatever they did).
                raise SourceError(
                    f"query on {self.source.label} refused: {NOT_A_QUERY_REASON} "
                    "(the statement returned no result set)"
                )
            description = getattr(dbapi_cursor, "description", None) or []
            columns = [str(item[0]) for item in description]
            column_types = [item[1] for item in description]
            rows: list[tuple[Any, ...]] = []
            if not keep_rows:
                while reader.fetchmany(batch):
                    pass
                truncated = False
            else:
                rows = [tuple(r) for r in reader.fetchmany(max_rows + 1)]
                truncated = len(rows) > max_rows
                if truncated:
                    self._abandon_result(dbapi_cursor)
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()
        return columns, rows[:max_rows], truncated, column_types

    def _streaming_cursor(self) -> Any:
        """A DB-API cursor that streams: PyMySQL's unbuffered SSCursor; SQLite's own (steps
        lazily). PostgreSQL uses `_PgPortal`."""
        dbapi = self.connection.dbapi
        if self.dialect == "mysql":
            from pymysql.cursors import SSCursor

            return dbapi.cursor(SSCursor)  # type: ignore[union-attr]
        return dbapi.cursor()  # type: ignore[union-attr]

    def _abandon_result(self, dbapi_cursor: Any) -> None:
        """Stop a result that has more rows than we want, without reading them.

        PostgreSQL and SQLite close their cursor at once (`CLOSE`, statement reset). A MySQL
        streaming cursor would read the rest of the result on close (the protocol has no way
        to stop the server sending), so the connection is closed instead: the server's next
        write fails and it abandons the statement. The connection is not used again.
        """
        if self.dialect != "mysql":
            return
        # PyMySQL drains an unbuffered result when its cursor or the result object is
        # closed or collected; marking it finished and detaching the cursor stops that.
        unbuffered = getattr(dbapi_cursor, "_result", None)
        if unbuffered is not None:
            unbuffered.unbuffered_active = False
        dbapi_cursor.connection = None
        self.connection.invalidate()


class _PgPortal:
    """A PostgreSQL server-side cursor opened in one round trip, on libpq's pipeline directly.

    BEGIN (when no transaction is open), `DECLARE name NO SCROLL CURSOR WITHOUT HOLD FOR
    <query>`, the first `FETCH FORWARD n` and, when that FETCH brings all a check keeps, the
    ROLLBACK ending the transaction are queued in libpq's pipeline mode (`psycopg.pq`'s
    `PGconn`: `send_query_params` each, one `pipeline_sync`) and read back in one wait, so a
    check costs one round trip where a psycopg named cursor costs six (BEGIN, DECLARE, a portal
    Describe, FETCH, CLOSE, ROLLBACK). Rows are loaded by psycopg's own `Transformer` (the C
    loaders the connection's cursors use), so values are exactly what a cursor returns; driving
    libpq here instead of psycopg's `Connection.pipeline()` costs a fraction of the CPU.

    The guarantees are the named cursor's: every statement goes with the extended protocol
    (`PQsendQueryParams`), so the server refuses a second statement in the text; DECLARE
    accepts only a query (anything else is a syntax error); rows come `n` per FETCH, so memory
    stays bounded. Waiting goes through psycopg's `Connection.wait` (the socket, without the
    GIL), so the watchdog's cancel and the socket timeouts work as for any psycopg query. The
    portal is never closed on its own: the transaction it lives in ends with the ROLLBACK sent
    with it, or the pool's reset; a failed statement's connection is discarded.
    """

    def __init__(self, dbapi_connection: Any) -> None:
        self._conn = dbapi_connection
        self._name = f"datamantri_check_{next(_CURSOR_NAMES)}"
        #: (name, type oid) per column, as `cursor.description` items are read.
        self.description: list[tuple[str, int]] | None = None
        self._pending: list[tuple[Any, ...]] | None = None

    def open(
        self, statement: str, first: int, *, last: bool = False, setting: bytes | None = None
    ) -> None:
        """Declare the cursor for `statement` and fetch its first `first` rows (one round
        trip). With `last`, nothing more will be fetched: the transaction is rolled back in the
        same round trip (dropping the portal and undoing any session change the query made, as
        the pool's reset would, one round trip later). Raises the driver's error for the
        statement (the first one the server sent). `setting` (a `SET statement_timeout`) goes
        first in the same transaction, so it bounds the query and ends with the transaction."""
        encoding = self._conn.pgconn._encoding
        declare = f'DECLARE "{self._name}" NO SCROLL CURSOR WITHOUT HOLD FOR {statement}'
        commands = [declare.encode(encoding), self._fetch_sql(first)]
        if setting is not None:
            commands.insert(0, setting)
        if self._conn.pgconn.transaction_status == psycopg_parts().IDLE:
            commands.insert(0, b"BEGIN")
        if last:
            commands.append(b"ROLLBACK")
        self._pending = self._exchange(commands, encoding)

    def _fetch_sql(self, count: int) -> bytes:
        return f'FETCH FORWARD {max(1, int(count))} FROM "{self._name}"'.encode()

    def _exchange(self, commands: list[bytes], encoding: str) -> list[tuple[Any, ...]]:
        """Send `commands` in one pipeline behind one Sync, read every result; the rows of the
        one result that has rows (the FETCH). Raises the first error the server sent."""
        pg = psycopg_parts()
        conn, pgconn = self._conn, self._conn.pgconn
        results: list[Any] = []
        pgconn.enter_pipeline_mode()
        try:
            for command in commands:
                pgconn.send_query_params(command, None)
            pgconn.pipeline_sync()
            conn.wait(pg.send(pgconn))
            while True:
                batch = conn.wait(pg.fetch_many(pgconn))
                if not batch or batch[0].status == pg.PIPELINE_SYNC:
                    break
                results.extend(batch)
        finally:
            # After the Sync's result nothing is pending; after a broken read the connection
            # is discarded, whatever state it is in.
            with contextlib.suppress(Exception):
                pgconn.exit_pipeline_mode()
        found = None
        for result in results:
            status = result.status
            if status == pg.FATAL_ERROR:
                raise pg.errors.error_from_result(result, encoding=encoding)
            if status == pg.TUPLES_OK:
                found = result
        if found is None:
            raise pg.errors.InternalError("the FETCH of a check's cursor returned no rows result")
        if self.description is None:
            self.description = [
                ((found.fname(i) or b"").decode(encoding), found.ftype(i))
                for i in range(found.nfields)
            ]
        transformer = pg.Transformer(conn)  # psycopg's loaders for this connection
        transformer.set_pgresult(found)
        rows: list[tuple[Any, ...]] = transformer.load_rows(0, found.ntuples, tuple)
        transformer.set_pgresult(None)
        return rows

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        """The next rows: those fetched with the DECLARE first, then `size` per FETCH."""
        if self._pending is not None:
            rows, self._pending = self._pending, None
            return rows
        return self._exchange([self._fetch_sql(size)], self._conn.pgconn._encoding)

    def close(self) -> None:
        """Nothing to release on the client (the portal ends with its transaction)."""


def _is_cancellation(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) == _PG_QUERY_CANCELED:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CANCELLED:
        return True
    return "interrupted" in str(orig).lower() and "sqlite" in type(orig).__module__


@contextmanager
def open_source(
    source: SourceInfo,
    timeout: float,
    *,
    query_bound: float | None = None,
    pool: SourcePool | None,
) -> Iterator[SourceConnection]:
    """A connection to a database data source from the run's `pool` (`ctx.sources`; a pool of
    its own when None, disposed after), returned to it after, or discarded when the body raised
    or a statement failed.

    `pool` has no default on purpose: a check that forgot `pool=ctx.sources` opened a session
    per evaluation (1,000 sessions per run for 1,000 `freshness` alerts); outside a run (e.g.
    `alerts datasources check`) pass `pool=None` explicitly.

    `timeout` bounds waiting for a free pooled connection, connecting and each socket read; pass
    `query_bound` when statements may legitimately run longer (they are then cut off by
    `execute(bound=...)`). Raises SourceError when no connection could be had.
    """
    if source.is_http:
        raise CannotEvaluate(f"data source {source.label} is an HTTP endpoint, not a database")
    if pool is None:
        with (
            SourcePool(1) as own,
            open_source(source, timeout, query_bound=query_bound, pool=own) as conn,
        ):
            yield conn
        return
    url, secrets = pool.resolved(source.url, lambda: resolve_source_url(source))
    limits = Limits(timeout, query_bound)
    try:
        entry = pool.engine_for(url, limits)
    except Exception as exc:
        message = describe_error(exc, secrets)
        raise CannotEvaluate(f"data source {source.label}: {message}") from None
    try:
        connection = entry.acquire(limits)
    except Exception as exc:
        raise SourceError(
            f"cannot connect to {source.label}: {describe_error(exc, secrets)}"
        ) from None
    conn = SourceConnection(source, entry.engine, connection, pool.watchdog, secrets)
    pool.track(conn)
    failed = True
    try:
        yield conn
        failed = False
    finally:
        pool.untrack(conn)
        entry.release(connection, failed=failed)


# --------------------------------------------------------------------------- reachability


@dataclass
class ProbeResult:
    """Whether a data source answered: `SELECT 1` for a database, GET → 2xx for HTTP."""

    reachable: bool
    summary: str
    duration_ms: int
    details: dict[str, Any] = field(default_factory=dict)


def probe(
    source: SourceInfo,
    timeout: float,
    *,
    follow_redirects: bool = False,
    pool: SourcePool | None,
) -> ProbeResult:
    """Reach the data source once, through the run's `pool` (a pool of its own when None,
    given explicitly, as for `open_source`).
    Raises CannotEvaluate only for configuration problems.

    HTTP sources are probed by `checks.http_source` (`follow_redirects` applies to them only).
    """
    started = time.monotonic()
    if source.is_http:
        from datamantri_alerts.checks.http_source import probe_http

        session = pool.http_session() if pool is not None else None
        return probe_http(source, timeout, follow_redirects=follow_redirects, session=session)
    from sqlalchemy import literal_column, select

    try:
        with open_source(source, timeout, pool=pool) as conn:
            conn.execute(select(literal_column("1")), bound=timeout)
    except SourceError as exc:
        return ProbeResult(False, str(exc), _ms_since(started), {"error": str(exc)})
    elapsed = _ms_since(started)
    return ProbeResult(True, f"{source.label} answered SELECT 1 in {elapsed} ms", elapsed)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
