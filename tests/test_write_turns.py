"""The threads of one process take turns writing a SQLite store (`store.write_turns`).

What the turns change is observable with a short SQLite busy timeout: a writer that only had
SQLite's busy handler gives up with "database is locked" once another thread has held the store
longer than that timeout; a writer waiting for its turn waits for the other thread's commit and
then writes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from datamantri_alerts.store import engine as store_engine
from datamantri_alerts.store.engine import Store
from datamantri_alerts.store.write_turns import turn_key

#: Serial (scripts/test.sh runs it alone): a writer holds the store HOLD_SECONDS against a
#: short busy timeout, and a bound of 5 s; other load would stretch both.
pytestmark = pytest.mark.serial

HOLD_SECONDS = 0.4


def _hold_then_write(first: Store, second: Store) -> list[str]:
    """`first` writes and holds its transaction HOLD_SECONDS while `second` writes from another
    thread; what each wrote, in the order the store has it."""
    with first.transaction() as session:
        session.execute(text("create table if not exists log (who text)"))
    inside = threading.Event()
    errors: list[BaseException] = []

    def other() -> None:
        inside.wait(5)
        try:
            with second.transaction() as session:
                session.execute(text("insert into log values ('second')"))
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    with first.transaction() as session:
        session.execute(text("insert into log values ('first')"))
        inside.set()
        time.sleep(HOLD_SECONDS)
    thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    with first.session() as session:
        return list(session.scalars(text("select who from log order by rowid")))


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite's own wait, 50 ms: far shorter than the other thread holds the store.
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 50)


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_thread_waits_for_its_turn_not_on_sqlites_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        assert _hold_then_write(store, store) == ["first", "second"]
    finally:
        store.dispose()


@pytest.mark.usefixtures("short_busy_timeout")
def test_stores_of_one_file_share_the_turns_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "alerts.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    first = Store(f"sqlite:///{real}")
    link.symlink_to(real)
    second = Store(f"sqlite:///{link}")
    try:
        assert turn_key(link) == turn_key(real)
        assert _hold_then_write(first, second) == ["first", "second"]
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.usefixtures("short_busy_timeout")
def test_other_files_do_not_wait_for_each_other(tmp_path: Path) -> None:
    one = Store(f"sqlite:///{tmp_path / 'one.db'}")
    two = Store(f"sqlite:///{tmp_path / 'two.db'}")
    try:
        with one.transaction() as session:
            session.execute(text("create table t (x int)"))
            started = time.monotonic()
            with two.transaction() as other:  # another file: no turn to wait for
                other.execute(text("create table t (x int)"))
            assert time.monotonic() - started < 5
    finally:
        one.dispose()
        two.dispose()


@pytest.mark.usefixtures("short_busy_timeout")
def test_another_process_still_meets_sqlites_lock(tmp_path: Path) -> None:
    """The turns order this process's threads only: a writer outside them (here a plain
    sqlite3 connection, as another process or the sqlite3 shell would be) is refused by SQLite
    after its busy timeout, as before."""
    import sqlite3

    path = tmp_path / "alerts.db"
    store = Store(f"sqlite:///{path}")
    try:
        with store.transaction() as session:
            session.execute(text("create table t (x int)"))
        outsider = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            with store.transaction() as session:
                session.execute(text("insert into t values (1)"))
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    outsider.execute("begin immediate")
        finally:
            outsider.close()
        # ...and a transaction of the store waits for the outsider only as long as SQLite does.
        outsider = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            outsider.execute("begin immediate")
            with pytest.raises(OperationalError, match="locked"), store.transaction() as session:
                session.execute(text("insert into t values (2)"))
        finally:
            outsider.execute("rollback")
            outsider.close()
    finally:
        store.dispose()


def test_a_symlink_loop_in_a_file_uri_is_a_one_line_store_error(tmp_path: Path) -> None:
    """Naming the turns does not resolve the path strictly: SQLite refuses the loop when the
    store opens, in one line (review: an internal error from `Path.resolve`)."""
    from tests.conftest import Cli

    loop = tmp_path / "alerts.db"
    loop.symlink_to(loop)
    result = Cli(f"sqlite:///file:{loop}?mode=rwc&uri=true")("list")
    assert result.exit_code == 1
    assert "internal error" not in result.stderr, result.stderr
    assert "cannot open the store" in result.stderr, result.stderr


def test_the_turn_wait_is_read_when_a_transaction_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TURN_WAIT_SECONDS bounds the wait for a turn, read when the transaction starts: past it
    the thread goes on to SQLite's lock (here refused after the 50 ms busy timeout)."""
    from datamantri_alerts.store import write_turns

    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(write_turns, "TURN_WAIT_SECONDS", 0.1)
    store = Store(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        with pytest.raises(OperationalError, match="locked"):
            _hold_then_write(store, store)
    finally:
        store.dispose()
