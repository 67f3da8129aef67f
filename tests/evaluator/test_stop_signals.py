"""SIGTERM (systemd, Kubernetes) stops `alerts evaluate` the way Ctrl-C does: queries cancelled,
leases released, the run recorded as interrupted, exit 128 + the signal number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select, text

from datamantri_alerts.store.engine import normalize_url, open_store
from datamantri_alerts.store.models import EvaluatorRun, Notification
from tests.conftest import PG_ADMIN_URL, Cli, dump_store
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alerts

#: Serial (scripts/test.sh runs it alone): signals reach processes at moments found by
#: polling, racing their checks and deliveries.
pytestmark = pytest.mark.serial


def _sleeping_queries(pg_url: str) -> int:
    """Backends of the test database sleeping in pg_sleep right now (the query text may show
    a FETCH from a server-side cursor, so the wait event says it, not the text)."""
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "select count(*) from pg_stat_activity where state = 'active' "
                        "and wait_event = 'PgSleep' and datname = :db "
                        "and pid <> pg_backend_pid()"
                    ),
                    {"db": make_url(pg_url).database},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _wait_for(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _stop_when(evaluator: Any, signum: int, condition: Any, what: str) -> tuple[Any, Any]:
    """Once `condition` holds, send `signum` to the evaluator; its (stdout, stderr) at exit."""
    try:
        _wait_for(condition, what)
        evaluator.send_signal(signum)
        return evaluator.communicate(timeout=60)  # type: ignore[no-any-return]
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
            evaluator.wait()


def _slow_alert(pg_url: str, tmp_path: Path) -> Cli:
    """A `sql` alert named slow whose query sleeps 120 s on the test database."""
    cli = Cli(pg_url)
    assert cli("datasources", "add", "wh", "--name", "WH", "--url", pg_url).exit_code == 0
    definition = tmp_path / "slow.yaml"
    definition.write_text(
        "name: slow\ncondition_type: sql\n"
        "condition_config: {datasource_id: wh, timeout_seconds: 300, "
        "query: 'select pg_sleep(120)'}\n"
    )
    assert cli("create", "--from-file", str(definition)).exit_code == 0
    return cli


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_signal_stops_a_run_with_a_pg_sleep_check_cleanly(
    pg_url: str, tmp_path: Path, signame: str, code: int
) -> None:
    cli = _slow_alert(pg_url, tmp_path)

    alerts = [sys.executable, "-m", "datamantri_alerts", "--db", pg_url]
    evaluator = subprocess.Popen(
        [*alerts, "--hostname", "host-a", "evaluate", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    _, stderr = _stop_when(
        evaluator,
        getattr(signal, signame),
        lambda: _sleeping_queries(pg_url) == 1,
        "the check's pg_sleep to run",
    )
    assert evaluator.returncode == code, stderr
    lines = stderr.decode().splitlines()
    assert lines == [
        f"alerts evaluate: interrupted by {signame}; stopped (queries cancelled, leases "
        "released, run recorded as interrupted)"
    ]
    # The warehouse query was cancelled, not left running after the client went away.
    _wait_for(lambda: _sleeping_queries(pg_url) == 0, "the pg_sleep backend to stop", 10)

    store = create_engine(normalize_url(pg_url))
    try:
        with store.connect() as conn:
            run = conn.execute(text("select outcome, finished_at, message from evaluator_runs"))
            [(outcome, finished_at, message)] = run.all()
            leases = conn.execute(text("select lease_holder, lease_expires_at from alerts")).all()
    finally:
        store.dispose()
    assert outcome == "interrupted"
    assert finished_at is not None
    assert message.startswith(f"interrupted by {signame}")
    assert leases == [(None, None)]
    status = cli("status", "--json")
    assert status.json()["runs"][0]["outcome"] == "interrupted", status.stdout

    # Another host's run takes the alert over at once (no lease left to expire).
    assert cli("edit", "slow", "--config", "query=select 1 as x where false").exit_code == 0
    taken = cli("--hostname", "host-b", "evaluate", "--json")
    assert taken.exit_code == 0, taken.output
    assert [(r["name"], r["outcome"]) for r in taken.json()["results"]] == [("slow", "ok")]


def test_sigterm_during_a_dry_run_cancels_its_query_and_writes_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    _slow_alert(pg_url, tmp_path)
    before = dump_store(pg_url)
    evaluator = subprocess.Popen(
        [sys.executable, "-m", "datamantri_alerts", "--db", pg_url, "evaluate", "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, stderr = _stop_when(
        evaluator,
        signal.SIGTERM,
        lambda: _sleeping_queries(pg_url) == 1,
        "the check's pg_sleep to run",
    )
    assert evaluator.returncode == 143, stderr
    assert out == b""
    assert stderr.decode() == (
        "alerts evaluate: interrupted by SIGTERM; stopped (queries cancelled, nothing written)\n"
    )
    _wait_for(lambda: _sleeping_queries(pg_url) == 0, "the pg_sleep backend to stop", 10)
    assert dump_store(pg_url) == before


def test_sigterm_while_delivering_drops_the_queued_sends_and_releases_them(
    sqlite_url: str, flags: Flags, sink: Sink
) -> None:
    """One sender (--concurrency 1) held by a stalled webhook, five sends queued behind it:
    SIGTERM stops the run once the send in flight ends; the queued five are not sent by this
    run but released, and the next run delivers all six, each once."""
    store = open_store(sqlite_url)
    names = [f"n{i}" for i in range(6)]
    make_alerts(
        store,
        flags,
        [
            {"name": n, "key": "all", "channels": ["slack"], "recipients": {"slack": sink.hook(n)}}
            for n in names
        ],
    )
    store.dispose()
    flags.set(all="firing")
    sink.on("n0", "stall")
    env = {"ALERTS_HTTP_READ_TIMEOUT": "3", "ALERTS_RETRY_ATTEMPTS": "1"}
    evaluator = alerts_process(sqlite_url, "evaluate", "--quiet", "--concurrency", "1", env=env)
    _, stderr = _stop_when(
        evaluator, signal.SIGTERM, lambda: len(sink.received) == 1, "the first send to stall"
    )
    assert evaluator.returncode == 143, stderr
    assert [r.path for r in sink.received] == ["/hook/n0"]  # nothing sent after the SIGTERM

    store = open_store(sqlite_url)
    try:
        with store.session() as session:
            rows = session.execute(
                select(Notification.status, Notification.lease_holder, Notification.sent_at)
            ).all()
            [outcome] = session.scalars(select(EvaluatorRun.outcome)).all()
    finally:
        store.dispose()
    assert rows == [("pending", None, None)] * 6
    assert outcome == "interrupted"

    again = Cli(sqlite_url)("evaluate", "--json", env=env)
    assert again.exit_code == 0, again.output
    assert again.json()["notifications"]["sent"] == 6
    delivered = sorted(r.path for r in sink.received if r.status == 200)
    assert delivered == sorted(f"/hook/{n}" for n in names)
