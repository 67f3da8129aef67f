"""A write transaction the server rolls back to break a deadlock is issued again.

Concurrent `alerts evaluate` runs on a MariaDB store now and then lost a deadlock in a result
write (error 1213) and one process crashed with it (`tests/reliability/test_overlap.py`, about
1 try in 6). Here the deadlock is made on purpose, on the real servers: two transactions lock two
rows in opposite orders, each waiting at a barrier for the other's first lock, so the server must
roll one back. `retry_write_conflicts` issues the loser again, and both writes land.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from datamantri_alerts.store.engine import Store, is_write_conflict, retry_write_conflicts


@pytest.fixture(params=["postgres", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("pg_url" if request.param == "postgres" else "mariadb_url"))


def test_a_deadlock_victim_is_issued_again_and_both_writes_land(server_url: str) -> None:
    store = Store(server_url)
    try:
        with store.transaction() as session:
            session.execute(text("CREATE TABLE pair (id INT PRIMARY KEY, v INT)"))
        with store.transaction() as session:
            session.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        barrier = threading.Barrier(2, timeout=30)
        tries = {"a": 0, "b": 0}
        conflicts: list[BaseException] = []
        failures: list[BaseException] = []

        def write(name: str, first: int, second: int) -> None:
            def once() -> None:
                tries[name] += 1
                try:
                    with store.transaction() as session:
                        session.execute(text(f"UPDATE pair SET v = v + 1 WHERE id = {first}"))
                        if tries[name] == 1:
                            barrier.wait()  # both hold their first row: a cycle follows
                        session.execute(text(f"UPDATE pair SET v = v + 1 WHERE id = {second}"))
                except Exception as exc:
                    if is_write_conflict(exc):
                        conflicts.append(exc)
                    raise

            try:
                retry_write_conflicts(once)
            except BaseException as exc:  # recorded for the assertion below
                failures.append(exc)

        threads = [
            threading.Thread(target=write, args=("a", 1, 2)),
            threading.Thread(target=write, args=("b", 2, 1)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert len(conflicts) == 1  # the server rolled exactly one back
        assert sorted(tries.values()) == [1, 2]  # ... and it was issued again
        with store.session() as session:
            values = session.execute(text("SELECT v FROM pair ORDER BY id")).scalars().all()
        assert values == [2, 2]  # both transactions' writes, each once
    finally:
        store.dispose()


def test_other_errors_are_not_retried(server_url: str) -> None:
    store = Store(server_url)
    calls: list[Any] = []

    def broken() -> None:
        calls.append(1)
        with store.transaction() as session:
            session.execute(text("SELECT * FROM no_such_table"))

    try:
        with pytest.raises(Exception) as raised:
            retry_write_conflicts(broken)
        assert not is_write_conflict(raised.value)
        assert calls == [1]
    finally:
        store.dispose()
