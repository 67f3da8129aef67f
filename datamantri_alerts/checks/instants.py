"""Timestamp columns of a query result as aware UTC instants, whatever the session time zone.

Every timestamp a check reads from a database goes through `read_instants`:

- a time-zone-aware value (PostgreSQL `timestamptz`, which the driver hands back in the
  session's `TimeZone`) is converted to UTC, so the session zone does not matter;
- a MySQL/MariaDB `TIMESTAMP` is stored as UTC but rendered by the server, as a naive value, in
  the session's `time_zone` (`+09:00`, `SYSTEM`, a named zone). The same session turns its own
  rendering back into the stored instant with `UNIX_TIMESTAMP(...)` (one extra statement per
  result that has such a column, all values at once), so this too is exact whatever the session
  or server zone is (a rendering inside a repeated DST hour of a `SYSTEM` zone is ambiguous and
  read as its first occurrence);
- a naive value (PostgreSQL `timestamp`, MySQL `DATETIME`, SQLite text) is a wall-clock time in
  the configured `timestamp_timezone` (default UTC); numbers are Unix epoch seconds.

The value-level rules live in `values.parse_timestamp`; this module adds what only the
connection knows (the driver's column types and the session zone).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from datamantri_alerts.checks.values import parse_timestamp

if TYPE_CHECKING:
    from datamantri_alerts.checks.sources import QueryResult, SourceConnection

#: PyMySQL's type code of a TIMESTAMP column (pymysql.constants.FIELD_TYPE.TIMESTAMP).
MYSQL_TIMESTAMP_TYPE = 7

#: Values converted per `UNIX_TIMESTAMP` statement (well under MySQL's select-list limit).
_EPOCH_BATCH = 200


def session_rendered_columns(conn: SourceConnection, result: QueryResult) -> set[int]:
    """Indexes of the columns whose naive values are renderings in the session time zone."""
    if conn.dialect != "mysql":
        return set()
    return {i for i, code in enumerate(result.column_types) if code == MYSQL_TIMESTAMP_TYPE}


def read_instants(
    conn: SourceConnection,
    result: QueryResult,
    columns: Sequence[int],
    naive_zone: tzinfo = UTC,
    *,
    bound: float | None = None,
) -> list[tuple[datetime | None, ...]]:
    """Per row of `result`, the values of `columns` (indexes) as aware UTC datetimes or None.

    `naive_zone` is the zone of naive columns; `bound` (seconds) bounds the extra statement a
    MySQL TIMESTAMP column needs. Raises ValueError naming the value when one is not a
    timestamp, and SourceError when that extra statement fails.
    """
    rendered = session_rendered_columns(conn, result) & set(columns)
    if not rendered:  # every dialect but MySQL/MariaDB: the values say what they are
        return [tuple(parse_timestamp(row[i], naive_zone) for i in columns) for row in result.rows]
    renderings = sorted(
        {row[i] for row in result.rows for i in rendered if isinstance(row[i], datetime)}
    )
    instants = _server_instants(conn, renderings, bound) if renderings else {}
    out: list[tuple[datetime | None, ...]] = []
    for row in result.rows:
        values: list[datetime | None] = []
        for i in columns:
            value = row[i]
            if i in rendered and isinstance(value, datetime):
                values.append(instants[value])
            else:
                values.append(parse_timestamp(value, naive_zone))
        out.append(tuple(values))
    return out


def _server_instants(
    conn: SourceConnection, renderings: list[datetime], bound: float | None
) -> dict[datetime, datetime]:
    """Session-zone renderings of MySQL TIMESTAMPs mapped to the UTC instants they stand for."""
    from sqlalchemy import text

    found: dict[datetime, datetime] = {}
    for start in range(0, len(renderings), _EPOCH_BATCH):
        batch = renderings[start : start + _EPOCH_BATCH]
        select_list = ", ".join(f"UNIX_TIMESTAMP(:v{n})" for n in range(len(batch)))
        params: dict[str, Any] = {f"v{n}": value for n, value in enumerate(batch)}
        result = conn.execute(text(f"SELECT {select_list}"), bound=bound, params=params)
        epochs = result.rows[0] if result.rows else ()
        for value, epoch in zip(batch, epochs, strict=False):
            stamp = parse_timestamp(epoch)
            if stamp is None:
                raise ValueError(f"not a timestamp the server can convert: {value.isoformat()}")
            found[value] = stamp
    missing = [value for value in renderings if value not in found]
    if missing:
        raise ValueError(f"not a timestamp the server can convert: {missing[0].isoformat()}")
    return found
