"""`cli.run` (the `alerts` command) ends the process without the interpreter's teardown
(`cli.startup.exit_at_once`), with everything a normal exit shows: the exit status, all of
standard output and error, the log file, `atexit` functions. Where that cannot be done the same
way (another thread still running, a failed flush, an uncaught exception, a message as the
exit status) Python's own exit runs, untouched."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import synced_store_env

#: Runs `alerts ARGS` through `cli.run` after PRELUDE, reports an `atexit` marker.
RUN = """
import atexit, sys
sys.argv = ["alerts", *sys.argv[1:]]
atexit.register(lambda: sys.stderr.write("ATEXIT-RAN\\n"))
{prelude}
from datamantri_alerts.cli import run
run()
sys.stderr.write("AFTER-RUN\\n")
"""


def run_cli(
    args: list[str], env: dict[str, str], prelude: str = "", **kwargs: object
) -> subprocess.CompletedProcess[str]:
    code = RUN.format(prelude=textwrap.dedent(prelude))
    streams: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args],
        **{**streams, **kwargs},
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    return synced_store_env(tmp_path, sqlite_url, 300)


def test_output_log_and_status_are_whole(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = run_cli(["-v", "--log-file", str(log), "evaluate", "--all", "--json"], env)
    # The whole JSON document came through the pipe (and the redactor's pending text with it).
    report = json.loads(done.stdout)
    assert len(report["results"]) == 300
    assert done.returncode == 0, done.stderr
    assert "ATEXIT-RAN" in done.stderr  # atexit functions ran
    assert "AFTER-RUN" not in done.stderr  # and the process ended inside `run`
    # The log file was flushed and closed (logging's own atexit `shutdown`).
    assert "evaluator run" in log.read_text()


def test_the_commands_exit_status_is_kept(env: dict[str, str]) -> None:
    done = run_cli(["show", "no such alert"], env)
    assert done.returncode == 2
    assert "no such alert" in done.stderr
    assert "ATEXIT-RAN" in done.stderr and "AFTER-RUN" not in done.stderr


def test_a_thread_still_running_is_waited_for(env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "thread-finished"
    prelude = f"""
    import threading, time, pathlib
    def late():
        time.sleep(0.5)
        pathlib.Path({str(marker)!r}).write_text("done")
    threading.Thread(target=late).start()
    """
    done = run_cli(["list"], env, prelude)
    assert done.returncode == 0, done.stderr
    # A normal exit waits for a non-daemon thread; so does `run` (it leaves the exit to Python).
    assert marker.read_text() == "done"
    assert "ATEXIT-RAN" in done.stderr


def test_a_closed_pipe_ends_the_command_as_before(env: dict[str, str]) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads the command's output
    try:
        done = run_cli(["evaluate", "--all", "--json"], env, stdout=writer)
    finally:
        os.close(writer)
    # The command's own answer to a reader gone away (`cli.EXIT_BROKEN_PIPE`), silently.
    assert done.returncode == 141, done.stderr
    assert done.stderr == "ATEXIT-RAN\n"


def test_a_stream_that_cannot_be_flushed_leaves_the_exit_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datamantri_alerts.cli.startup import exit_at_once

    class FullDisk(io.StringIO):
        def flush(self) -> None:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sys, "stdout", FullDisk())
    # Returns instead of ending the process (which would end this test run): Python's own exit
    # then reports the error and exits with 120, as without `exit_at_once`.
    exit_at_once(0)


def test_a_status_beyond_a_c_int_leaves_the_exit_to_python() -> None:
    from datamantri_alerts.cli.startup import exit_at_once

    exit_at_once(2**31)  # returns: `os._exit` would raise OverflowError; Python's exit does not
    exit_at_once(-(2**31) - 1)
