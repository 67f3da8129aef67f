"""The concurrent runner (services/checking.py): bounds, timeouts, order, failures as outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.checks.conftest import Harness
from tests.conftest import REPO_ROOT


@pytest.mark.serial  # wall-clock bounds on concurrency and hung checks
def test_a_hung_check_is_cut_off_and_does_not_delay_the_others(
    harness: Harness, third_party_checks: Path, http_base: str, black_hole_port: int
) -> None:
    harness.add_datasource("web", f"{http_base}/sleep?ms=100")
    harness.add_datasource("hole", f"http://127.0.0.1:{black_hole_port}/")
    alerts = [
        ("hang", {"seconds": 30, "timeout_seconds": 1}),
        ("datasource_failure", {"datasource_id": "hole", "timeout_seconds": 1}),
    ] + [("datasource_failure", {"datasource_id": "web"})] * 10
    started = time.monotonic()
    results = harness.run_many(alerts, concurrency=4)
    elapsed = time.monotonic() - started
    hung, hole, *webs = results
    assert hung.outcome == "error"
    assert hung.summary == "timed out after 1s"
    assert hung.timed_out is True
    assert 1000 <= hung.duration_ms < 2500
    assert hole.outcome == "firing"
    assert "timed out" in hole.summary.lower()
    assert all(w.outcome == "ok" for w in webs)
    # Two slots are blocked for ~1-2 s; the ten 0.1 s checks share the other two meanwhile.
    assert elapsed < 2.6, elapsed
    assert max(w.duration_ms for w in webs) < 1000


@pytest.mark.serial  # wall-clock bounds on concurrency and hung checks
def test_results_keep_input_order_and_concurrency_is_honoured(
    harness: Harness, http_base: str
) -> None:
    harness.add_datasource("slow", f"{http_base}/sleep?ms=200")
    harness.add_datasource("down", f"{http_base}/status/500")
    alerts = [("datasource_failure", {"datasource_id": "slow"})] * 31 + [
        ("datasource_failure", {"datasource_id": "down"})
    ]
    started = time.monotonic()
    results = harness.run_many(alerts, concurrency=16)
    parallel = time.monotonic() - started
    assert [r.id for r in results] == sorted(r.id for r in results)
    assert [r.outcome for r in results] == ["ok"] * 31 + ["firing"]
    assert parallel < 1.5, parallel  # two waves of 0.2 s, not 32 of them

    started = time.monotonic()
    harness.run_many(alerts[:4], concurrency=1)
    assert time.monotonic() - started >= 0.8  # one at a time


def test_bad_alerts_become_error_outcomes(harness: Harness, third_party_checks: Path) -> None:
    unknown, invalid, crash = harness.run_many(
        [
            ("no_such_type", {}),
            ("sql", {"datasource_id": "x"}),
            ("crash", {"message": "kaboom at postgresql://bob:sup3rs3cret@db.internal/x"}),
        ]
    )
    assert unknown.outcome == "error"
    assert "unknown alert type 'no_such_type'" in unknown.summary
    assert invalid.outcome == "error"
    assert "condition_config.query" in invalid.summary
    assert crash.outcome == "error"
    assert "kaboom" in crash.summary
    assert "sup3rs3cret" not in crash.summary


@pytest.mark.serial  # wall-clock bounds on concurrency and hung checks
def test_abandoned_threads_do_not_keep_the_process_alive(third_party_checks: Path) -> None:
    script = textwrap.dedent(
        """
        from datamantri_alerts.clock import SystemClock
        from datamantri_alerts.checks.base import CheckContext
        from datamantri_alerts.services.checking import AlertSnapshot, run_checks

        alert = AlertSnapshot(1, "hang", "hang", {"seconds": 60, "timeout_seconds": 0.5})
        [result] = run_checks([alert], lambda a: CheckContext(SystemClock(), lambda: None))
        print(result.outcome, result.summary)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(third_party_checks), str(REPO_ROOT)]),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "error timed out after 0.5s"
    assert elapsed < 10, f"the process waited {elapsed:.1f}s for a hung check thread"


def _thread_names_started_during(run: Callable[[], object]) -> list[str]:
    """Names of the threads started while `run()` ran (recorded as each thread starts)."""
    import threading

    names: list[str] = []
    lock = threading.Lock()

    def first_call(*_args: object) -> None:
        sys.setprofile(None)  # only the thread's first call is of interest
        with lock:
            names.append(threading.current_thread().name)

    threading.setprofile(first_call)
    try:
        run()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return names


