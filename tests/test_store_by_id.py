"""`store.by_id.update_by_id` against SQLAlchemy's own executemany UPDATE, on every dialect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    exc,
    select,
    update,
)
from sqlalchemy.orm import Session

from datamantri_alerts.secrets import register_secret
from datamantri_alerts.store.by_id import update_by_id
from datamantri_alerts.store.engine import make_engine, normalize_url
from datamantri_alerts.store.types import JSONType, RedactedJSON, RedactedText, UTCDateTime

NUL_TEXT = "Segfault\x00core"
BAD_UTF8 = b"bad \xff\xfe bytes".decode("utf-8", "surrogateescape")
SECRET = "regSECRETvalue9"
AT = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _columns(*, with_default: bool = False) -> list[Column[Any]]:
    columns: list[Column[Any]] = [
        Column("id", Integer, primary_key=True),
        Column("summary", RedactedText, nullable=True),
        Column("details", RedactedJSON, nullable=True),
        Column("doc", JSONType, nullable=True),
        Column("at", UTCDateTime, nullable=True),
        Column("flag", Boolean, nullable=True),
        Column("holder", String(100), nullable=True),
        Column("count", Integer, nullable=False, default=0),
        # A name the named paramstyles (psycopg, PyMySQL) send escaped.
        Column("odd (name)", String(20), key="odd", nullable=True),
    ]
    if with_default:
        columns.append(Column("touched", Integer, nullable=True, onupdate=lambda: 7))
    return columns


@contextmanager
def two_tables(url: str, *, with_default: bool = False) -> Iterator[tuple[Engine, Table, Table]]:
    """Two alike new tables on the store at `url` (one row per id 1-4 in each), and the
    store's engine to them; dropped and disposed afterwards."""
    metadata = MetaData()
    suffix = uuid.uuid4().hex[:10]
    tables = [
        Table(f"{prefix}_{suffix}", metadata, *_columns(with_default=with_default))
        for prefix in ("quick", "general")
    ]
    engine = make_engine(normalize_url(url))
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(table.insert(), [{"id": i, "count": 0} for i in range(1, 5)])
        yield engine, tables[0], tables[1]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def _rows() -> list[dict[str, Any]]:
    """Rows of two sets of columns, interleaved: secrets, NUL, lone surrogates, None."""
    return [
        {
            "_id": 1,
            "summary": f"token {SECRET} leaked",
            "details": {"error": f"hook https://h.example/{SECRET}", "age": 12.5, "n": None},
            "doc": {"nul": NUL_TEXT, "bad": BAD_UTF8},
            "at": AT,
            "flag": True,
            "holder": None,
            "count": 3,
            "odd": "x%y",
        },
        {"_id": 2, "summary": None, "details": None, "at": None},
        {
            "_id": 3,
            "summary": NUL_TEXT,
            "details": {"nul": NUL_TEXT, BAD_UTF8: [SECRET, 1, True, None]},
            "doc": None,
            "at": AT + timedelta(hours=2),
            "flag": False,
            "holder": "host:1",
            "count": 0,
            "odd": None,
        },
        {"_id": 4, "summary": BAD_UTF8, "details": ["plain", 2.5], "at": AT},
    ]


