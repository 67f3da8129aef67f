"""The threads of one process take turns writing a SQLite store, woken as soon as it is free.

SQLite lets one writer in at a time. A writer that finds the file locked waits in SQLite's busy
handler, which polls with sleeps of 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
(`sqliteDefaultBusyCallback` in sqlite3.c), so every collision costs a sleep past the other
writer's commit. An evaluator run collides with itself on every batch: its claimer (the main
thread) and its result writer (`services.result_writer`) both write the store. Measured on a
5,000-alert run: 51 claims spent 0.53-0.75 s waiting, against 0.07 s of their own work, and
every check slot that freed up meanwhile idled with them.

So `Store.transaction` takes the file's lock of this process first: a reentrant lock shared by
every `Store` of the process on the same file (through a symlink too), released on commit or
rollback, handed to the next thread at once. It only orders this process's threads; other
processes (another `evaluate`, the sqlite3 shell) still meet SQLite's own lock and busy timeout,
which decide as before. A thread that has waited `TURN_WAIT_SECONDS` for its turn goes on to
SQLite's lock without it, so a thread that holds a transaction while waiting for another one
fails on SQLite's busy timeout as it always did, only later, instead of hanging.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: How long a thread waits for its turn before it goes on to SQLite's lock (seconds): as long as
#: SQLite's own busy timeout (`store.engine.SQLITE_BUSY_TIMEOUT_MS`).
TURN_WAIT_SECONDS = 30.0

_TURNS: dict[str, threading.RLock] = {}


def turn_key(database: Path) -> str:
    """What names the turns of the SQLite file `database`: its real path (as far as it resolves:
    a symlink loop is left for SQLite to refuse when the store is opened)."""
    return os.path.realpath(database)


@contextmanager
def write_turn(key: str, timeout: float | None = None) -> Iterator[None]:
    """Hold this process's lock of the file `key` (`turn_key`) for a write transaction; after
    `timeout` seconds without it (default `TURN_WAIT_SECONDS`), go on anyway (SQLite's own
    lock and busy timeout decide)."""
    if timeout is None:
        timeout = TURN_WAIT_SECONDS
    lock = _TURNS.get(key)
    if lock is None:  # setdefault on a str key is atomic: two first writers share one lock
        lock = _TURNS.setdefault(key, threading.RLock())
    held = lock.acquire(timeout=timeout)
    if not held:
        log.debug("no write turn after %.0f s; waiting on SQLite's lock instead", timeout)
    try:
        yield
    finally:
        if held:
            lock.release()


# A child forked while another thread held a turn would wait for a release that never comes.
os.register_at_fork(after_in_child=_TURNS.clear)
