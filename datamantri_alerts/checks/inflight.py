"""The data source connections open right now, so a stopping evaluator can cancel their queries.

`open_source` registers each connection it yields; `cancel_all()` (called when the evaluator is
interrupted by SIGTERM or Ctrl-C) asks each server to cancel what it runs, through the
connection's own `_cancel_running` (PostgreSQL cancel request, MySQL/MariaDB `KILL QUERY`,
SQLite interrupt), so no warehouse query outlives the run that started it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datamantri_alerts.checks.sources import SourceConnection

log = logging.getLogger(__name__)

_lock = threading.Lock()
_open: dict[int, SourceConnection] = {}


@contextlib.contextmanager
def tracked(conn: SourceConnection) -> Iterator[SourceConnection]:
    """Registers `conn` as open while inside."""
    with _lock:
        _open[id(conn)] = conn
    try:
        yield conn
    finally:
        with _lock:
            _open.pop(id(conn), None)


def open_connections() -> int:
    with _lock:
        return len(_open)


def cancel_all() -> int:
    """Cancel the statement each open connection is running; returns how many were asked.

    Never raises: a statement that ended meanwhile has nothing to cancel."""
    with _lock:
        connections = list(_open.values())
    for conn in connections:
        try:
            conn._cancel_running()
        except Exception as exc:
            log.debug("cancelling the query on %s failed: %s", conn.source.id, type(exc).__name__)
    return len(connections)
