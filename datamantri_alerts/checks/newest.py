"""The SQL that reads the newest value of a column: `SELECT max(col) FROM source [WHERE (f)]`.

Shared by `freshness` and `sla_breach`. Table, schema and column names are identifiers quoted
by the data source's own dialect (SQLAlchemy's `IdentifierPreparer`: doubled `"` on
PostgreSQL, doubled backticks on MySQL/MariaDB; always backticks on SQLite, see `_backticks`),
so a hostile name stays one name.
`query` and `filter` are SQL the alert's author wrote, embedded as a derived table and a
parenthesised condition; the statement runs read-only like a `sql` alert's query. The text is
sent without parameters, so `%` and `:` in it are just characters. One aggregate over the
source: the database computes it and returns one row.
"""

from __future__ import annotations

from typing import Any

#: The derived table's name when the rows come from `query`.
QUERY_ALIAS = "loads"


def newest_value_sql(
    identifiers: Any,
    column: str,
    *,
    table: str | None = None,
    schema: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> str:
    """SQL text for the newest `column` value of `[schema.]table`, or of the rows `query`
    returns, among the rows matching `where` (SQL text) when given.

    `identifiers` is the dialect's `IdentifierPreparer` (`SourceConnection.identifiers`).
    Exactly one of `table` and `query` is given (ValueError otherwise).
    """
    if (table is None) == (query is None):
        raise ValueError("give table or query")
    quote = _backticks if identifiers.dialect.name == "sqlite" else identifiers.quote
    quoted = quote(column)
    if table is not None:
        source = quote(table)
        if schema:
            source = f"{quote(schema)}.{source}"
    else:
        source = f"({query}) AS {QUERY_ALIAS}"
        quoted = f"{QUERY_ALIAS}.{quoted}"
    sql = f"SELECT max({quoted}) FROM {source}"
    return f"{sql} WHERE ({where})" if where else sql


def newest_values_sql(identifiers: Any, tables: list[tuple[str, str, str | None]]) -> str:
    """One statement reading the newest value of several tables: one row, column `n<i>` the
    newest `column` of the i-th `(column, table, schema)`, each a scalar subquery
    `(SELECT max(col) FROM [schema.]table)` quoted as `newest_value_sql` quotes it. Only names
    go in (no `query`, no `filter`), so nothing an alert's author wrote can change which
    column answers which table. Raises ValueError for an empty list."""
    if not tables:
        raise ValueError("give at least one table")
    # `newest_value_sql`'s text for each table, with its checks and its quoting function
    # looked up once per statement rather than once per table.
    quote = _backticks if identifiers.dialect.name == "sqlite" else identifiers.quote
    parts = []
    for i, (column, table, schema) in enumerate(tables):
        source = f"{quote(schema)}.{quote(table)}" if schema else quote(table)
        parts.append(f"(SELECT max({quote(column)}) FROM {source}) AS n{i}")
    return "SELECT " + ", ".join(parts)


def _backticks(name: str) -> str:
    """A SQLite identifier in backticks, always: a double-quoted name that matches no column is
    read by SQLite as a string literal (its "double-quoted string" fallback), so a mistyped
    `timestamp_column` would be compared as text instead of failing; a backticked one cannot."""
    return "`" + name.replace("`", "``") + "`"
