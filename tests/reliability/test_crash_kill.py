"""SIGKILL at random points of `alerts evaluate` runs: 0 lost, duplicates only in flight.

Each run gets its own 6 `flag` alerts x 2 channels and is killed at one of four points:

- before-claim: a random moment in the first 0.3 s, while the process is still starting;
- after-claim: as soon as the store shows one of its alerts leased to the process;
- mid-check: at a random moment while its (0.6 s) checks run;
- after-send: right after the sink accepted a message and before the store recorded it (the
  evaluator records finished sends at most every 0.5 s).

What the store shows after the kill says which point was really hit; the figures count that.
Then a recovery run: on the same host it takes the dead process's leases over at once; on
another host (`--hostname h2`) it leaves them until they expire, and a second run after expiry
(brought about by moving the leases' end into the past) takes them over. Afterwards every
(alert, channel) reached the sink, every outbox row is sent, each episode records each channel
once, and every duplicate the sink saw was a message in flight at the kill (accepted by the
sink, not recorded as sent).

CI: 4 runs per dialect. The must-show figure (50 runs per dialect):

    .venv/bin/pytest -m slow tests/reliability/test_crash_kill.py -s
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.store.engine import Store, open_store
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alerts

#: Serial (scripts/test.sh runs it alone): SIGKILL at random points timed with sleeps;
#: other load moves the points and can let a run end before its kill.
pytestmark = pytest.mark.serial

ALERTS_PER_RUN = 6
CHANNELS = ("slack", "teams")
POINTS = ("before-claim", "after-claim", "mid-check", "after-send")
# Killed runs hold their leases this long, so "taken over before expiry" and "respected until
# expiry" do not depend on how fast a loaded machine starts the recovery run; expiry itself is
# then brought about by moving the leases' end into the past (see expire_leases).
LEASE_SECONDS = 300.0
CHECK_DELAY = 0.6
SEED = 20240607
ENV = {"ALERTS_LEASE_SECONDS": str(LEASE_SECONDS)}


@dataclass
class Figures:
    runs: int = 0
    expected: int = 0
    lost: int = 0
    duplicates: int = 0
    in_flight_at_kill: int = 0
    observed: Counter[str] = field(default_factory=Counter)
    same_host_takeovers_at_once: int = 0
    foreign_leases_respected: int = 0
    foreign_takeovers_after_expiry: int = 0


def wait_until(predicate: Any, timeout: float = 30.0, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {predicate.__doc__}")
        time.sleep(every)


def leased_to(store: Store, ids: list[int], holder: str) -> tuple[set[int], set[int]]:
    """(alert ids, notification ids) of this run still leased to holder."""
    with store.session() as session:
        alerts = set(
            session.scalars(select(Alert.id).where(Alert.id.in_(ids), Alert.lease_holder == holder))
        )
        notes = set(
            session.scalars(
                select(Notification.id).where(
                    Notification.alert_id.in_(ids), Notification.lease_holder == holder
                )
            )
        )
    return alerts, notes


def lease_expiry(store: Store, ids: list[int], holder: str) -> datetime | None:
    """When the first of holder's leases on this run's rows expires."""
    with store.session() as session:
        times = [
            *session.scalars(
                select(Alert.lease_expires_at).where(
                    Alert.id.in_(ids), Alert.lease_holder == holder
                )
            ),
            *session.scalars(
                select(Notification.lease_expires_at).where(
                    Notification.alert_id.in_(ids), Notification.lease_holder == holder
                )
            ),
        ]
    aware = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times if t is not None]
    return min(aware) if aware else None


def expire_leases(store: Store, ids: list[int], holder: str) -> None:
    """Let holder's leases on this run's rows run out: their end moves one second into the past."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with store.transaction() as session:
        session.execute(
            update(Alert)
            .where(Alert.id.in_(ids), Alert.lease_holder == holder)
            .values(lease_expires_at=past)
        )
        session.execute(
            update(Notification)
            .where(Notification.alert_id.in_(ids), Notification.lease_holder == holder)
            .values(lease_expires_at=past)
        )


def recorded_sent(store: Store, ids: list[int]) -> set[str]:
    with store.session() as session:
        rows = session.execute(
            select(Notification.recipient).where(
                Notification.alert_id.in_(ids), Notification.status == "sent"
            )
        ).all()
    return {recipient for (recipient,) in rows}


def evaluate(url: str, host: str) -> dict[str, Any]:
    proc = alerts_process(url, "--hostname", host, "evaluate", "--json", env=ENV)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "database is locked" not in err, err
    return json.loads(out)


