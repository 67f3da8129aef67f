"""Faults: a sink down for 10 fake minutes, a stalled channel, a hanging data source, the store
going away mid-run. Everything runs against real loopback servers and real stores.

    .venv/bin/pytest tests/reliability/test_faults.py -s
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from datamantri_alerts.channels.retry import RetryPolicy
from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.engine import Store, open_store
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.checks.servers import black_hole
from tests.conftest import PG_ADMIN_URL, Cli, dump_store, utc
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alert, make_alerts


def notification_rows(store: Store) -> list[Notification]:
    with store.session() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


# --------------------------------------------------------------------------- sink down 10 min


def test_sink_down_for_ten_fake_minutes_then_recovers_gets_the_message_once(
    sqlite_store: Store, flags: Flags, sink: Sink
) -> None:
    """The evaluator runs every fake minute; the sink answers 503 for the first 10 minutes."""
    store = sqlite_store
    clock = FrozenClock(utc(2024, 6, 1, 8, 0))
    start = clock.now()
    make_alert(store, flags, "down", recipients={"slack": sink.hook("down")})
    flags.set(down="firing")
    sink.on("down", *[503] * 1000)
    waits: list[float] = []
    options = RunOptions(
        host="h1",
        retry_policy=RetryPolicy(attempts=2, initial_delay=5, jitter=0),
        sleep=waits.append,  # in-run backoff on the fake clock: recorded, not slept
    )
    timeline: list[tuple[int, str, int]] = []
    delivered_at: int | None = None
    for minute in range(0, 31):
        clock.set(start + timedelta(minutes=minute))
        if minute == 10:
            sink.on("down")  # the service is back
        before = len(sink.received)
        summary = run_evaluation(store, clock, options)
        tried = len(sink.received) - before
        [row] = notification_rows(store)
        timeline.append((minute, row.status, tried))
        # Waiting for a retry is not a failed run until the message is 15 minutes old.
        assert summary.ok is (row.status == "sent" or minute < 15), minute
        if row.status == "sent" and delivered_at is None:
            delivered_at = minute
    # Down: tried at minutes 0, 1, 3, 7 (1, 2, 4 minutes apart), 2 attempts each, 5 s apart.
    attempts_while_down = [(m, n) for m, _, n in timeline if n and m < 10]
    assert attempts_while_down == [(0, 2), (1, 2), (3, 2), (7, 2)]
    # The in-run backoff (5 s) once per failed run (the other waits are Slack's pacing).
    assert waits.count(5.0) == 4
    # Back up at minute 10: the next retry (8 minutes after minute 7) delivers it, once.
    assert delivered_at == 15
    assert [r.status for r in sink.received] == [503] * 8 + [200]
    assert sum(n for _, _, n in timeline if _ == "sent") == 1
    with store.session() as session:
        [episode] = session.scalars(select(AlertHistory))
    assert [e["status"] for e in episode.notification_errors] == ["retrying"] * 4
    assert [e["status"] for e in episode.notifications_sent] == ["sent"]
    print(f"\n[faults] sink down 0-10 fake min: {timeline}")


# --------------------------------------------------------------------------- a stalled channel


@pytest.mark.serial  # wall-clock bounds; a store dropped within a check's delay
def test_a_stalled_teams_webhook_does_not_delay_slack(
    sqlite_url: str, flags: Flags, sink: Sink
) -> None:
    """4 alerts on Slack and Teams, 2 senders (--concurrency 2); every Teams webhook holds its
    request until the read timeout. (With one pool of senders for all channels, two stalled
    Teams sends took every slot and the other Slack messages waited for the Teams timeout.)"""
    store = open_store(sqlite_url)
    names = [f"s-{i:02d}" for i in range(4)]
    make_alerts(
        store,
        flags,
        [
            {
                "name": n,
                "key": "all",
                "channels": ["slack", "teams"],
                "recipients": {"slack": sink.hook(f"slack/{n}"), "teams": sink.hook(f"teams/{n}")},
            }
            for n in names
        ],
    )
    flags.set(all="firing")
    for n in names:
        sink.on(f"teams/{n}", "stall")
    read_timeout = 2.0
    env = {"ALERTS_HTTP_READ_TIMEOUT": str(read_timeout), "ALERTS_RETRY_ATTEMPTS": "1"}
    proc = alerts_process(sqlite_url, "evaluate", "--json", "--concurrency", "2", env=env)

    def slack_sent() -> int:
        with store.session() as session:
            rows = session.scalars(
                select(Notification.status).where(Notification.channel == "slack")
            ).all()
        return sum(1 for s in rows if s == "sent")

    first_request: float | None = None
    deadline = time.monotonic() + 30
    while slack_sent() < len(names):
        assert time.monotonic() < deadline, "Slack deliveries never all recorded"
        if first_request is None and sink.received:
            first_request = sink.received[0].at
        time.sleep(0.05)
    recorded_after = time.monotonic() - (first_request or sink.received[0].at)
    slack_arrivals = [r.at for r in sink.received if r.path.startswith("/hook/slack/")]
    teams_in_flight = [r for r in sink.received if r.path.startswith("/hook/teams/")]
    assert proc.poll() is None  # the Teams sends are still stalled...
    assert len(teams_in_flight) == 2 and all(r.status == 0 for r in teams_in_flight)
    # ... yet every Slack message arrived and was recorded well within the Teams timeout.
    spread = max(slack_arrivals) - min(r.at for r in sink.received)
    assert spread < read_timeout / 2, spread
    assert recorded_after < read_timeout, recorded_after
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0  # Teams timed out: left pending for a retry, not a failure yet
    report = json.loads(out)
    assert report["notifications"] == {"sent": 4, "failed": 0, "pending": 4, "suppressed": 0}
    store.dispose()
    print(
        f"\n[faults] stalled Teams: 4 Slack arrived within {spread:.2f} s, recorded "
        f"{recorded_after:.2f} s after the first request; Teams read timeout {read_timeout} s"
    )


# --------------------------------------------------------------------------- a hanging source


@pytest.mark.serial  # wall-clock bounds; a store dropped within a check's delay
def test_a_hanging_data_source_is_cut_off_by_its_timeout(
    sqlite_url: str, flags: Flags, sink: Sink
) -> None:
    """PostgreSQL and HTTP sources on a port that accepts and never answers, timeout 2 s; a
    healthy alert in the same run is notified without waiting for them."""
    cli = Cli(sqlite_url)
    with black_hole() as port:
        for ds, url in (
            ("pg-hole", f"postgresql://monitor@127.0.0.1:{port}/warehouse"),
            ("http-hole", f"http://127.0.0.1:{port}/health"),
        ):
            assert cli("datasources", "add", ds, "--name", ds, "--url", url).exit_code == 0
            created = cli(
                "create",
                "--name",
                f"{ds} down",
                "--type",
                "datasource_failure",
                "--config",
                f"datasource_id={ds}",
                "--config",
                "timeout_seconds=2",
                "--channel",
                "slack",
                "--slack",
                sink.hook(ds),
            )
            assert created.exit_code == 0, created.output
        store = open_store(sqlite_url)
        make_alert(store, flags, "healthy-firing", recipients={"slack": sink.hook("healthy")})
        store.dispose()
        flags.set(**{"healthy-firing": "firing"})
        started = time.monotonic()
        proc = alerts_process(sqlite_url, "evaluate", "--json")
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert proc.returncode == 0, err  # the sources are down: that is what the alerts watch
    assert "Traceback" not in err
    results = {r["name"]: r for r in json.loads(out)["results"]}
    for name in ("pg-hole down", "http-hole down"):
        assert results[name]["outcome"] == "firing", results[name]
        assert "time" in results[name]["summary"].lower(), results[name]["summary"]
        assert results[name]["duration_ms"] < 3500, results[name]
    assert results["healthy-firing"]["outcome"] == "firing"
    healthy = [r.at for r in sink.received if r.path == "/hook/healthy"]
    assert len(healthy) == 1 and healthy[0] - started < elapsed
    assert elapsed < 2 + 1 + 4, elapsed  # timeout + grace + process start and delivery
    print(
        f"\n[faults] hanging sources cut off: "
        f"{[(n, results[n]['duration_ms']) for n in ('pg-hole down', 'http-hole down')]} ms, "
        f"run {elapsed:.1f} s"
    )


# --------------------------------------------------------------------------- store goes away


@pytest.fixture
def pg_scratch_url() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL database of its own (so the test can refuse connections to it)."""
    from tests.conftest import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"alerts_gone_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.mark.serial  # wall-clock bounds; a store dropped within a check's delay