def _sqlite_source(harness: Harness, tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "w.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    harness.add_datasource("lite", f"sqlite:///{path}")


def test_checks_run_on_persistent_workers_with_one_watchdog(
    harness: Harness, tmp_path: Path
) -> None:
    _sqlite_source(harness, tmp_path)
    alerts = [("sql", {"datasource_id": "lite", "query": "SELECT x FROM t"})] * 200
    results: list = []
    names = _thread_names_started_during(
        lambda: results.extend(harness.run_many(alerts, concurrency=4))
    )
    assert [r.outcome for r in results] == ["firing"] * 200
    workers = [n for n in names if n.startswith("check-worker-")]
    assert 1 <= len(workers) <= 4, names
    assert names.count("statement-watchdog") == 1, names
    assert len(names) == len(workers) + 1, names  # no thread per check, no timer per statement


@pytest.mark.serial  # wall-clock bounds on concurrency and hung checks
def test_a_worker_abandoned_to_a_hung_check_is_replaced(
    harness: Harness, third_party_checks: Path, tmp_path: Path
) -> None:
    _sqlite_source(harness, tmp_path)
    alerts = [("hang", {"seconds": 30, "timeout_seconds": 0.5})] + [
        ("sql", {"datasource_id": "lite", "query": "SELECT x FROM t"})
    ] * 5
    results: list = []
    started = time.monotonic()
    names = _thread_names_started_during(
        lambda: results.extend(harness.run_many(alerts, concurrency=1))
    )
    elapsed = time.monotonic() - started
    hung, *rest = results
    assert hung.summary == "timed out after 0.5s"
    assert [r.outcome for r in rest] == ["firing"] * 5
    assert len([n for n in names if n.startswith("check-worker-")]) == 2, names
    assert elapsed < 0.5 + 1.0 + 3.0  # the timeout and its grace, then five quick checks


def test_a_snapshot_of_a_row_is_the_one_its_constructor_makes() -> None:
    """`AlertSnapshot.of` fills the frozen instance at once, not through `__init__`: the
    same snapshot, still frozen, detached from the row's dicts; a subclass goes through its
    own constructor."""
    from dataclasses import FrozenInstanceError, dataclass
    from types import SimpleNamespace

    from datamantri_alerts.services.checking import AlertSnapshot
    from datamantri_alerts.services.evaluate import _SNAPSHOT_COLUMNS

    config = {"datasource_id": "wh", "table": "t", "warn_after": {"count": 1, "period": "hour"}}
    rows = [
        SimpleNamespace(
            id=7,
            name="n",
            condition_type="freshness",
            condition_config=config,
            severity="info",
            check_state={"k": 1},
        ),
        SimpleNamespace(id=None, name="", condition_type="x", condition_config=None),
        SimpleNamespace(
            id=1,
            name="m",
            condition_type="sql",
            condition_config={},
            severity=None,
            check_state=None,
        ),
    ]
    for row in rows:
        snapshot = AlertSnapshot.of(row)
        expected = AlertSnapshot(
            id=row.id,
            name=row.name,
            condition_type=row.condition_type,
            condition_config=dict(row.condition_config or {}),
            severity=getattr(row, "severity", None),
            check_state=dict(getattr(row, "check_state", None) or {}),
        )
        assert snapshot == expected
        assert repr(snapshot) == repr(expected)
        # The claim's path: the columns of a row unpacked in `_SNAPSHOT_COLUMNS`' order.
        columns = [getattr(row, c.name, None) for c in _SNAPSHOT_COLUMNS]
        assert vars(AlertSnapshot.of_columns(*columns)) == vars(expected)
        assert vars(snapshot) == vars(expected)
        assert snapshot.condition_config is not row.condition_config
        assert snapshot.check_state is not getattr(row, "check_state", None)
        with pytest.raises(FrozenInstanceError):
            snapshot.name = "changed"  # type: ignore[misc]

    @dataclass(frozen=True)
    class Tagged(AlertSnapshot):
        tag: str = "default"

    tagged = Tagged.of(rows[0])
    assert type(tagged) is Tagged
    assert tagged.tag == "default"
    assert tagged.condition_config == config
