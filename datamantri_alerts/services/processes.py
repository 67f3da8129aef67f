"""A large run shared by two processes: one `alerts evaluate`, checked on two CPUs.

Claiming, judging and writing a run's results is Python work under one interpreter lock, so one
process uses one CPU however many check slots it has; at thousands of due alerts that CPU, not
the data sources, sets how long the run takes (5,000 `freshness` alerts: ~2 s of it, with the
second CPU mostly idle). A run with `AUTO_MIN_DUE` or more alerts due, where the process may run
on two CPUs or more, forks a helper once the run is recorded and before any thread of its own
starts (`fork_helper`). The helper is a second evaluator of the same run: it claims batches of
the same due alerts through the store's leases, exactly as two concurrent `alerts evaluate`
share them (each alert evaluated once; `tests/reliability/test_overlap.py`), checks them, writes
their results, and sends its summary back through a pipe. The run that forked it reports,
counts and exports the whole run, then delivers the notifications of both. `--concurrency` is
shared out (`shares`), so the run's sessions on a data source stay within it.

Never silent: a helper that fails, is killed or exits without its summary is a problem of the
run (exit 1) and its leases are released at once, so the alerts it held are taken by the next
run. A run interrupted by a signal stops its helper with SIGTERM; the helper cancels its queries
and releases its leases as an interrupted run does (`interrupts`), and is killed if it has not
exited within `STOP_GRACE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from typing import Any, NoReturn

log = logging.getLogger(__name__)

#: Fewer due alerts than this are evaluated by one process (`process_count`'s automatic
#: choice): below it the helper's start (a fork, a store connection, data-source sessions) is
#: not paid back.
AUTO_MIN_DUE = 1000
#: How long a stopped helper has to cancel its queries and release its leases before it is
#: killed (SIGKILL); its leases are then released by the run that started it.
STOP_GRACE_SECONDS = 10.0
#: The most processes a run may be given (`--processes`).
MAX_PROCESSES = 8


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def process_count(requested: int, due: int, concurrency: int) -> int:
    """How many processes evaluate a run of `due` alerts.

    `requested`: 1 to `MAX_PROCESSES` as asked (`--processes`), or 0 for the automatic choice:
    2 when `AUTO_MIN_DUE` or more alerts are due and the process may run on two CPUs or more,
    else 1. Never more than `concurrency` (each process needs a check slot), and 1 where the
    platform cannot fork.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        return 1
    if requested == 0:
        requested = 2 if due >= AUTO_MIN_DUE and usable_cpus() >= 2 else 1
    return max(1, min(requested, MAX_PROCESSES, concurrency))


def shares(concurrency: int, processes: int) -> list[int]:
    """`concurrency` check slots shared out between `processes` (the first, the run's own
    process, takes what does not divide evenly): `shares(16, 2) == [8, 8]`,
    `shares(5, 2) == [3, 2]`. Their sum is `concurrency`."""
    base, extra = divmod(concurrency, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


@dataclass
class Helper:
    """A forked helper evaluator, seen from the run that started it.

    `outcome` is its last message once read: `("done", value)` with what its work returned,
    `("interrupted", text)`, `("failed", text)`, or None when it sent none (killed, crashed).
    """

    pid: int
    connection: Connection
    outcome: tuple[str, Any] | None = None
    exit_status: int | None = None
    _reader: threading.Thread | None = field(default=None, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the helper's last message is read and the process has exited; False when
        `timeout` (seconds) passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._reader is not None:
            self._reader.join(timeout)
            if self._reader.is_alive():
                return False
        while self.exit_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        self.connection.close()
        return True

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds; reaped."""
        if self.exit_status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if self.wait(grace):
            return
        log.warning("helper evaluator %d did not stop within %.0f s: killed", self.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def describe_failure(self) -> str | None:
        """None when the helper finished its work; else one line saying what happened."""
        if self.outcome is not None and self.outcome[0] == "done":
            return None
        if self.outcome is not None:
            kind, text = self.outcome
            return f"helper evaluator process {self.pid} {kind}: {text}"
        how = "was killed" if (self.exit_status or 0) < 0 else f"exited ({self.exit_status})"
        return f"helper evaluator process {self.pid} {how} before sending its results"


def fork_helper(
    work: Callable[[Callable[[int], None]], Any], on_checked: Callable[[int], None]
) -> Helper:
    """Fork a helper running `work(progress)`; what it returns is sent back (pickled) as the
    helper's outcome. `progress(n)`, called in the helper, calls `on_checked(n)` here (on a
    reader thread), so a progress bar counts both processes.

    Call it before this process starts threads of its own for the run: the child has only the
    calling thread. Buffered output is flushed first, so nothing is written twice.
    """
    reader_end, writer_end = Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper
        reader_end.close()
        _serve(work, writer_end)
    writer_end.close()
    helper = Helper(pid=pid, connection=reader_end)

    def read() -> None:
        while True:
            try:
                kind, value = reader_end.recv()
            except (EOFError, OSError):
                return  # exited without a last message: `outcome` stays None
            except Exception as exc:  # an unreadable message is the helper's failure
                helper.outcome = ("failed", f"unreadable message ({type(exc).__name__})")
                return
            if kind == "checked":
                on_checked(int(value))
                continue
            helper.outcome = (kind, value)
            return

    helper._reader = threading.Thread(target=read, name=f"helper-{pid}", daemon=True)
    helper._reader.start()
    return helper


def _serve(work: Callable[[Callable[[int], None]], Any], out: Connection) -> NoReturn:
    """The helper's life: run `work`, send its outcome, leave without running the parent's
    exit handlers or finalizers (`os._exit`)."""
    code = 1
    try:
        try:
            value = work(lambda n: out.send(("checked", n)))
            out.send(("done", value))
            code = 0
        except KeyboardInterrupt as exc:
            from datamantri_alerts.interrupts import exit_code_for

            out.send(("interrupted", str(exc) or "interrupted"))
            code = exit_code_for(exc)
        except BaseException as exc:
            out.send(("failed", f"{type(exc).__name__}: {exc}"))
    except BaseException:  # the pipe is gone: the parent sees no outcome and says so
        pass
    finally:
        os._exit(code)
