"""Read-only, UTC sessions on data sources: the one setup every check's connection goes through.

`read_only_engine(url, connect_args)` builds the engines `checks.pool` pools for a run (every
`checks.sources.open_source` goes through them), so the
sql, query_slow, sla_breach, datasource_failure and job-runs `sql` paths share it:

- PostgreSQL: the startup packet sets `default_transaction_read_only=on` and `TimeZone=UTC`
  (libpq `options`, appended after the URL's own so ours win). Statements that return rows run
  through a server-side cursor, whose `DECLARE` is sent with its first `FETCH` in libpq's
  pipeline mode (`checks.sources._PgPortal`), always the extended protocol: one statement per
  execute, and only a query (SELECT, WITH, VALUES, TABLE) can be declared.
- MySQL/MariaDB: at connect, `SET time_zone = '+00:00'`, `SET SESSION TRANSACTION READ ONLY`
  (so even the transaction a DDL's implicit commit opens is read-only) and
  `START TRANSACTION READ ONLY`. `CLIENT.MULTI_STATEMENTS` is cleared from any `client_flag`
  and the URL's `init_command` is refused, so the server runs exactly what a check sends.
- SQLite: the file is opened with `mode=ro` and an authorizer allows reading only (SELECT, reads
  of columns, functions, recursive CTEs): ATTACH, VACUUM INTO, PRAGMA, BEGIN/SAVEPOINT and
  every write or CREATE (temporary tables too) are refused before they run. Python's sqlite3 runs
  one statement per execute.

`checks.sources` adds the rest: a statement whose first keyword is not a query's (`is_query`:
SELECT, WITH, VALUES, TABLE) is refused before it is sent, on every dialect, so MySQL's `KILL`,
`SET GLOBAL`, `DO`, `CALL`, `HANDLER` or `COMMIT` never run (a MySQL session would otherwise
execute them and only then show no result set); a statement that still returns no result set is
refused too, and no check transaction is ever committed.

What a session setting cannot stop: functions acting outside the transaction
(`pg_terminate_backend`, `pg_cancel_backend`, advisory locks, `dblink`), a MySQL
stored procedure that itself switches the session to read-write and commits, and MySQL
`SELECT ... INTO OUTFILE` where `secure_file_priv` allows it. Give checks a database user with
SELECT privileges only; the README says so.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

#: The wording of every refusal, so users see why a statement failed.
READ_ONLY_REASON = "the data source is opened read-only and a check may not change it"
ONE_STATEMENT_REASON = "a check runs exactly one statement"
NOT_A_QUERY_REASON = (
    "a check runs one read-only query that returns rows (SELECT, WITH, VALUES or TABLE)"
)

#: (backend, driver) pairs whose sessions this module knows how to make read-only.
_SUPPORTED = {
    ("sqlite", "pysqlite"),
    ("postgresql", "psycopg"),
    ("mysql", "pymysql"),
    ("mariadb", "pymysql"),
}

#: PostgreSQL startup settings (libpq `options`).
_PG_OPTIONS = "-c default_transaction_read_only=on -c TimeZone=UTC"

#: MySQL/MariaDB session setup, one statement each (multi-statements stay off).
_MYSQL_SETUP = (
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION TRANSACTION READ ONLY",
    "START TRANSACTION READ ONLY",
)

# pymysql.constants.CLIENT.MULTI_STATEMENTS; the driver is imported only when used.
_MYSQL_MULTI_STATEMENTS = 1 << 16

#: What the SQLite authorizer lets through: reading and computing, nothing else.
_SQLITE_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}

# Driver error codes meaning "refused because read-only" / "more than one statement".
_PG_READ_ONLY = "25006"  # read_only_sql_transaction
_PG_SYNTAX_ERROR = "42601"
# PostgreSQL refusals of writes hidden in a query (their sqlstates are generic ones).
_PG_WRITE_TEXT = (
    "data-modifying statements",  # WITH x AS (DELETE ...) SELECT under DECLARE
    "select ... into is not allowed",  # SELECT INTO creates a table
    "read-write mode must be set before any query",  # set_config('transaction_read_only')
)
_MYSQL_READ_ONLY = {1792, 1290}  # read-only transaction, --read-only server
_SQLITE_READ_ONLY_TEXT = ("readonly database", "not authorized", "authorization denied")
_MYSQL_SYNTAX_ERROR = 1064
_QUERY_KEYWORDS = {"SELECT", "WITH", "VALUES", "TABLE"}
# Whitespace, comments and opening parentheses before a statement's first keyword. MySQL's
# executable comments (`/*! ... */`, MariaDB's `/*M! ... */`) are code, not comments: a statement
# starting with one has no keyword we accept (`/*!DO GET_LOCK('x', 0), */ (SELECT 1)` is a DO).
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*(?!!|M!).*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")
_MULTI_STATEMENT_TEXT = (
    "cannot insert multiple commands into a prepared statement",
    "one statement at a time",
)


class SourceSetupError(ValueError):
    """The data source URL asks for something a read-only check session cannot allow."""


def read_only_engine(url: URL, connect_args: dict[str, Any], **pooling: Any) -> Engine:
    """An engine whose every connection is read-only and, where possible, in UTC.

    `url`: a parsed SQLAlchemy URL (driver already normalized); `connect_args`: the driver's
    timeouts; `pooling`: `create_engine` pool arguments (`pool_size`, `max_overflow`,
    `pool_timeout`; none: no pooling). The setup runs on every new connection (the engine's
    "connect" event), so a pooled connection is read-only from its first statement. Raises
    SourceSetupError for a URL that would weaken the session (MySQL `init_command`).
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool, QueuePool

    backend = url.get_backend_name()
    if (backend, url.get_driver_name()) not in _SUPPORTED:
        raise SourceSetupError(
            f"{url.drivername} cannot be opened read-only by checks; use SQLite (pysqlite), "
            "PostgreSQL (psycopg) or MySQL/MariaDB (pymysql)"
        )
    args = dict(connect_args)
    if backend == "sqlite":
        url = _sqlite_read_only_url(url)
    elif backend == "postgresql":
        url = _pg_read_only_url(url)
    elif backend in ("mysql", "mariadb"):
        if "init_command" in url.query or "init_command" in args:
            raise SourceSetupError(
                "init_command in a data source URL is not allowed: checks open read-only "
                "sessions and run only their own statements"
            )
        flag = int(str(url.query.get("client_flag", args.get("client_flag", 0))) or 0)
        url = url.difference_update_query(["client_flag"])
        args["client_flag"] = flag & ~_MYSQL_MULTI_STATEMENTS
    poolclass = QueuePool if pooling else NullPool
    # hide_parameters: a failing statement's error text never quotes its bound values.
    engine = create_engine(
        url, poolclass=poolclass, connect_args=args, hide_parameters=True, **pooling
    )
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_session)
    elif backend in ("mysql", "mariadb"):
        event.listen(engine, "connect", _mysql_session)
    return engine


