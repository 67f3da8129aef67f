"""A run shared by two processes (`services.processes`): each due alert evaluated once, the
helper's results reported by the run, a helper that dies never silent, a stopped run stopping
its helper, and the run's data-source sessions within `--concurrency`.

Real forks of the real evaluator on real stores (SQLite, PostgreSQL, MariaDB) and a real
PostgreSQL data source; the helper is found by the lease holder it writes (`host:pid`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services import processes
from datamantri_alerts.services.evaluate import Progress, RunOptions, run_evaluation
from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, AlertHistory, EvaluatorRun
from tests.conftest import PG_ADMIN_URL, Cli
from tests.evaluator.conftest import Flags, alerts_process, make_alerts

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")


def test_concurrency_is_shared_out_and_the_count_chosen() -> None:
    assert processes.shares(16, 2) == [8, 8]
    assert processes.shares(5, 2) == [3, 2]
    assert processes.shares(3, 3) == [1, 1, 1]
    for concurrency in range(1, 40):
        for count in range(1, min(concurrency, 8) + 1):
            parts = processes.shares(concurrency, count)
            assert sum(parts) == concurrency and min(parts) >= 1
    below = processes.AUTO_MIN_DUE - 1
    assert processes.process_count(0, below, 16) == 1
    two = 2 if processes.usable_cpus() >= 2 else 1
    assert processes.process_count(0, processes.AUTO_MIN_DUE, 16) == two
    assert processes.process_count(0, processes.AUTO_MIN_DUE, 1) == 1  # one slot, one process
    assert processes.process_count(1, 10**6, 16) == 1
    assert processes.process_count(3, 10, 2) == 2
    assert processes.process_count(99, 10, 64) == processes.MAX_PROCESSES


def _leases(store: Any) -> list[str]:
    with store.session() as session:
        return list(
            session.scalars(select(Alert.lease_holder).where(Alert.lease_holder.is_not(None)))
        )


def _helper_pids(store: Any) -> set[int]:
    """Processes other than this one holding leases right now."""
    return {int(h.rsplit(":", 1)[1]) for h in _leases(store)} - {os.getpid()}


def test_two_processes_evaluate_every_due_alert_once(any_store: Any, flags: Flags) -> None:
    flags.set(delay="0.003", **{f"a{i}": "firing" for i in range(0, 240, 10)})
    ids = make_alerts(any_store, flags, [{"name": f"a{i}", "channels": []} for i in range(240)])
    threads: set[str] = set()
    checked: list[int] = []

    def on_checked(n: int) -> None:
        threads.add(threading.current_thread().name)
        checked.append(n)

    options = RunOptions(host="h", processes=2, concurrency=4, batch_size=10)
    summary = run_evaluation(any_store, SystemClock(), options, Progress(on_checked=on_checked))

    assert summary.ok, summary.problems
    assert [r.id for r in summary.results] == sorted(ids)  # each once, in id order
    assert summary.firing == 24
    assert sorted(r.name for r in summary.results if r.state == "firing") == sorted(
        f"a{i}" for i in range(0, 240, 10)
    )
    assert sum(checked) == 240
    # The helper did a share of the work, and its progress reached this process.
    assert any(name.startswith("helper-") for name in threads), threads
    assert _leases(any_store) == []
    with any_store.session() as session:
        assert session.scalar(select(func.count()).select_from(AlertHistory)) == 24
        assert session.scalar(select(func.count()).select_from(EvaluatorRun)) == 1
        unevaluated = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.last_evaluated_at.is_(None))
        )
    assert unevaluated == 0

    # `--all` again: every alert once more, the firing ones still in their one episode.
    options = RunOptions(host="h", processes=2, concurrency=4, batch_size=10, all=True)
    again = run_evaluation(any_store, SystemClock(), options)
    assert again.ok, again.problems
    assert [r.id for r in again.results] == sorted(ids)
    with any_store.session() as session:
        assert session.scalar(select(func.count()).select_from(AlertHistory)) == 24


def _kill_first_helper(store_url: str, found: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) the first process other than this one seen holding a lease."""
    store = open_store(store_url, migrate=False)
    try:
        while not stop.is_set():
            pids = _helper_pids(store)
            if pids:
                pid = min(pids)
                found.append(pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)
    finally:
        store.dispose()


