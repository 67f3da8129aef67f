"""Recorded job runs: `alerts runs record`, `alerts runs wrap` and `alerts runs list`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.store.models import Dashboard, JobRun, Pipeline

if TYPE_CHECKING:
    from datamantri_alerts.store.engine import Store

log = logging.getLogger(__name__)

JOB_KINDS = ("pipeline", "dashboard")
RUN_STATUSES = ("success", "failed", "running")
#: How much of a wrapped command's stderr is kept with its run.
STDERR_TAIL_BYTES = 4_000
STDERR_TAIL_LINES = 20


def find_job(session: Session, job_id: str, kind: str | None = None) -> tuple[str, Any]:
    """The pipeline or dashboard with this id; `kind` settles an id both have."""
    if kind is not None and kind not in JOB_KINDS:
        raise InputError(f"must be pipeline or dashboard, got {kind!r}", field="--kind")
    found: list[tuple[str, Any]] = []
    for name, model in (("pipeline", Pipeline), ("dashboard", Dashboard)):
        if kind in (None, name):
            row = session.get(model, job_id)
            if row is not None:
                found.append((name, row))
    if not found:
        what = kind or "pipeline or dashboard"
        raise NotFoundError(f"no {what} with id {job_id!r}", field="JOB_ID")
    if len(found) > 1:
        raise InputError(
            f"both a pipeline and a dashboard have id {job_id!r}; say which with --kind",
            field="JOB_ID",
        )
    job_kind, row = found[0]
    source = (row.runs or {}).get("source", "recorded")
    if source != "recorded":
        raise InputError(
            f"{job_kind} {job_id!r} takes its runs from {source}, so recorded runs would be "
            "ignored (set runs.source to recorded to record them)",
            field="JOB_ID",
        )
    return job_kind, row


def record_run(
    session: Session,
    job_id: str,
    status: str,
    clock: Clock,
    *,
    kind: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    error: str | None = None,
    exit_code: int | None = None,
    command: str | None = None,
    host: str | None = None,
) -> JobRun:
    """Add a run; a finished one without times finished now, and started when it finished."""
    if status not in RUN_STATUSES:
        raise InputError(f"must be one of {', '.join(RUN_STATUSES)}, got {status!r}", "--status")
    for name, value in (("--started-at", started_at), ("--finished-at", finished_at)):
        if value is not None and value.tzinfo is None:
            raise InputError("needs a time zone offset", field=name)
    job_kind, _ = find_job(session, job_id, kind)
    now = clock.now()
    if status != "running" and finished_at is None:
        finished_at = now
    if started_at is None:
        started_at = finished_at or now
    if finished_at is not None and finished_at < started_at:
        raise InputError("is before --started-at", field="--finished-at")
    run = JobRun(
        job_kind=job_kind,
        job_id=job_id,
        status=status,
        started_at=started_at,
        finished_at=finished_at if status != "running" else None,
        exit_code=exit_code,
        error=error,
        command=command,
        host=host,
        created_at=now,
    )
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session,
    run_id: int,
    clock: Clock,
    *,
    exit_code: int,
    error: str | None,
) -> JobRun:
    run = session.get(JobRun, run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id}")
    run.status = "success" if exit_code == 0 else "failed"
    run.exit_code = exit_code
    run.error = error if exit_code != 0 else None
    run.finished_at = clock.now()
    return run


def list_runs(
    session: Session,
    job_id: str | None = None,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 20,
) -> list[JobRun]:
    query = select(JobRun)
    if job_id is not None:
        query = query.where(JobRun.job_id == job_id)
    if kind is not None:
        query = query.where(JobRun.job_kind == kind)
    if status is not None:
        query = query.where(JobRun.status == status)
    query = query.order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    return list(session.scalars(query))


def run_as_dict(run: JobRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_kind": run.job_kind,
        "job_id": run.job_id,
        "status": run.status,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "exit_code": run.exit_code,
        "error": run.error,
        "command": run.command,
        "host": run.host,
    }


# --------------------------------------------------------------------------- wrap


@dataclass
class WrappedResult:
    exit_code: int
    stderr_tail: str
    error: str | None  # what to record for a failed run
    #: False when the command could not be started at all (not found, not executable).
    started: bool = True


@dataclass
class WrapOutcome:
    """What `wrap_job` did: the command's exit code, and why its run was not recorded."""

    exit_code: int
    #: Why the command could not even start (command not found, ...), else None.
    start_error: str | None
    #: One line: why the run is missing from the store or still shows running, else None.
    not_recorded: str | None
    run_id: int | None = None


