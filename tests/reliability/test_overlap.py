"""Overlapping `alerts evaluate` processes: exactly once, never "database is locked", WAL.

Each round makes all 200 `flag` alerts (2 channels each) due and flips their condition, so rounds
alternate FIRING and RESOLVED events; N processes start together on one store. After every round:
each (alert, channel, event) reached the sink exactly once, every alert was evaluated by exactly
one process, and no process printed "database is locked" or a traceback. On SQLite every
connection the product's own engine setup opens logs the answer of its `PRAGMA journal_mode =
WAL` at -vv; the test counts those lines per process and requires all of them to say `wal`.
At the end the store equals (states, trigger counts, episodes, outbox rows) that of the same
rounds run by a single process on a second store.

CI: 2 rounds per dialect. The must-show figure (20 rounds, 8 SQLite / 4 PostgreSQL / 4 MariaDB
processes):

    .venv/bin/pytest -m slow tests/reliability/test_overlap.py -s
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from datamantri_alerts.services.due import EARLY_ALLOWANCE, grid_point
from datamantri_alerts.store.engine import Store, open_store
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alerts

#: Serial (scripts/test.sh runs it alone): 8 or 4 processes race for one store; under
#: other load a lock is held longer and the round's waits and busy timeouts are tested
#: against a machine they do not own.
pytestmark = pytest.mark.serial

ALERTS = 200
CHANNELS = ("slack", "teams")
#: Processes per dialect, and the host id each one runs under.
HOSTS = {
    "sqlite": ["h1"] * 8,
    "postgresql": ["h1", "h1", "h2", "h2"],
    "mysql": ["h1", "h1", "h2", "h2"],
}
WAL_LINE = re.compile(r"SQLite store connection opened: journal_mode=(\w+)")
#: The alerts' check interval, the longest allowed: one grid point a week, so a round almost
#: never has to wait for one to pass (`clear_of_a_tick`).
INTERVAL = timedelta(weeks=1)


@dataclass
class Figures:
    rounds: int = 0
    processes: int = 0
    delivered: int = 0
    duplicates: int = 0
    missing: int = 0
    locked_errors: int = 0
    #: "lease lost" problems reported by any process (a result dropped after a double claim).
    lease_lost: int = 0
    wal_connections: int = 0
    other_journal_modes: int = 0
    per_round_seconds: list[float] = field(default_factory=list)
    #: Alerts evaluated by each process, per round (how the work was shared).
    split: list[list[int]] = field(default_factory=list)


def seed(store: Store, flags: Flags, sink: Sink, prefix: str) -> list[str]:
    names = [f"a-{i:03d}" for i in range(ALERTS)]
    make_alerts(
        store,
        flags,
        [
            {
                "name": name,
                "key": "all",
                "channels": list(CHANNELS),
                "recipients": {ch: sink.hook(f"{prefix}/{ch}/{name}") for ch in CHANNELS},
                # Every round flips every alert: that is flapping, and flap detection would
                # (rightly) pause it. This test is about sharing the work exactly once.
                "flap_detection": {"enabled": False},
                "config": {"check_interval_minutes": INTERVAL // timedelta(minutes=1)},
            }
            for name in names
        ],
    )
    return names


def make_all_due(store: Store) -> None:
    """What the passing of check_interval_minutes does: every alert is due again."""
    with store.transaction() as session:
        session.execute(update(Alert).values(next_due_at=None))


def event_of(body: Any) -> str:
    found = set(re.findall(r"\b(FIRING|RESOLVED|REPEAT)\b", json.dumps(body)))
    assert len(found) == 1, found
    return found.pop()


#: How long a round may take, at most (each process is given 300 s): with the weekly grid,
#: waiting for a grid point to pass costs nothing but once a week.
ROUND_SECONDS = 330


def clear_of_a_tick(interval: timedelta = INTERVAL) -> None:
    """Wait, when needed, so that the round about to start ends before the next grid point of
    the alerts' interval comes within EARLY_ALLOWANCE.

    "Exactly once per round" is exactly once per schedule tick: an evaluation that started
    just before a grid point served the previous one, so a process claiming a moment later,
    within the early allowance of the new point, rightly evaluates the alert again for that
    point (`services.due.next_due_after`). A round straddling 12:05:00 would see every alert
    twice, by the product's own schedule, not by a lost lease.
    """
    now = datetime.now(UTC)
    upcoming = grid_point(now, interval) + interval - EARLY_ALLOWANCE
    if (upcoming - now).total_seconds() < ROUND_SECONDS:
        time.sleep((upcoming - now).total_seconds() + 2 * EARLY_ALLOWANCE.total_seconds())


def run_round(
    url: str, hosts: list[str], sink: Sink, prefix: str, names: list[str], event: str
) -> tuple[Counter[str], list[str], list[int]]:
    """Start len(hosts) evaluators together; check exactly-once; return per-process stderr."""
    clear_of_a_tick()
    first = len(sink.received)
    procs = [
        alerts_process(url, "-vv", "--hostname", host, "evaluate", "--json", "--concurrency", "8")
        for host in hosts
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    errs = [err for _, err in outputs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    reports = [json.loads(out) for out, _ in outputs]
    evaluated = Counter(r["name"] for report in reports for r in report["results"])
    assert sorted(evaluated) == names and set(evaluated.values()) == {1}

    with sink.lock:
        mine = [r for r in sink.received[first:] if r.path.startswith(f"/hook/{prefix}/")]
    assert all(r.status == 200 for r in mine)
    assert {event_of(r.body) for r in mine} <= {event}
    received = Counter(r.path for r in mine)
    expected = {f"/hook/{prefix}/{ch}/{name}" for ch in CHANNELS for name in names}
    duplicates = sum(n - 1 for n in received.values())
    missing = expected - set(received)
    assert duplicates == 0 and not missing, (duplicates, sorted(missing)[:5])
    assert set(received) == expected
    return received, errs, [report["evaluated"] for report in reports]


def projection(store: Store) -> dict[str, Any]:
    """What a run sequence leaves in the store, without ids, times and host ids."""
    with store.session() as session:
        alerts = {a.id: a.name for a in session.scalars(select(Alert))}
        state = {
            name: (state, trigger_count, lease)
            for name, state, trigger_count, lease in session.execute(
                select(Alert.name, Alert.state, Alert.trigger_count, Alert.lease_holder)
            )
        }
        episodes = Counter(
            (
                alerts[h.alert_id],
                h.kind,
                h.condition_met,
                h.resolved_at is None,
                len(h.notifications_sent or []),
                len(h.notification_errors or []),
            )
            for h in session.scalars(select(AlertHistory))
        )
        outbox = Counter(
            (alerts[n.alert_id], n.channel, n.kind, n.status, n.attempts, n.lease_holder)
            for n in session.scalars(select(Notification))
        )
    return {"alerts": state, "episodes": episodes, "outbox": outbox}


def overlap(
    url: str, baseline_url: str, hosts: list[str], rounds: int, flags: Flags, sink: Sink
) -> Figures:
    flags.set(all="ok", delay=0.02)
    store, baseline = open_store(url), open_store(baseline_url)
    figures = Figures(rounds=rounds, processes=len(hosts))
    try:
        names = seed(store, flags, sink, "many")
        assert seed(baseline, flags, sink, "one") == names
        for n in range(rounds):
            event = "FIRING" if n % 2 == 0 else "RESOLVED"
            flags.set(all="firing" if event == "FIRING" else "ok")
            make_all_due(store)
            make_all_due(baseline)
            started = time.monotonic()
            received, errs, split = run_round(url, hosts, sink, "many", names, event)
            figures.split.append(split)
            figures.per_round_seconds.append(round(time.monotonic() - started, 1))
            run_round(baseline_url, ["h1"], sink, "one", names, event)
            figures.delivered += sum(received.values())
            figures.locked_errors += sum(err.count("database is locked") for err in errs)
            figures.lease_lost += sum(err.count("lease lost") for err in errs)
            for err in errs:
                modes = WAL_LINE.findall(err)
                if store.dialect == "sqlite":
                    assert modes, "a process opened no SQLite connection it reported"
                figures.wal_connections += modes.count("wal")
                figures.other_journal_modes += len(modes) - modes.count("wal")
            assert figures.locked_errors == 0
            assert figures.lease_lost == 0
            assert figures.other_journal_modes == 0
        assert projection(store) == projection(baseline)
    finally:
        store.dispose()
        baseline.dispose()
    return figures


ROUNDS = [pytest.param(2, id="2-rounds"), pytest.param(20, id="20-rounds", marks=pytest.mark.slow)]


@pytest.mark.parametrize("rounds", ROUNDS)
def test_eight_processes_on_one_sqlite_store(
    tmp_path: Any, flags: Flags, sink: Sink, rounds: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url, baseline = f"sqlite:///{tmp_path / 'many.db'}", f"sqlite:///{tmp_path / 'one.db'}"
    figures = overlap(url, baseline, HOSTS["sqlite"], rounds, flags, sink)
    assert figures.delivered == ALERTS * len(CHANNELS) * rounds
    assert figures.wal_connections >= figures.processes * rounds
    with capsys.disabled():
        print(f"\n[overlap sqlite] {figures}")


@pytest.mark.parametrize("rounds", ROUNDS)
def test_four_processes_two_hosts_on_postgresql(
    pg_url: str,
    request: pytest.FixtureRequest,
    flags: Flags,
    sink: Sink,
    rounds: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = request.getfixturevalue("pg_url_baseline")
    figures = overlap(pg_url, baseline, HOSTS["postgresql"], rounds, flags, sink)
    assert figures.delivered == ALERTS * len(CHANNELS) * rounds
    with capsys.disabled():
        print(f"\n[overlap postgresql] {figures}")


@pytest.mark.parametrize("rounds", ROUNDS)
def test_four_processes_two_hosts_on_mariadb(
    mariadb_url: str,
    request: pytest.FixtureRequest,
    flags: Flags,
    sink: Sink,
    rounds: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """MySQL/MariaDB claims rows with FOR UPDATE SKIP LOCKED too: no lease is ever lost."""
    baseline = request.getfixturevalue("mariadb_url_baseline")
    figures = overlap(mariadb_url, baseline, HOSTS["mysql"], rounds, flags, sink)
    assert figures.delivered == ALERTS * len(CHANNELS) * rounds
    with capsys.disabled():
        print(f"\n[overlap mariadb] {figures}")


@pytest.mark.parametrize(
    "rounds",
    [pytest.param(3, id="3-rounds"), pytest.param(10, id="10-rounds", marks=pytest.mark.slow)],
)
def test_four_evaluate_all_processes_on_mariadb(
    mariadb_url: str, flags: Flags, sink: Sink, rounds: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's run: four `alerts evaluate --all` at once on MariaDB. `--all` ignores
    intervals, so an alert may be checked again by a process starting after another released
    it; what must hold is that every process exits 0 with no `lease lost` problem and that each
    (alert, channel) gets each event exactly once."""
    flags.set(all="ok", delay=0.01)
    store = open_store(mariadb_url)
    lease_lost = 0
    try:
        names = seed(store, flags, sink, "all")
        for n in range(rounds):
            event = "FIRING" if n % 2 == 0 else "RESOLVED"
            flags.set(all="firing" if event == "FIRING" else "ok")
            first = len(sink.received)
            procs = [
                alerts_process(mariadb_url, "--hostname", host, "evaluate", "--all", "--json")
                for host in HOSTS["mysql"]
            ]
            outputs = [p.communicate(timeout=300) for p in procs]
            for proc, (out, err) in zip(procs, outputs, strict=True):
                lease_lost += (out + err).count("lease lost")
                assert proc.returncode == 0, err[-3000:]
                assert "Traceback" not in err, err[-3000:]
            evaluated = {r["name"] for out, _ in outputs for r in json.loads(out)["results"]}
            assert evaluated == set(names)
            with sink.lock:
                mine = [r for r in sink.received[first:] if r.path.startswith("/hook/all/")]
            assert {event_of(r.body) for r in mine} == {event}
            received = Counter(r.path for r in mine)
            expected = {f"/hook/all/{ch}/{name}" for ch in CHANNELS for name in names}
            assert set(received) == expected and set(received.values()) == {1}
    finally:
        store.dispose()
    assert lease_lost == 0
    with capsys.disabled():
        print(f"\n[evaluate --all mariadb] rounds={rounds} processes=4 lease_lost={lease_lost}")