def test_a_helper_killed_mid_run_is_reported_and_its_alerts_are_left_due(
    sqlite_url: str, sqlite_store: Any, flags: Flags
) -> None:
    flags.set(delay="0.05")
    ids = make_alerts(sqlite_store, flags, [{"name": f"k{i}", "channels": []} for i in range(120)])
    found: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_helper, args=(sqlite_url, found, stop))
    killer.start()
    try:
        options = RunOptions(host="h", processes=2, concurrency=4, batch_size=5)
        summary = run_evaluation(sqlite_store, SystemClock(), options)
    finally:
        stop.set()
        killer.join()
    [pid] = found
    assert not summary.ok
    assert summary.problems == [
        f"helper evaluator process {pid} was killed before sending its results"
    ]
    # Its leases were released at once, not left to expire.
    assert _leases(sqlite_store) == []
    with sqlite_store.session() as session:
        evaluated = set(
            session.scalars(select(Alert.id).where(Alert.last_evaluated_at.is_not(None)))
        )
    reported = {r.id for r in summary.results}
    assert reported <= evaluated  # the helper's written results are in the store, not reported
    assert evaluated != set(ids)  # the kill came mid-run
    # The next run (due alerts only) evaluates exactly those the first did not.
    second = run_evaluation(sqlite_store, SystemClock(), RunOptions(host="h", processes=1))
    assert second.ok, second.problems
    assert {r.id for r in second.results} == set(ids) - evaluated


def test_sigterm_stops_the_run_and_its_helper(sqlite_url: str, flags: Flags) -> None:
    store = open_store(sqlite_url)
    make_alerts(store, flags, [{"name": f"s{i}", "channels": []} for i in range(200)])
    flags.set(delay="0.2")
    evaluator = alerts_process(
        sqlite_url, "evaluate", "--quiet", "--processes", "2", "--concurrency", "4"
    )
    try:
        deadline = time.monotonic() + 60
        helpers: set[int] = set()
        while not helpers and time.monotonic() < deadline:
            helpers = _helper_pids(store) - {evaluator.pid}
            time.sleep(0.02)
        assert helpers, "the helper never held a lease"
        evaluator.send_signal(signal.SIGTERM)
        _, stderr = evaluator.communicate(timeout=60)
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
            evaluator.wait()
    assert evaluator.returncode == 143, stderr
    assert stderr.splitlines() == [
        "alerts evaluate: interrupted by SIGTERM; stopped (queries cancelled, leases "
        "released, run recorded as interrupted)"
    ]
    for pid in helpers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped and reaped, not left running
    assert _leases(store) == []
    with store.session() as session:
        assert list(session.scalars(select(EvaluatorRun.outcome))) == ["interrupted"]
    store.dispose()


def _sessions_opened(database_url: str, settle: Callable[[], None]) -> int:
    settle()
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                conn.execute(
                    text("SELECT sessions FROM pg_stat_database WHERE datname = :db"),
                    {"db": database_url.rsplit("/", 1)[1].split("?", 1)[0]},
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_runs_sessions_on_a_source_stay_within_concurrency(
    sqlite_url: str, pg_database: str, tmp_path: Path
) -> None:
    cli = Cli(sqlite_url)
    assert cli("datasources", "add", "wh", "--name", "WH", "--url", pg_database).exit_code == 0
    document = tmp_path / "alerts.yaml"
    document.write_text(
        "alerts:\n"
        + "".join(
            f"  - name: pid-{i}\n    condition_type: sql\n"
            "    condition_config: {datasource_id: wh, query: 'select pg_backend_pid() as pid'}\n"
            for i in range(300)
        )
    )
    assert cli("sync", str(document)).exit_code == 0

    def settle() -> None:
        time.sleep(1.0)  # a backend reports its session when it ends

    before = _sessions_opened(pg_database, settle)
    result = cli("evaluate", "--json", "--processes", "2", "--concurrency", "4")
    assert result.exit_code == 0, result.output
    results = result.json()["results"]
    assert len(results) == 300 and {r["outcome"] for r in results} == {"firing"}
    opened = _sessions_opened(pg_database, settle) - before
    assert 1 <= opened <= 4, f"{opened} sessions for 300 checks at concurrency 4, 2 processes"
