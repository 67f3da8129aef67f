"""Writers of a SQLite store take turns here, woken promptly, not on SQLite's busy handler.

SQLite lets one writer in at a time. A writer that finds the file locked waits in SQLite's busy
handler, which polls with sleeps of 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
(`sqliteDefaultBusyCallback` in sqlite3.c): every collision costs a sleep past the other
writer's commit, and the sleeps grow while the other keeps writing. A run's claimer and its
result writer, and the processes evaluating one run (`services.processes`), collide on every
batch. `WriteLock` queues them instead: the threads of a process on a lock of the process,
woken the moment it is released; processes on an advisory lock (flock) of a file beside the
store, let go by the kernel if its holder dies, asked again every `POLL_MAX_SECONDS` at most.

Why not `filelock`, which the store's migration lock uses: it opens and closes the lock file
and logs on every attempt, which cost a 5,000-alert run about a fifth more CPU than this loop
(measured on two processes sharing one run; the migration lock is taken once per command).

It only orders the writers that take it; any other writer (the sqlite3 shell, an older release)
still meets SQLite's own lock and busy timeout, which decide as before. A writer that cannot
open the lock file (a folder it may not write to) or has waited `timeout` seconds goes on to
SQLite's lock without it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: The first and the longest pause between two tries of the file lock (seconds).
POLL_MIN_SECONDS = 0.0001
POLL_MAX_SECONDS = 0.002


def write_lock_path(database: Path) -> Path:
    """The lock file beside a SQLite store, named like its migration lock (`alerts.db`:
    `alerts.write.lock`), beside its real path: a store reached through a symlink shares the
    lock of its target."""
    return database.resolve().with_suffix(".write.lock")


class WriteLock:
    """A reentrant lock of this process plus the store's file lock, held around each write
    transaction (`Store.transaction`). `timeout`: seconds a process waits for the file lock
    before writing without it (SQLite's busy timeout still applies then)."""

    def __init__(self, database: Path, timeout: float) -> None:
        self._path = write_lock_path(database)
        self._timeout = timeout
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._threads = threading.RLock()
        self._depth = 0  # transactions of the holding thread, nested ones included
        self._fd: int | None = None
        self._file_held = False

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._pid != os.getpid():
            # A forked child (`services.processes`, forked while no write was in progress):
            # the lock and the descriptor it inherited are the parent's.
            self._reset()
        with self._threads:
            self._depth += 1
            try:
                if self._depth == 1:
                    self._file_held = self._take_file()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._file_held:
                    self._file_held = False
                    self._release_file()

    def _take_file(self) -> bool:
        import fcntl

        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.debug("store write lock %s not available (%s)", self._path, exc.strerror)
                return False
        deadline = time.monotonic() + self._timeout
        pause = POLL_MIN_SECONDS
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError as exc:
                log.debug("store write lock %s not available (%s)", self._path, exc.strerror)
                return False
            if time.monotonic() >= deadline:
                log.debug("store write lock held past %.0f s; writing without it", self._timeout)
                return False
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX_SECONDS)

    def _release_file(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
