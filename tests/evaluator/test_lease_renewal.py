"""A run renews the leases of the alerts it claimed and has not written yet, from the loop that
runs the checks (`services.leases.renew`, `services.leases.renew_held`): a run that takes
longer than its lease (slow sources, few slots, large claims) keeps its alerts, and another
evaluator cannot take them over and evaluate them a second time meanwhile. So does delivery
with the outbox rows it claimed and has not recorded yet: while the run is alive, no other
evaluator claims and sends them again."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services import checking
from datamantri_alerts.services.delivery import claim_pending
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.services.leases import (
    MIN_RENEW_INTERVAL,
    Holder,
    claim,
    renew,
    renew_interval,
)
from datamantri_alerts.store.models import Alert
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink, make_alert, make_alerts

NOW = utc(2026, 11, 30, 12, 0, 0)
TTL = timedelta(minutes=10)


def _leases(store: Any) -> dict[str, tuple[str | None, Any]]:
    with store.session() as session:
        rows = session.execute(select(Alert.name, Alert.lease_holder, Alert.lease_expires_at))
        return {
            name: (holder, expires.replace(tzinfo=None) if expires else None)
            for name, holder, expires in rows
        }


def test_renew_extends_every_lease_this_process_still_holds(any_store: Any, flags: Flags) -> None:
    store = any_store
    me, other = Holder("h1", 101), Holder("h2", 202)
    make_alerts(store, flags, [{"name": name} for name in ("mine", "expired", "theirs", "free")])
    held = {
        "mine": (me.id, NOW + timedelta(minutes=1)),
        "expired": (me.id, NOW - timedelta(seconds=1)),
        "theirs": (other.id, NOW + timedelta(minutes=1)),
        "free": (None, None),
    }
    with store.transaction() as session:
        for name, (holder, expires) in held.items():
            session.execute(
                update(Alert)
                .where(Alert.name == name)
                .values(lease_holder=holder, lease_expires_at=expires)
            )

    with store.session() as session:
        ids = list(session.scalars(select(Alert.id)))
    with store.transaction() as session:
        assert renew(session, Alert, ids, me=me, now=NOW, ttl=TTL) == 2

    naive = {name: (h, e.replace(tzinfo=None) if e else None) for name, (h, e) in held.items()}
    renewed = (me.id, (NOW + TTL).replace(tzinfo=None))
    # A lease that ran out and nobody took over is still this run's: renewed too.
    assert _leases(store) == {**naive, "mine": renewed, "expired": renewed}


@pytest.mark.serial  # a probe claim timed against checks of 2 s and a 3 s lease
def test_a_run_longer_than_its_lease_keeps_its_alerts(sqlite_store: Any, flags: Flags) -> None:
    """One slot, four checks of 2 s: the run takes 8 s, more than twice its 3 s lease.
    Another evaluator's claim at 4.5 s of the alerts not evaluated yet finds nothing: they were
    claimed at the start, and without renewal their leases would have run out at 3 s."""
    store, lease = sqlite_store, timedelta(seconds=3)
    flags.set(slow="ok", delay="2")
    make_alerts(store, flags, [{"name": f"slow-{i}", "key": "slow"} for i in range(4)])
    stolen: list[int] = []

    def probe() -> None:
        time.sleep(4.5)
        with store.transaction() as session:
            stolen.extend(
                claim(
                    session,
                    Alert,
                    where=[Alert.last_evaluated_at.is_(None)],
                    order_by=[Alert.id],
                    me=Holder("elsewhere", 1),
                    now=SystemClock().now(),
                    ttl=lease,
                    limit=10,
                )
            )

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    summary = run_evaluation(
        store, SystemClock(), RunOptions(host="h", all=True, concurrency=1, lease_ttl=lease)
    )
    elapsed = time.monotonic() - started
    prober.join()

    assert elapsed > 4.5, elapsed  # the probe came while the run still held unchecked alerts
    assert stolen == []
    assert not summary.problems, summary.problems
    assert sorted(r.name for r in summary.results) == [f"slow-{i}" for i in range(4)]
    assert {holder for holder, _ in _leases(store).values()} == {None}  # all written, released


@pytest.mark.serial  # a probe timed against a 6 s check and a 2 s lease
@pytest.mark.parametrize("batch_size", [1, 100], ids=["batches-of-one", "one-batch"])
def test_a_slow_check_holds_back_no_other_result(
    sqlite_store: Any,
    flags: Flags,
    tmp_path: Path,
    batch_size: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two slots, a 2 s lease: the first alert's check takes 8 s (within its timeout), the
    others are checked at once. Their results are written while the slow one runs, not after
    it: a later batch's as soon as it is complete (batches used to come out in the order they
    were drawn), the slow one's own batch's once they waited `FLUSH_AFTER_SECONDS` for it. So
    renewing the run's leases never keeps an alert whose check is done leased and unwritten;
    only the slow one is still held."""
    monkeypatch.setattr(checking, "FLUSH_AFTER_SECONDS", 1.0)
    store, lease = sqlite_store, timedelta(seconds=2)
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"default": "ok", "delay": 8}))
    make_alerts(store, flags, [{"name": "slow", "config": {"file": str(slow)}}])
    make_alerts(store, flags, [{"name": f"fast-{i}"} for i in range(5)])
    seen: dict[str, tuple[bool, str | None]] = {}
    done = threading.Event()

    def probe() -> None:
        """The store as it is once every fast alert is written (or the run ended)."""
        while not done.is_set():
            with store.session() as session:
                rows = session.execute(
                    select(Alert.name, Alert.last_evaluated_at, Alert.lease_holder)
                ).all()
            seen.clear()
            seen.update({name: (at is not None, holder) for name, at, holder in rows})
            if all(seen[f"fast-{i}"][0] for i in range(5)):
                return
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        summary = run_evaluation(
            store,
            SystemClock(),
            RunOptions(host="h", all=True, concurrency=2, batch_size=batch_size, lease_ttl=lease),
        )
    finally:
        done.set()
        prober.join()

    assert not summary.problems, summary.problems
    assert seen["slow"][0] is False and seen["slow"][1] is not None  # running, still held
    assert {name: seen[name] for name in seen if name != "slow"} == {
        f"fast-{i}": (True, None) for i in range(5)
    }


