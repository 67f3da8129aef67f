"""`store.write_lock`: writers of one SQLite store, in this process and in others, take turns
on a lock beside the store instead of SQLite's sleeping busy handler."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.write_lock import write_lock_path

HOLD = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from datamantri_alerts.store.engine import open_store
    store = open_store(sys.argv[1], migrate=False)
    with store.transaction() as session:
        session.execute(text("update alerts set name = name where 0"))
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    print(f"released {time.time():.6f}", flush=True)
    """
)


def test_the_lock_file_is_beside_the_store_and_private(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    with store.transaction() as session:
        session.execute(text("select 1"))
    store.dispose()
    lock = tmp_path / "alerts.write.lock"
    assert write_lock_path(tmp_path / "alerts.db") == lock
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_a_store_reached_through_a_symlink_shares_its_targets_lock(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    through_link = write_lock_path(tmp_path / "link" / "alerts.db")
    assert through_link == write_lock_path(tmp_path / "real" / "alerts.db")
    assert through_link.parent == tmp_path / "real"


def test_a_writer_of_another_process_waits_for_the_holder_and_goes_on_at_once(
    tmp_path: Path,
) -> None:
    """The other process holds a write transaction for 1.5 s, and the store's file lock with
    it; a transaction here waits for it and begins only once it is committed."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = open_store(url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, "1.5"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        probe = os.open(tmp_path / "alerts.write.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # the holder has the file lock
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
        asked = time.monotonic()
        with store.transaction() as session:
            began = time.time()
            waited = time.monotonic() - asked
            session.execute(text("update alerts set name = name where 0"))
        released = float(holder.stdout.readline().split()[1])
    finally:
        holder.wait(timeout=30)
        store.dispose()
    assert waited >= 1.0  # it did wait for the other writer
    assert began >= released - 0.05  # not before the other committed