def wrap_job(
    open_store: Callable[[], Store],
    job_id: str,
    argv: Sequence[str],
    clock: Clock,
    *,
    kind: str | None = None,
    host: str | None = None,
    stderr: IO[bytes] | None = None,
) -> WrapOutcome:
    """Run `argv` as a run of job `job_id` and record it; the command always runs.

    The command starts at once; its start is recorded meanwhile (status running), its end once it
    exits (success for exit code 0, else failed, with the tail of its stderr). Nothing about
    the store (unreachable, an unknown job id, a migration failure) stops or delays the start of
    the command: it is reported in `not_recorded`, one line. Exit codes are a shell's: 127 command
    not found, 126 not executable, 128+N killed by signal N.
    """
    import shlex

    command = shlex.join(argv)
    started_at = clock.now()
    start: dict[str, Any] = {}

    def record_start() -> None:
        try:
            with open_store().transaction() as session:
                run = record_run(
                    session,
                    job_id,
                    "running",
                    clock,
                    kind=kind,
                    started_at=started_at,
                    command=command,
                    host=host,
                )
                start["run"] = (run.id, run.job_kind)
        except Exception:  # a monitoring problem never stops the job; the end is tried again
            log.debug("recording the start of a run of %s failed", job_id, exc_info=True)

    recorder = threading.Thread(target=record_start, name="record-run-start", daemon=True)
    _start_without_signals(recorder)
    result = run_wrapped(argv, stderr)
    recorder.join()

    run_id, job_kind = start.get("run", (None, kind))
    status = "success" if result.exit_code == 0 else "failed"
    try:
        with open_store().transaction() as session:
            if run_id is not None:
                finish_run(session, run_id, clock, exit_code=result.exit_code, error=result.error)
                recorded = run_id
            else:
                recorded = record_run(
                    session,
                    job_id,
                    status,
                    clock,
                    kind=job_kind,
                    started_at=started_at,
                    exit_code=result.exit_code,
                    error=result.error,
                    command=command,
                    host=host,
                ).id
        not_recorded = None
        run_id = recorded
    except Exception as exc:
        log.debug("recording the run of %s failed", job_id, exc_info=True)
        reason = describe_failure(exc)
        if run_id is None:
            not_recorded = (
                f"the run of {job_id} was not recorded ({reason}); "
                f"the job ran and exited {result.exit_code}"
            )
        else:
            not_recorded = (
                f"run {run_id} of {job_id} still shows running: its end was not recorded "
                f"({reason}); the job exited {result.exit_code}"
            )
    start_error = None if result.started else result.error
    return WrapOutcome(result.exit_code, start_error, not_recorded, run_id)


def describe_failure(exc: BaseException) -> str:
    """One line, secrets masked: a driver's own message, else the exception's."""
    from datamantri_alerts.secrets import redact_text

    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    if not text:
        return type(inner).__name__
    first = redact_text(text).splitlines()[0].strip()
    return first[:300]


def _stderr_tail(data: bytes) -> str:
    from datamantri_alerts.secrets import redact_text, secrets_from_env

    text = data.decode("utf-8", errors="replace")
    lines = text.rstrip("\n").splitlines()[-STDERR_TAIL_LINES:]
    return redact_text("\n".join(lines), secrets_from_env())


def run_wrapped(argv: Sequence[str], stderr: IO[bytes] | None = None) -> WrappedResult:
    """Run a command, passing its stderr through while keeping its tail; never raises for the
    command's own failure. Signals that stop the wrapper are forwarded to the command."""
    sink = stderr if stderr is not None else _binary_stderr()
    # Forwarding is in place before the command starts: a SIGTERM that arrives while it is
    # being started (systemd stopping the unit, timeout(1)) is handed to it once it runs,
    # instead of stopping the wrapper and leaving the command running, unrecorded.
    forwarding = _SignalForwarding()
    try:
        process = subprocess.Popen(list(argv), stderr=subprocess.PIPE)
    except FileNotFoundError:
        forwarding.not_started()
        return WrappedResult(127, "", f"command not found: {argv[0]}", started=False)
    except PermissionError:
        forwarding.not_started()
        return WrappedResult(126, "", f"permission denied: {argv[0]}", started=False)
    except OSError as exc:
        forwarding.not_started()
        return WrappedResult(126, "", f"cannot run {argv[0]}: {exc.strerror or exc}", started=False)
    except BaseException:
        forwarding.not_started()
        raise
    forwarding.attach(process)
    tail: deque[bytes] = deque()
    kept = 0
    assert process.stderr is not None
    fd = process.stderr.fileno()
    try:
        while True:
            try:
                chunk = os.read(fd, 65_536)
            except InterruptedError:
                continue
            if not chunk:
                break
            with contextlib.suppress(OSError):  # a closed terminal must not stop the job
                sink.write(chunk)
                sink.flush()
            tail.append(chunk)
            kept += len(chunk)
            while kept - len(tail[0]) >= STDERR_TAIL_BYTES and len(tail) > 1:
                kept -= len(tail.popleft())
        while True:
            try:
                returncode = process.wait()
                break
            except KeyboardInterrupt:  # the command got the same Ctrl-C; wait for it to stop
                continue
    finally:
        process.stderr.close()
        forwarding.restore()

    text = _stderr_tail(b"".join(tail)[-STDERR_TAIL_BYTES:])
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        exit_code = 128 + signum
        error = f"killed by {name}" + (f"\n{text}" if text else "")
    else:
        exit_code = returncode
        error = (text or f"exit code {returncode}") if returncode != 0 else None
    return WrappedResult(exit_code, text, error)