def test_store_unreachable_mid_run_exits_1_with_one_line_then_next_run_recovers(
    pg_scratch_url: tuple[str, Any], flags: Flags, sink: Sink
) -> None:
    url, admin = pg_scratch_url
    name = url.rsplit("/", 1)[1]
    store = open_store(url)
    names = [f"g-{i}" for i in range(5)]
    make_alerts(
        store,
        flags,
        [
            {"name": n, "key": "all", "channels": ["slack"], "recipients": {"slack": sink.hook(n)}}
            for n in names
        ],
    )
    flags.set(all="firing", delay=1.5)
    store.dispose()

    proc = alerts_process(url, "--hostname", "h1", "evaluate")
    probe = open_store(url, migrate=False)

    def claimed() -> bool:
        with probe.session() as session:
            return bool(session.scalar(select(Alert.id).where(Alert.lease_holder.is_not(None))))

    deadline = time.monotonic() + 30
    while not claimed():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    probe.dispose()
    with admin.connect() as conn:  # mid-check: the store goes away and stays away
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    out, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: the store is unreachable"), lines[0]
    assert not sink.received  # nothing was sent for results that could not be recorded

    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
    flags.set(delay=0)
    again = alerts_process(url, "--hostname", "h1", "evaluate", "--json")
    out, err2 = again.communicate(timeout=60)
    assert again.returncode == 0, err2
    report = json.loads(out)
    assert sorted(r["name"] for r in report["results"]) == names, (out, dump_store(url)["alerts"])
    assert report["notifications"]["sent"] == len(names), out
    assert sorted(r.path for r in sink.delivered()) == sorted(f"/hook/{n}" for n in names)
    print(f"\n[faults] store gone mid-run: exit 1, stderr {lines[0]!r}; next run sent 5")