@pytest.mark.parametrize("dialect", ["postgres", "mariadb"])
def test_renewal_does_not_wait_for_rows_other_evaluators_hold(
    dialect: str, flags: Flags, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Another evaluator's transaction holds a row of its own locked: renewing this run's
    leases (found by id, not by scanning for the holder) does not wait for it."""
    from sqlalchemy import text

    from datamantri_alerts.store.engine import open_store
    from tests.conftest import MARIADB_URL, copy_migrated_template, require_service

    if dialect == "mariadb":
        from tests.checks import servers

        require_service("MariaDB", "127.0.0.1", 3306)
        scratch = servers.mariadb_scratch_database(MARIADB_URL)
        url = scratch.__enter__()
        request.addfinalizer(lambda: scratch.__exit__(None, None, None))
    else:
        url = request.getfixturevalue("pg_url")
    copy_migrated_template(request, url)
    store = open_store(url)
    request.addfinalizer(store.dispose)
    me, other = Holder("h1", 101), Holder("h2", 202)
    make_alerts(store, flags, [{"name": name} for name in ("theirs", "mine")])
    with store.transaction() as session:
        for name, holder in (("theirs", other), ("mine", me)):
            session.execute(
                update(Alert)
                .where(Alert.name == name)
                .values(lease_holder=holder.id, lease_expires_at=NOW + timedelta(minutes=1))
            )
        mine = session.scalar(select(Alert.id).where(Alert.name == "mine"))
    renewed: list[int] = []

    with store.engine.connect() as blocker:
        blocker.execute(
            text("SELECT id FROM alerts WHERE lease_holder = :h FOR UPDATE"), {"h": other.id}
        )

        def renew_mine() -> None:
            with store.transaction() as session:
                renewed.append(renew(session, Alert, [mine], me=me, now=NOW, ttl=TTL))

        worker = threading.Thread(target=renew_mine, daemon=True)
        worker.start()
        worker.join(timeout=10)
        while_blocked = list(renewed)
        blocker.rollback()
    worker.join(timeout=60)
    assert while_blocked == [1]  # done while the other evaluator's row was still locked


@pytest.mark.serial  # a probe claim timed against a 4 s send and a 1.5 s lease
def test_a_send_longer_than_its_lease_is_not_claimed_and_sent_again(
    sqlite_store: Any, flags: Flags, sink: Sink
) -> None:
    """One FIRING whose webhook answers after 4 s, under a 1.5 s lease: another evaluator's
    claim of the outbox at 2.5 s finds nothing (the run renewed the row's lease while the send
    was in flight; without that it had run out at about 1.5 s and the other evaluator would
    send it again), and the webhook hears the FIRING once."""
    store, lease = sqlite_store, timedelta(seconds=1.5)
    make_alert(store, flags, "slow", recipients={"slack": sink.hook("slow")})
    flags.set(slow="firing")
    sink.on("slow", 4.0)
    other = Holder("other-host", 4242)
    stolen: list[Any] = []

    def probe() -> None:
        time.sleep(2.5)
        stolen.extend(claim_pending(store, other, SystemClock().now(), 10, ttl=lease))

    thread = threading.Thread(target=probe)
    thread.start()
    summary = run_evaluation(store, SystemClock(), RunOptions(lease_ttl=lease, host="h1"))
    thread.join()
    assert stolen == []
    assert summary.notifications.sent == 1
    assert len(sink.bodies("slow")) == 1


def test_renewals_come_every_third_of_the_lease_and_never_in_a_busy_loop() -> None:
    # A lease of zero (an API caller's RunOptions) once made the delivery loop renew in a
    # busy loop of write transactions: 12,476 renewals and 7.3 s of CPU in a 9 s run.
    assert renew_interval(timedelta(minutes=10)) == pytest.approx(200.0)
    assert renew_interval(timedelta(seconds=1.5)) == pytest.approx(0.5)
    assert renew_interval(timedelta(0)) == MIN_RENEW_INTERVAL
    assert renew_interval(timedelta(seconds=-5)) == MIN_RENEW_INTERVAL
