"""Shared pieces of the benchmarks: scratch stores, local servers, bulk alerts, child runs.

Nothing here talks to anything but 127.0.0.1. Every loop is bounded.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PG_ADMIN_URL = os.environ.get(
    "ALERTS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def compile_package() -> None:
    """Write the package's bytecode once, as `pip install` does for an installed package.

    A checkout installed in editable mode in an environment with `PYTHONDONTWRITEBYTECODE=1`
    (this machine sets it) would otherwise compile every one of our modules from source in
    every child process (~0.2 s of each `alerts` run), which no installation pays. Existing
    bytecode is still read with that variable set; stale files are recompiled by mtime.
    """
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "datamantri_alerts"), quiet=1)


compile_package()


# --------------------------------------------------------------------------- stores


@contextmanager
def scratch_url(dialect: str, tmp: Path) -> Iterator[str]:
    """A store URL on an empty SQLite file or a scratch PostgreSQL database (dropped after)."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    from sqlalchemy import create_engine, text

    name = f"alerts_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def insert_alerts(
    url: str,
    count: int,
    *,
    condition_type: str,
    config: Any,
    channels: Sequence[str] = (),
    recipients: Any = None,
    datasources: Sequence[dict[str, Any]] = (),
) -> None:
    """Create the store and `count` active alerts in bulk (setup, not measured).

    `recipients` may be a dict, or a callable index -> dict (a sink path per alert); so may
    `config` (a query per alert).
    """
    from sqlalchemy import insert

    from datamantri_alerts.store.engine import open_store
    from datamantri_alerts.store.models import Alert, DataSource

    now = datetime.now(UTC)
    store = open_store(url)
    try:
        with store.transaction() as session:
            if datasources:
                session.execute(
                    insert(DataSource),
                    [{**d, "created_at": now, "updated_at": now} for d in datasources],
                )
            rows = []
            for i in range(count):
                rows.append(
                    {
                        "name": f"bench alert {i:06d}",
                        "description": "benchmark",
                        "condition_type": condition_type,
                        "condition_config": config(i) if callable(config) else config,
                        "channels": list(channels),
                        "recipients": recipients(i) if callable(recipients) else recipients or {},
                        "is_active": True,
                        "severity": "warning",
                        "repeat_interval_minutes": 240,
                        "notify_on_resolve": True,
                        "pending_evaluations": 1,
                        "state": "ok",
                        "consecutive_hits": 0,
                        "trigger_count": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                if len(rows) == 5000:
                    session.execute(insert(Alert), rows)
                    rows = []
            if rows:
                session.execute(insert(Alert), rows)
    finally:
        store.dispose()


def register_bench_checks() -> None:
    """Make the `instant` and `firing` benchmark alert types known in this process."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    from datamantri_alerts import checks

    checks.BUILTIN_CHECKS.setdefault("instant", "bench_checks")
    checks.BUILTIN_CHECKS.setdefault("always_firing", "bench_checks_firing")


# --------------------------------------------------------------------------- local servers


@contextmanager
def slow_server(delay_ms: float) -> Iterator[str]:
    """A local HTTP server in its own process answering every GET/POST after delay_ms."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "sink.py"), "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- measuring


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, args: Sequence[str], env: dict[str, str] | None = None) -> Any:
    """Run `script --child args...` in a fresh interpreter; it prints one JSON line last."""
    done = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"child run failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def verdict(measured: float, target: float) -> str:
    return "PASS" if measured <= target else "FAIL"


# --------------------------------------------------------------------------- evaluator runs


def evaluate_in_child(script: Path, url: str, concurrency: int, *, all_: bool = True) -> Any:
    """One `run_evaluation` in a fresh interpreter: wall time, statements, peak memory."""
    return run_child(
        script, ["--url", url, "--concurrency", str(concurrency)] + (["--all"] if all_ else [])
    )


def child_main(argv: Sequence[str]) -> None:
    """The child side of `evaluate_in_child`: run the evaluator once, print JSON."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--all", action="store_true")
    options = parser.parse_args(argv)

    # The process runs as `alerts evaluate` does (`datamantri_alerts.cli.startup`): no cyclic
    # collection during start-up, then start-up's objects frozen and the young generation
    # collected every YOUNG_THRESHOLD allocations; the run with the CLI's switch interval.
    from datamantri_alerts.cli.startup import pause_gc, resume_gc, switching_less

    pause_gc()
    register_bench_checks()
    from sqlalchemy import event

    from datamantri_alerts.clock import SystemClock
    from datamantri_alerts.services.evaluate import Progress, RunOptions, run_evaluation
    from datamantri_alerts.store.engine import open_store

    store = open_store(options.url)
    resume_gc()  # where the command resumes it: once the store is open (`cli.context`)
    # Warm what every run pays once (imports of the check modules, pydantic models, requests),
    # so the figure is the evaluator's work, not the interpreter's first imports.
    from datamantri_alerts.checks import get_check
    from datamantri_alerts.services import checking, delivery, outbox  # noqa: F401

    for name in ("instant", "always_firing", "datasource_failure"):
        get_check(name)
    import requests  # noqa: F401

    from datamantri_alerts.channels import get_channel

    for name in ("slack", "teams"):
        get_channel(name)

    statements = [0]

    def count(*_args: Any) -> None:
        statements[0] += 1

    event.listen(store.engine, "before_cursor_execute", count)
    rss_before = peak_rss_mb()
    cpu_before = time.process_time()
    marks: dict[str, float] = {}
    progress = Progress(on_delivering=lambda: marks.setdefault("delivering", time.perf_counter()))
    started = time.perf_counter()
    with switching_less():
        summary = run_evaluation(
            store,
            SystemClock(),
            RunOptions(all=options.all, concurrency=options.concurrency, host="bench"),
            progress,
        )
    ended = time.perf_counter()
    wall = ended - started
    cpu = time.process_time() - cpu_before
    store.dispose()
    outcomes: dict[str, int] = {}
    for result in summary.results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "checking": marks.get("delivering", ended) - started,
                "delivering": ended - marks.get("delivering", ended),
                "evaluated": len(summary.results),
                "outcomes": outcomes,
                "notifications": summary.notifications.as_json(),
                "statements": statements[0],
                "rss_before_mb": rss_before,
                "peak_rss_mb": peak_rss_mb(),
                "problems": summary.problems[:3],
            }
        )
    )
