"""A run killed mid-delivery loses nothing; leases of dead processes are taken over at once,
leases of live ones never, leases from other hosts after they expire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services.leases import Holder, claim
from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, Notification
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alerts

#: Serial (scripts/test.sh runs it alone): a process is killed mid-delivery after a sleep
#: that lets its answered sends get recorded.
pytestmark = pytest.mark.serial

STALLED = ("k-03", "k-07", "k-11")


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__doc__}")
        time.sleep(0.05)


def test_sigkill_mid_delivery_then_next_run_delivers_the_rest(
    store_url: str, flags: Flags, sink: Sink
) -> None:
    names = [f"k-{i:02d}" for i in range(20)]
    store = open_store(store_url)
    make_alerts(
        store,
        flags,
        [
            {"name": n, "key": "all", "channels": ["slack"], "recipients": {"slack": sink.hook(n)}}
            for n in names
        ],
    )
    flags.set(all="firing")
    for name in STALLED:
        sink.on(name, "stall")
    env = {"ALERTS_HOSTNAME": "h1"}

    first = alerts_process(store_url, "evaluate", "--json", "--concurrency", "16", env=env)

    def stalled_and_rest_answered() -> bool:
        """3 stalled, the rest answered"""
        statuses = Counter(r.status for r in sink.received)
        return statuses[0] == len(STALLED) and statuses[200] == len(names) - len(STALLED)

    wait_for(stalled_and_rest_answered)
    time.sleep(1.5)  # the answered sends get recorded (at most every 0.5 s)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL

    received_before_kill = {r.path for r in sink.received}
    with store.session() as session:
        rows = session.execute(
            select(Notification.recipient, Notification.status, Notification.lease_holder)
        ).all()
    recorded_sent = {recipient for recipient, status, _ in rows if status == "sent"}
    left = [(recipient, holder) for recipient, status, holder in rows if status == "pending"]
    in_flight = {p for p in received_before_kill if sink.url + p not in recorded_sent}
    assert len(left) == len(STALLED)
    assert {holder for _, holder in left} == {f"h1:{first.pid}"}  # still leased to the dead pid

    second = alerts_process(store_url, "evaluate", "--json", env=env)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    report = json.loads(out)
    assert report["evaluated"] == 0  # the killed run had already moved every alert
    assert report["notifications"]["sent"] == len(STALLED)

    delivered = Counter(r.path for r in sink.delivered())
    assert set(delivered) == {f"/hook/{n}" for n in names}  # 0 lost
    everything = Counter(r.path for r in sink.received)
    duplicates = {p for p, n in everything.items() if n > 1}
    assert duplicates <= in_flight  # only sends in flight at the kill were repeated
    assert duplicates == {f"/hook/{n}" for n in STALLED}
    with store.session() as session:
        assert set(session.scalars(select(Notification.status))) == {"sent"}
    store.dispose()


@pytest.fixture
def live_process() -> Any:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_leases_live_dead_and_foreign_holders(
    sqlite_store: Any, flags: Flags, live_process: Any
) -> None:
    store = sqlite_store
    [alert_id] = make_alerts(store, flags, [{"name": "leased", "recipients": {}}])
    me = Holder("h1", os.getpid())
    now = SystemClock().now()

    def lease_to(holder: str, expires_in: timedelta) -> None:
        with store.transaction() as session:
            session.execute(
                update(Alert).values(lease_holder=holder, lease_expires_at=now + expires_in)
            )

    def try_claim() -> list[int]:
        with store.transaction() as session:
            return claim(
                session,
                Alert,
                where=[Alert.is_active.is_(True)],
                order_by=[Alert.id],
                me=me,
                now=now,
                ttl=timedelta(minutes=10),
                limit=10,
            )

    lease_to(f"h1:{live_process.pid}", timedelta(minutes=5))
    assert try_claim() == []  # a live holder on this host is never displaced
    live_process.kill()
    live_process.wait()
    assert try_claim() == [alert_id]  # ... and taken over at once when its process is gone

    lease_to("other-host:1", timedelta(minutes=5))
    assert try_claim() == []  # another host's lease: wait for it to expire
    lease_to("other-host:1", timedelta(seconds=-1))
    assert try_claim() == [alert_id]
    with store.session() as session:
        assert session.scalar(select(Alert.lease_holder)) == me.id