def _sqlite_read_only_url(url: URL) -> URL:
    """The same file as a `mode=ro` URI (a check must neither write nor create a database)."""
    database = url.database or ""
    if not database or database == ":memory:":
        return url
    if not database.startswith("file:"):
        database = f"file:{database}"
    query = dict(url.query)
    query.update({"mode": "ro", "uri": "true"})
    return url.set(database=database, query=query)


def _pg_read_only_url(url: URL) -> URL:
    """The URL with our startup settings after its own `options` (the last -c wins)."""
    given = url.query.get("options", "")
    if isinstance(given, tuple):
        given = " ".join(given)
    return url.update_query_dict({"options": f"{given} {_PG_OPTIONS}".strip()})


def _sqlite_authorize(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_ALLOWED else sqlite3.SQLITE_DENY


def _sqlite_session(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.set_authorizer(_sqlite_authorize)


def _mysql_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for statement in _MYSQL_SETUP:
            cursor.execute(statement)
    finally:
        cursor.close()


def first_keyword(statement: str) -> str:
    """The statement's first keyword, upper-case ("" when it starts with something else)."""
    match = _LEADING.match(statement)
    word = _WORD.match(statement, match.end() if match else 0)
    return word.group(0).upper() if word else ""


def is_query(statement: str) -> bool:
    """Whether a statement's first keyword (after whitespace, comments and opening parentheses)
    is a query's: SELECT, WITH, VALUES or TABLE. Anything else is refused before it is sent."""
    return first_keyword(statement) in _QUERY_KEYWORDS


def refusal_reason(exc: BaseException, statement: str = "") -> str | None:
    """Why the driver refused a statement, when it was one of the read-only session's rules.

    `exc`: the driver's error, or SQLAlchemy's wrapper of it (whose `.statement` is the text
    a check sent); `statement`: the text sent, for a driver's own error. Returns one of the
    *_REASON texts, or None for any other failure.
    """
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(exc, DBAPIError) and exc.statement:
        statement = exc.statement
    text = str(orig).lower()
    if any(marker in text for marker in _MULTI_STATEMENT_TEXT):
        return ONE_STATEMENT_REASON
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == _PG_READ_ONLY or any(marker in text for marker in _PG_WRITE_TEXT):
        return READ_ONLY_REASON
    if sqlstate == _PG_SYNTAX_ERROR and first_keyword(statement) not in _QUERY_KEYWORDS:
        # Only a query can be declared as a cursor: anything else is refused by the parser.
        return NOT_A_QUERY_REASON
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in _MYSQL_READ_ONLY:
        return READ_ONLY_REASON
    if code == _MYSQL_SYNTAX_ERROR and ";" in statement.rstrip().rstrip(";"):
        # Multi-statements are off: the server reports the second statement as bad syntax.
        return ONE_STATEMENT_REASON
    if isinstance(orig, sqlite3.Error) and any(m in text for m in _SQLITE_READ_ONLY_TEXT):
        return READ_ONLY_REASON
    return None