def _general(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """SQLAlchemy's executemany UPDATE, one per set of columns (what `update_by_id` matches)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for group in groups.values():
        session.execute(update(table).where(table.c.id == bindparam("_id")), group)


def _sent(engine: Engine, table: Table, write: Any) -> list[tuple[str, str, bool]]:
    """What `write(session)` sent to the driver: (statement with the table named T, parameters'
    repr, executemany) of each UPDATE."""
    sent: list[tuple[str, str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, ctx: Any, many: bool):
        if statement.startswith("UPDATE"):
            sent.append((statement.replace(table.name, "T"), repr(parameters), many))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session, session.begin():
            write(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def _stored(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(table).order_by(table.c.id))]


@pytest.mark.parametrize("with_default", [False, True], ids=["quick", "onupdate-default"])
def test_update_by_id_sends_and_stores_what_sqlalchemys_executemany_does(
    any_dialect_url: str, with_default: bool
) -> None:
    """The same statements and parameters reach the driver, and the same rows are stored, as
    through SQLAlchemy's executemany: redaction, storable text, times, booleans, escaped
    parameter names; a table with a default computed on UPDATE takes SQLAlchemy's path."""
    register_secret(SECRET)
    with two_tables(any_dialect_url, with_default=with_default) as (engine, quick, general):
        for _ in range(2):  # the second time from the statements kept
            quick_sent = _sent(engine, quick, lambda s: update_by_id(s, quick, _rows()))
            general_sent = _sent(engine, general, lambda s: _general(s, general, _rows()))
            assert quick_sent == general_sent
            assert len(quick_sent) == 2 and all(many for _, _, many in quick_sent)
        stored = _stored(engine, quick)
        assert [row[1:] for row in stored] == [row[1:] for row in _stored(engine, general)]
    assert not any(SECRET in repr(row) for row in stored)
    assert stored[0][1] == "token *** leaked"
    assert stored[2][1] == "Segfault\\x00core"
    assert stored[3][1] == "bad \ufffd\ufffd bytes"
    assert stored[0][4] == AT and stored[1][4] is None


def test_update_by_id_raises_the_drivers_error_as_sqlalchemy_does(any_dialect_url: str) -> None:
    """A refused write raises SQLAlchemy's DBAPIError (what retrying write conflicts reads),
    its parameters hidden, and nothing of the transaction is written."""
    with two_tables(any_dialect_url) as (engine, quick, _):
        with (
            pytest.raises(exc.IntegrityError) as raised,
            Session(engine) as session,
            session.begin(),
        ):
            update_by_id(session, quick, [{"_id": 1, "count": 5}, {"_id": 2, "count": None}])
        assert raised.value.hide_parameters
        assert [row[7] for row in _stored(engine, quick)] == [0, 0, 0, 0]


def test_update_by_id_of_no_rows_sends_nothing(sqlite_url: str) -> None:
    with two_tables(sqlite_url) as (engine, quick, _):
        assert _sent(engine, quick, lambda s: update_by_id(s, quick, [])) == []


@pytest.mark.parametrize("with_default", [False, True], ids=["quick", "onupdate-default"])
def test_update_by_id_nulls_store_what_rows_of_none_do(any_dialect_url: str, with_default: bool):
    """Columns given as `nulls` are written as NULL in the statement, not as a parameter per
    row, and the rows stored are those of SQLAlchemy's executemany binding None to them."""
    register_secret(SECRET)
    nulls = ("holder", "at")
    with two_tables(any_dialect_url, with_default=with_default) as (engine, quick, general):
        for table in (quick, general):  # something to overwrite with NULL
            with Session(engine) as session, session.begin():
                _general(
                    session, table, [{"_id": i, "holder": "h", "at": AT} for i in (1, 2, 3, 4)]
                )
        rows = [{k: v for k, v in row.items() if k not in nulls} for row in _rows()]
        for _ in range(2):  # the second time from the statements kept
            quick_sent = _sent(engine, quick, lambda s: update_by_id(s, quick, rows, nulls=nulls))
            general_sent = _sent(
                engine,
                general,
                lambda s: _general(
                    s, general, [{**row, "holder": None, "at": None} for row in rows]
                ),
            )
            assert len(quick_sent) == len(general_sent) == 2
            for statement, parameters, many in quick_sent:
                assert many and "holder=NULL" in statement.replace(" ", "").replace(
                    '"', ""
                ).replace("`", "")
                assert "'h'" not in parameters
        stored = _stored(engine, quick)
        assert [row[1:] for row in stored] == [row[1:] for row in _stored(engine, general)]
    assert [(row[4], row[6]) for row in stored] == [(None, None)] * 4
    assert stored[0][1] == "token *** leaked"
