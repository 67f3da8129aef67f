"""`alerts runs wrap`: the job always runs, and whatever it prints can be recorded on any store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_runs import _pipeline_with_alert
from tests.conftest import Cli, closed_port


def _job_with_alert(cli: Cli, tmp_path: Path) -> None:
    _pipeline_with_alert(cli, tmp_path, "p2")


def _wrap(db_url: str, *args: Any, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """`alerts runs wrap` in a real process (bytes arguments pass through as the OS has them)."""
    return subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", "--db", db_url, "runs", "wrap", *args],
        capture_output=True,
        timeout=timeout,
        env={**os.environ},
    )


def _closed_port() -> int:
    return closed_port()


# --------------------------------------------------------------------------- outside text


def test_nul_in_stderr_is_recorded_failed_and_the_alert_fires(
    store_cli: Cli, tmp_path: Path
) -> None:
    _job_with_alert(store_cli, tmp_path)
    done = _wrap(
        store_cli.db_url, "p2", "--", "sh", "-c", 'printf "Segfault\\000core\\n" >&2; exit 139'
    )
    assert done.returncode == 139, done.stderr
    assert done.stderr.startswith(b"Segfault\x00core\n")  # passed through untouched
    assert b"warning" not in done.stderr

    [run] = store_cli("runs", "list", "p2", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 139)
    assert run["error"] == "Segfault\\x00core"
    assert run["finished_at"] is not None

    evaluated = store_cli("evaluate", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    [result] = evaluated.json()["results"]
    assert (result["outcome"], result["state"]) == ("firing", "firing")
    assert "Segfault\\x00core" in result["summary"]
    [episode] = store_cli("history", "--json").json()
    assert "Segfault\\x00core" in episode["summary"]


def test_invalid_utf8_in_stderr_and_command_is_recorded(store_cli: Cli, tmp_path: Path) -> None:
    _job_with_alert(store_cli, tmp_path)
    script = b'printf "bad \\377\\376 bytes\\n" >&2; exit 3 # caf\xe9'
    done = _wrap(store_cli.db_url, "p2", "--", "sh", "-c", script)
    assert done.returncode == 3, done.stderr
    # Passed through as text: stderr goes through the one redacting stream (logs.py), which
    # shows bytes that are not UTF-8 as U+FFFD.
    assert done.stderr.decode().startswith("bad \ufffd\ufffd bytes\n")
    assert b"warning" not in done.stderr

    [run] = store_cli("runs", "list", "p2", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    assert run["error"] == "bad \ufffd\ufffd bytes"
    assert run["command"].endswith("exit 3 # caf\ufffd'")
    [result] = store_cli("evaluate", "--json").json()["results"]
    assert result["outcome"] == "firing"
    assert "bad \ufffd\ufffd bytes" in result["summary"]


# --------------------------------------------------------------------------- the job always runs


def _warnings(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize(
    "db_url",
    [
        "postgresql://postgres@127.0.0.1:{port}/alerts",
        "mysql://root@127.0.0.1:{port}/alerts",
        "sqlite:////proc/no-such-dir/alerts.db",
    ],
    ids=["postgres-closed-port", "mariadb-closed-port", "sqlite-unwritable"],
)
def test_store_unreachable_the_job_still_runs(db_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    url = db_url.format(port=_closed_port())
    done = _wrap(url, "p2", "--", "sh", "-c", f'echo out; touch "{marker}"; exit 7')
    assert marker.exists()  # the job ran
    assert done.returncode == 7  # with its own exit code
    assert done.stdout == b"out\n"  # its output passed through
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines  # one warning line, no traceback
    assert lines[0].startswith("warning: the run of p2 was not recorded (")
    assert lines[0].endswith("the job ran and exited 7")


def test_unknown_job_id_the_job_still_runs(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    marker = tmp_path / "ran"
    done = _wrap(cli.db_url, "nope", "--", "sh", "-c", f'touch "{marker}"; exit 4')
    assert marker.exists()
    assert done.returncode == 4
    assert _warnings(done.stderr) == [
        "warning: the run of nope was not recorded (JOB_ID: no pipeline or dashboard with id "
        "'nope'); the job ran and exited 4"
    ]
    assert done.stderr.decode().count("\n") == 1
    assert cli("runs", "list", "--json").json() == []  # nothing written

    # The same for a job whose runs come from elsewhere, and for a bad --kind.
    assert cli("dashboards", "add", "d1", "--name", "D1").exit_code == 0
    for args in (["--kind", "pipeline", "d1"], ["--kind", "cron", "p2"]):
        marker.unlink()
        done = _wrap(cli.db_url, *args, "--", "sh", "-c", f'touch "{marker}"; exit 0')
        assert marker.exists(), args
        assert done.returncode == 0, args
        assert len(_warnings(done.stderr)) == 1, (args, done.stderr)
    assert cli("runs", "list", "--json").json() == []


def test_command_not_found_is_127_and_recorded_failed(store_cli: Cli, tmp_path: Path) -> None:
    _job_with_alert(store_cli, tmp_path)
    done = _wrap(store_cli.db_url, "p2", "--", "no-such-program-xyz", "--flag")
    assert done.returncode == 127
    assert done.stderr.decode() == "alerts runs wrap: command not found: no-such-program-xyz\n"
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    denied = _wrap(store_cli.db_url, "p2", "--", str(not_executable))
    assert denied.returncode == 126
    runs = store_cli("runs", "list", "p2", "--json").json()
    assert [(r["status"], r["exit_code"]) for r in runs] == [("failed", 126), ("failed", 127)]
    assert runs[1]["error"] == "command not found: no-such-program-xyz"
    assert runs[1]["command"] == "no-such-program-xyz --flag"
    [result] = store_cli("evaluate", "--dry-run", "--json").json()["results"]
    assert result["outcome"] == "firing"


def _wrap_until_running(cli: Cli, tmp_path: Path, script: str) -> subprocess.Popen[bytes]:
    """Start `runs wrap p2 -- sh -c script`; return once the job runs and its start is recorded."""
    ready = tmp_path / "ready"
    alerts = [sys.executable, "-m", "datamantri_alerts", "--db", cli.db_url]
    wrapper = subprocess.Popen(
        [*alerts, "runs", "wrap", "p2", "--", "sh", "-c", f'touch "{ready}"; {script}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() or not cli("runs", "list", "--status", "running", "--json").json():
        if time.monotonic() > deadline or wrapper.poll() is not None:
            wrapper.kill()
            pytest.fail(f"the job did not start: {wrapper.communicate()}")
        time.sleep(0.05)
    return wrapper


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signals_are_forwarded_to_the_job_and_the_run_recorded(
    cli: Cli, tmp_path: Path, signame: str
) -> None:
    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    got = tmp_path / "got"
    handles = f"trap 'echo {signame} > \"{got}\"; exit 99' {signame[3:]}; "
    wrapper = _wrap_until_running(cli, tmp_path, handles + "while :; do sleep 0.1; done")
    try:
        wrapper.send_signal(getattr(signal, signame))
        _, stderr = wrapper.communicate(timeout=30)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert got.read_text().strip() == signame  # the job saw the signal and stopped itself
    assert wrapper.returncode == 99, stderr
    [run] = cli("runs", "list", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 99)


def test_job_killed_by_a_signal_exits_128_plus_n(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    wrapper = _wrap_until_running(cli, tmp_path, "exec sleep 60")
    try:
        wrapper.send_signal(signal.SIGTERM)
        _, stderr = wrapper.communicate(timeout=30)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert wrapper.returncode == 143, stderr
    [run] = cli("runs", "list", "--json").json()
    assert (run["status"], run["exit_code"], run["error"]) == ("failed", 143, "killed by SIGTERM")


def test_a_bad_evaluator_setting_does_not_stop_the_job(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    env = {"ALERTS_LEASE_SECONDS": "ten minutes"}
    marker = tmp_path / "ran"
    wrapped = cli("runs", "wrap", "p2", "--", "sh", "-c", f'touch "{marker}"; exit 5', env=env)
    assert marker.exists()
    assert wrapped.exit_code == 5, wrapped.output
    assert wrapped.stderr == ""
    [run] = cli("runs", "list", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 5)
    # The evaluator, which uses it, still refuses it: exit 2, one line.
    refused = cli("evaluate", env=env)
    assert refused.exit_code == 2
    assert "ALERTS_LEASE_SECONDS must be a number of seconds" in refused.stderr


@pytest.mark.serial  # the job must finish within the store's busy timeout
def test_a_locked_store_does_not_delay_the_job(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    """The start is recorded beside the job, not before it: a store busy with another writer
    (here a held SQLite write lock) neither delays nor stops the job; the run is recorded once
    the lock is gone."""
    import sqlite3

    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    marker = tmp_path / "ran"
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # every other writer now waits on the busy timeout
    try:
        alerts = [sys.executable, "-m", "datamantri_alerts", "--db", sqlite_url]
        wrapper = subprocess.Popen(
            [*alerts, "runs", "wrap", "p2", "--", "sh", "-c", f'touch "{marker}"; exit 6'],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, "the job waited for the store"
            time.sleep(0.05)
        assert wrapper.poll() is None  # still waiting to record, the job already done
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _, stderr = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 6, stderr
    assert stderr == b""
    [run] = cli("runs", "list", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 6)


def test_a_job_exiting_127_itself_is_not_reported_as_not_found(cli: Cli) -> None:
    assert cli("pipelines", "add", "p2", "--name", "P2").exit_code == 0
    done = _wrap(cli.db_url, "p2", "--", "sh", "-c", "exit 127")
    assert done.returncode == 127
    assert done.stderr == b""
    [run] = cli("runs", "list", "--json").json()
    assert (run["status"], run["exit_code"], run["error"]) == ("failed", 127, "exit code 127")


@pytest.fixture
def mariadb_store_url() -> Any:
    """A scratch MariaDB database as a store URL, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import MARIADB_URL, require_service

    require_service("MariaDB", "127.0.0.1", 3306)
    name = f"alerts_runs_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def test_nul_and_emoji_on_a_mariadb_store(mariadb_store_url: str, tmp_path: Path) -> None:
    cli = Cli(mariadb_store_url)
    _job_with_alert(cli, tmp_path)
    script = 'printf "Segfault\\000core \\342\\234\\223 \\360\\237\\230\\200\\n" >&2; exit 139'
    done = _wrap(mariadb_store_url, "p2", "--", "sh", "-c", script)
    assert done.returncode == 139, done.stderr
    assert b"warning" not in done.stderr
    [run] = cli("runs", "list", "p2", "--json").json()
    assert (run["status"], run["exit_code"]) == ("failed", 139)
    assert run["error"] == "Segfault\\x00core \u2713 \U0001f600"
    [result] = cli("evaluate", "--dry-run", "--json").json()["results"]
    assert result["outcome"] == "firing"


