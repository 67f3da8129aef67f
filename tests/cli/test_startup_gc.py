"""`cli.startup`: a command's start-up runs without the cyclic garbage collector, which is back
on (with start-up's objects frozen out of later collections, its young generation collected
every `YOUNG_THRESHOLD` allocations) once the command opens the store; the command runs with a
switch interval of `SWITCH_INTERVAL`."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from datamantri_alerts.cli.context import AppContext
from datamantri_alerts.cli.startup import (
    SWITCH_INTERVAL,
    YOUNG_THRESHOLD,
    pause_gc,
    resume_gc,
    switching_less,
)
from datamantri_alerts.settings import build_settings
from tests.cli.conftest import synced_store_env

#: Runs `alerts ARGS` through the real entry point and reports what the collector did.
RUN_AND_REPORT = """
import gc, json, sys
collections = {0: 0, 1: 0, 2: 0}
def count(phase, info):
    if phase == "start":
        collections[info["generation"]] += 1
gc.callbacks.append(count)
sys.argv = ["alerts", *sys.argv[1:]]
from contextlib import contextmanager
import datamantri_alerts.cli.startup as startup
switch_intervals = []
plain = startup.switching_less
@contextmanager
def recorded():
    with plain():
        switch_intervals.append(sys.getswitchinterval())
        yield
startup.switching_less = recorded
from datamantri_alerts.cli import main
try:
    main()
except SystemExit:
    pass
report = {
    "collections": collections,
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "threshold": gc.get_threshold(),
    "switch_intervals": switch_intervals,
    "switch_interval_after": sys.getswitchinterval(),
}
sys.stderr.write("\\nGC=" + json.dumps(report) + "\\n")
"""


def gc_report(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("GC="))
    report: dict[str, object] = json.loads(line.removeprefix("GC="))
    return report


@pytest.fixture
def child_env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    return synced_store_env(tmp_path, sqlite_url, 50)


def test_list_starts_without_collecting_and_ends_with_the_collector_on(
    child_env: dict[str, str],
) -> None:
    report = gc_report(["list"], child_env)
    # Importing typer, SQLAlchemy and the models used to traverse every survivor at least once
    # (a generation-2 collection); now start-up collects nothing, and once the store is open
    # only what the command itself allocates is collected.
    assert report["collections"]["2"] == 0  # type: ignore[index]
    assert report["enabled"] is True
    assert isinstance(report["frozen"], int) and report["frozen"] > 10_000
    # The command's work collects the young generation every YOUNG_THRESHOLD allocations
    # (CPython's 700 collected ~280 times in a 5,000-alert run), and ran switching less.
    assert report["threshold"][0] == YOUNG_THRESHOLD  # type: ignore[index]
    assert report["switch_intervals"] == [pytest.approx(SWITCH_INTERVAL, abs=1e-5)]
    assert report["switch_interval_after"] == pytest.approx(0.005, abs=1e-5)  # CPython's, back


def test_a_command_without_the_store_ends_with_the_collector_on(
    child_env: dict[str, str],
) -> None:
    report = gc_report(["--help"], child_env)
    assert report["collections"]["2"] == 0  # type: ignore[index]
    assert report["enabled"] is True  # `main` resumes on the way out


@pytest.fixture
def paused() -> Iterator[None]:
    assert gc.isenabled()
    threshold = gc.get_threshold()
    pause_gc()
    try:
        yield
    finally:
        resume_gc()
        gc.unfreeze()  # give the test process's objects back to the collector
        gc.set_threshold(*threshold)
        gc.enable()


def test_opening_the_store_turns_the_collector_back_on(paused: None, sqlite_url: str) -> None:
    assert not gc.isenabled()
    app = AppContext(settings=build_settings(db=sqlite_url, env_file=None, verbose=0))
    try:
        assert app.store is not None
        assert gc.isenabled()  # an evaluator run after this collects, less often
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        app.close()


def test_a_collector_the_cli_did_not_pause_is_left_alone() -> None:
    # The tests run the CLI in-process (through `app`, never `main`): nothing is frozen.
    before, threshold = gc.get_freeze_count(), gc.get_threshold()
    resume_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
    assert gc.get_threshold() == threshold


def test_switching_less_lengthens_the_interval_and_gives_it_back() -> None:
    before = sys.getswitchinterval()
    with switching_less():
        assert sys.getswitchinterval() == pytest.approx(max(before, SWITCH_INTERVAL), abs=1e-5)
    assert sys.getswitchinterval() == pytest.approx(before, abs=1e-5)
    sys.setswitchinterval(0.05)  # one already longer is kept
    try:
        with switching_less():
            assert sys.getswitchinterval() == pytest.approx(0.05, abs=1e-5)
    finally:
        sys.setswitchinterval(before)