def _binary_stderr() -> IO[bytes]:
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is not None:
        sys.stderr.flush()
        return buffer
    return _TextSink(sys.stderr)  # type: ignore[return-value]


class _TextSink:
    """Bytes into a text stream (stderr replaced by one without a buffer)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8", errors="replace"))

    def flush(self) -> None:
        self.stream.flush()


#: Signals the wrapper passes on to the command (systemd, timeout(1), kill, a supervisor).
FORWARDED_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2")
#: Signals a terminal sends to its whole foreground process group, the command included.
_TERMINAL_SIGNALS = ("SIGINT", "SIGQUIT")


def _in_terminal_foreground() -> bool:
    """Whether this process is in the foreground process group of its terminal."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except (AttributeError, OSError, ValueError):
            continue
    return False


@contextlib.contextmanager
def _blocked(signums: Iterable[int]) -> Iterator[None]:
    """`signums` blocked in this thread meanwhile (where the platform can: `pthread_sigmask`);
    one that arrives waits, and is handled once the block ends."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:
        yield
        return
    masked = block(signal.SIG_BLOCK, set(signums))
    try:
        yield
    finally:
        block(signal.SIG_SETMASK, masked)


def _start_without_signals(thread: threading.Thread) -> None:
    """Start `thread` with the forwarded signals blocked in it (a new thread inherits its
    creator's mask), so the kernel hands them to the main thread, where Python runs handlers:
    one delivered to another thread while `_SignalForwarding.restore` swaps the handlers could
    otherwise be lost."""
    if threading.current_thread() is not threading.main_thread():
        thread.start()
        return
    with _blocked(getattr(signal, name) for name in FORWARDED_SIGNALS if hasattr(signal, name)):
        thread.start()


class _SignalForwarding:
    """Signals sent to the wrapper go to the command too; the wrapper itself keeps running until
    the command exits, so the run is recorded. Ctrl-C on a terminal already reached the
    command (same process group), so it is not sent twice.

    Installed before the command starts (`attach` names it once it runs): a signal that comes
    before is kept and sent to the command by `attach`, or, when the command could not start
    (`not_started`), raised again for the handlers from before. `restore` puts those handlers
    back with the signals blocked meanwhile, so one arriving then waits for them. Off the main
    thread (where Python cannot set handlers) it does nothing."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._early: list[int] = []
        self._previous: dict[int, Any] = {}
        self._foreground = False
        self._terminal: set[int] = set()
        if threading.current_thread() is not threading.main_thread():
            return
        self._foreground = _in_terminal_foreground()
        self._terminal = {getattr(signal, name) for name in _TERMINAL_SIGNALS}
        for name in FORWARDED_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._forward)
            except (ValueError, OSError):
                continue

    def _forward(self, signum: int, _frame: Any) -> None:
        if self._foreground and signum in self._terminal:
            return
        process = self._process
        if process is None:
            self._early.append(signum)  # the command is being started
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def attach(self, process: subprocess.Popen[bytes]) -> None:
        """The command runs: signals go to it, the ones that came while it started first."""
        self._process = process
        while self._early:
            self._forward(self._early.pop(0), None)

    def not_started(self) -> None:
        """The command could not start: the handlers from before, back in place, and the
        signals that came meanwhile raised again for them (a SIGTERM still stops the wrapper)."""
        early, self._early = self._early, []
        self.restore()
        for signum in early:
            signal.raise_signal(signum)

    def restore(self) -> None:
        """The handlers from before, back in place (a signal arriving meanwhile is blocked
        until they all are, then handled by its own)."""
        previous, self._previous = self._previous, {}
        if not previous:
            return
        with _blocked(previous):
            for signum, handler in previous.items():
                signal.signal(signum, handler)