def test_a_signal_while_the_job_starts_reaches_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM that arrives while the wrapper is starting the job (systemd stopping the unit
    at that moment) is handed to the job once it runs: the job stops, and the wrapper is alive
    to record it. Before, the wrapper's forwarding was installed only after the start."""
    from datamantri_alerts.services.runs import run_wrapped

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    real_popen = subprocess.Popen

    def popen_after_a_sigterm(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # handled before the job exists
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen_after_a_sigterm)
    try:
        started = time.monotonic()
        result = run_wrapped(["sleep", "30"], stderr=open(os.devnull, "wb"))  # noqa: SIM115
        elapsed = time.monotonic() - started
        handler_after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert seen == []  # the wrapper's forwarding took it, not the handler from before
    assert (result.exit_code, result.error) == (143, "killed by SIGTERM")
    assert elapsed < 20, elapsed
    assert handler_after is not signal.SIG_DFL and callable(handler_after)  # ours, restored


def test_a_signal_while_a_job_fails_to_start_still_stops_the_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGTERM kept while the job was being started, when the job then cannot start, goes
    to the handler from before (the wrapper's own stop), not lost with the job."""
    from datamantri_alerts.services.runs import run_wrapped

    seen: list[int] = []

    def record(signum: int, _frame: Any) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, record)
    during_start: list[Any] = []

    def popen_that_fails_after_a_sigterm(*args: Any, **kwargs: Any) -> Any:
        during_start.append(signal.getsignal(signal.SIGTERM))
        os.kill(os.getpid(), signal.SIGTERM)
        raise FileNotFoundError(args[0][0])

    monkeypatch.setattr(subprocess, "Popen", popen_that_fails_after_a_sigterm)
    try:
        result = run_wrapped(["/nonexistent/job"], stderr=open(os.devnull, "wb"))  # noqa: SIM115
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert result.exit_code == 127 and not result.started
    assert during_start and during_start[0] is not record  # the wrapper's forwarding took it
    assert seen == [signal.SIGTERM]  # then handed to the handler from before
