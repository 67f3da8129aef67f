"""UPDATE many rows by id: one executemany per set of columns written (the result writer's).

`update_by_id` sends what SQLAlchemy's executemany of `update(table).where(id == :_id)` sends,
the same SQL and the same parameters (the statement compiled as SQLAlchemy compiles it, each
value through the statement's own bind processors, so redaction and storable text are those
of the column types), without SQLAlchemy's per-row parameter building: the statement is
compiled once per engine and set of columns, and each row's parameters are built in one pass.
That building was about four fifths of the UPDATE's cost per row (5,000 alerts: ≈ 110 ms of
≈ 140 ms; the executemany itself ≈ 19 ms).

The parameters go through `Connection.exec_driver_sql` on the session's connection: the same
transaction, cursor events (`before_cursor_execute`) and error wrapping (`DBAPIError`, which
`store.engine.retry_write_conflicts` reads). A statement this cannot build as SQLAlchemy does
(defaults computed on UPDATE, parameters expanded at execution, a bind no row gives) takes
SQLAlchemy's general path.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, null, update
from sqlalchemy.engine import Engine

#: The key of a row's id (its other keys are the columns written).
ID_KEY = "_id"

#: How many statements are kept per engine (a batch writes a few sets of columns; a run a few
#: dozen at most).
_KEPT_PER_ENGINE = 256


@dataclass(frozen=True)
class _Prepared:
    """An UPDATE compiled for one engine and set of columns, and how a row becomes its
    parameters: what `DefaultExecutionContext._init_compiled` does per parameter set."""

    sql: str
    positional: bool
    #: For each parameter sent, in order: its name (named paramstyles), the row key that
    #: gives it and the bind processor (None: the value as it is).
    binds: tuple[tuple[str, str, Callable[[Any], Any] | None], ...]
    sequence: Callable[[list[Any]], Sequence[Any]]

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        binds = self.binds
        if self.positional:
            sequence = self.sequence
            return [
                sequence(
                    [
                        row[key] if process is None else process(row[key])
                        for _, key, process in binds
                    ]
                )
                for row in rows
            ]
        return [
            {
                name: row[key] if process is None else process(row[key])
                for name, key, process in binds
            }
            for row in rows
        ]


#: engine -> (table, columns, columns set to NULL) -> its statement prepared (None: the
#: general path). Keyed by engine, not dialect: the bind processors refer to the dialect,
#: which would keep a key of its own alive.
_prepared: weakref.WeakKeyDictionary[
    Engine, dict[tuple[Table, tuple[str, ...], tuple[str, ...]], Any]
] = weakref.WeakKeyDictionary()


def _statement(table: Table, nulls: tuple[str, ...] = ()) -> Any:
    statement = update(table).where(table.c.id == bindparam(ID_KEY))
    if nulls:
        statement = statement.values({name: null() for name in nulls})
    return statement


def update_by_id(
    session: Any,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    nulls: tuple[str, ...] = (),
) -> None:
    """UPDATE `table`'s rows by their `id` (each row's `_id`, its other keys the columns to
    write): one executemany per set of columns written, so rows sharing one (most of a batch)
    share a statement, in the order the sets first occur.

    `nulls`: columns (not keys of the rows) every row sets to NULL, written as `NULL` in the
    statement (`.values(column=null())`), not bound per row: the same row stored, and SQLite's
    driver adapts every None parameter through a failed attribute lookup (≈ 1.6k instructions
    each)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    if not by_columns:
        return
    connection = session.connection()
    for columns, group in by_columns.items():
        prepared = _prepare(connection.engine, table, columns, nulls)
        if prepared is None:
            session.execute(_statement(table, nulls), group)
        else:
            connection.exec_driver_sql(prepared.sql, prepared.parameters(group))


_NOT_KEPT: Any = object()


def _prepare(
    engine: Engine, table: Table, columns: tuple[str, ...], nulls: tuple[str, ...]
) -> _Prepared | None:
    kept = _prepared.get(engine)
    if kept is None:
        kept = _prepared.setdefault(engine, {})
    key = (table, columns, nulls)
    # One lookup: another thread's `clear()` between a membership test and a read would fail.
    prepared = kept.get(key, _NOT_KEPT)
    if prepared is not _NOT_KEPT:
        return prepared  # type: ignore[no-any-return]
    prepared = _compile(engine, table, columns, nulls)
    if len(kept) >= _KEPT_PER_ENGINE:
        kept.clear()
    kept[key] = prepared
    return prepared


def _compile(
    engine: Engine, table: Table, columns: tuple[str, ...], nulls: tuple[str, ...]
) -> _Prepared | None:
    """The UPDATE as SQLAlchemy compiles it for an executemany of rows with keys `columns`
    (and `nulls` set to NULL), or None where its parameters are more than the rows' values
    through bind processors."""
    dialect = engine.dialect
    compiled: Any = _statement(table, nulls).compile(
        dialect=dialect, column_keys=list(columns), for_executemany=True
    )
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch  # a default computed in Python for each row
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.schema_translate_map
        or compiled.implicit_returning
    ):
        return None
    processors = compiled._bind_processors
    key_of = {name: bind.key for bind, name in compiled.bind_names.items()}
    if set(key_of.values()) != set(columns) or any(
        not (process is None or callable(process)) for process in processors.values()
    ):
        return None  # a bind no row gives (a default), or a tuple type's processors
    if compiled.positional:
        names = list(compiled.positiontup)
        sent = names
    else:
        names = list(key_of)
        escaped = compiled.escaped_bind_names or {}
        sent = [escaped.get(name, name) for name in names]
    return _Prepared(
        sql=compiled.string,
        positional=bool(compiled.positional),
        binds=tuple(
            (name_sent, key_of[name], processors.get(name))
            for name, name_sent in zip(names, sent, strict=True)
        ),
        sequence=dialect.execute_sequence_format,
    )