def one_run(
    n: int, url: str, store: Store, flags: Flags, sink: Sink, rng: random.Random, fig: Figures
) -> None:
    point = POINTS[n % len(POINTS)]
    # Over any 8 consecutive runs each point is hit once from each host.
    other_host = n % 8 in (1, 2, 4, 7)
    tag = f"run{n:02d}"
    names = [f"{tag}-{i}" for i in range(ALERTS_PER_RUN)]
    ids = make_alerts(
        store,
        flags,
        [
            {
                "name": name,
                "key": tag,
                "channels": list(CHANNELS),
                "recipients": {ch: sink.hook(f"{tag}/{ch}/{name}") for ch in CHANNELS},
            }
            for name in names
        ],
    )
    flags.set(**{tag: "firing"}, delay=0.0 if point == "after-send" else CHECK_DELAY)
    expected = {f"/hook/{tag}/{ch}/{name}" for ch in CHANNELS for name in names}

    def mine() -> list[Any]:
        with sink.lock:
            return [r for r in sink.received if r.path.startswith(f"/hook/{tag}/")]

    proc = alerts_process(url, "--hostname", "h1", "evaluate", "--json", env=ENV)
    holder = f"h1:{proc.pid}"
    if point == "before-claim":
        time.sleep(rng.uniform(0.0, 0.3))
    elif point in ("after-claim", "mid-check"):

        def claimed() -> bool:
            """the process claimed an alert"""
            return bool(leased_to(store, ids, holder)[0]) or proc.poll() is not None

        wait_until(claimed)
        if point == "mid-check":
            time.sleep(rng.uniform(0.05, CHECK_DELAY - 0.15))
    else:

        def accepted() -> bool:
            """the sink accepted a message"""
            return any(r.status == 200 for r in mine()) or proc.poll() is not None

        wait_until(accepted, every=0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, f"run {n} ended before the kill ({point})"
    # Requests the process had already written reach the sink's handlers a moment later; they
    # were in flight at the kill too.
    time.sleep(0.3)

    # Where did the kill land?
    alerts_held, notes_held = leased_to(store, ids, holder)
    accepted_paths = {r.path for r in mine() if r.status == 200}
    in_flight = {p for p in accepted_paths if sink.url + p not in recorded_sent(store, ids)}
    with store.session() as session:
        episodes = session.scalar(
            select(AlertHistory.id).where(AlertHistory.alert_id.in_(ids)).limit(1)
        )
    if in_flight:
        observed = "after-send"
    elif notes_held:
        observed = "delivering"
    elif alerts_held:
        observed = "claimed, checks running"
    elif episodes is None:
        observed = "before-claim"
    else:
        observed = "other"
    fig.observed[observed] += 1
    fig.in_flight_at_kill += len(in_flight)

    expiry = lease_expiry(store, ids, holder)
    if not other_host:
        evaluate(url, "h1")
        if expiry is not None:
            assert leased_to(store, ids, holder) == (set(), set())
            assert datetime.now(UTC) < expiry  # done before the dead process's leases expired
            fig.same_host_takeovers_at_once += 1
    else:
        seen_before = len(mine())
        evaluate(url, "h2")
        if expiry is not None:
            # Another host's lease is respected until it expires: nothing taken, nothing sent.
            assert datetime.now(UTC) < expiry
            assert leased_to(store, ids, holder) == (alerts_held, notes_held)
            assert len(mine()) == seen_before
            fig.foreign_leases_respected += 1
            expire_leases(store, ids, holder)
            evaluate(url, "h2")
            assert leased_to(store, ids, holder) == (set(), set())
            fig.foreign_takeovers_after_expiry += 1

    # 0 lost; duplicates only for messages in flight at the kill; every row sent, once.
    delivered = Counter(r.path for r in mine() if r.status == 200)
    lost = expected - set(delivered)
    duplicates = {p: c - 1 for p, c in delivered.items() if c > 1}
    assert not lost, (n, point, sorted(lost))
    assert set(duplicates) <= in_flight, (n, point, duplicates, in_flight)
    assert all(c == 1 for c in duplicates.values())
    with store.session() as session:
        statuses = Counter(
            session.scalars(select(Notification.status).where(Notification.alert_id.in_(ids)))
        )
        sent_lists = list(
            session.scalars(
                select(AlertHistory.notifications_sent).where(AlertHistory.alert_id.in_(ids))
            )
        )
        states = set(session.scalars(select(Alert.state).where(Alert.id.in_(ids))))
    assert statuses == {"sent": len(expected)}
    assert len(sent_lists) == ALERTS_PER_RUN and states == {"firing"}
    assert all(sorted(e["channel"] for e in entries) == sorted(CHANNELS) for entries in sent_lists)
    fig.runs += 1
    fig.expected += len(expected)
    fig.lost += len(lost)
    fig.duplicates += sum(duplicates.values())


@pytest.mark.parametrize(
    "runs", [pytest.param(4, id="4-runs"), pytest.param(50, id="50-runs", marks=pytest.mark.slow)]
)
def test_sigkill_at_random_points_loses_nothing(
    store_url: str, flags: Flags, sink: Sink, runs: int, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    store = open_store(store_url)
    figures = Figures()
    # The two dialects start at different runs, so CI covers every point from both hosts.
    offset = 0 if store.dialect == "sqlite" else 4
    try:
        for n in range(offset, offset + runs):
            one_run(n, store_url, store, flags, sink, rng, figures)
    finally:
        store.dispose()
    assert figures.runs == runs and figures.lost == 0
    assert figures.duplicates <= figures.in_flight_at_kill
    assert figures.same_host_takeovers_at_once > 0
    assert figures.foreign_takeovers_after_expiry > 0 and figures.foreign_leases_respected > 0
    with capsys.disabled():
        print(f"\n[crash {store.dialect}] {figures}")
