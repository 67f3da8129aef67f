"""Disabling or deleting a firing alert closes its episode and cancels what it had not sent yet;
enabled again, it starts clean. Every path: the service, the CLI, `sync` (is_active, --prune).

Real webhook receiver on 127.0.0.1; SQLite, PostgreSQL and MariaDB for the service paths.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from datamantri_alerts.channels.retry import RetryPolicy
from datamantri_alerts.clock import FrozenClock
from datamantri_alerts.services.alerts import delete_alert, set_active
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Alert, AlertHistory, Notification
from tests.conftest import Cli, utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 3, 2, 9, 0, 20)


def run(store: Any, clock: FrozenClock) -> Any:
    # One attempt per run, no sleeping: a 503 leaves the notification pending for a later run.
    as_a_new_process()
    return run_evaluation(
        store,
        clock,
        RunOptions(host="test-host", retry_policy=RetryPolicy(attempts=1), sleep=lambda s: None),
    )


def firing_with_a_pending_firing(store: Any, flags: Flags, sink: Sink, name: str) -> int:
    """An alert firing whose FIRING the receiver refused (503): still pending."""
    alert_id = make_alert(store, flags, name, recipients={"slack": sink.hook(name)})
    flags.set(**{name: "firing"})
    sink.on(name, 503)
    run(store, FrozenClock(T0))
    with store.session() as session:
        assert [n.status for n in session.scalars(select(Notification))] == ["pending"]
    return alert_id


def closed_episodes(store: Any) -> list[tuple[datetime | None, str | None]]:
    with store.session() as session:
        rows = session.scalars(select(AlertHistory).order_by(AlertHistory.id)).all()
        return [(row.resolved_at, row.resolution_notes) for row in rows]


def outbox(store: Any) -> list[tuple[str, str, str | None]]:
    with store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        return [(row.kind, row.status, row.last_error) for row in rows]


def test_disable_closes_the_episode_and_cancels_pending_notifications(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store = any_store
    alert_id = firing_with_a_pending_firing(store, flags, sink, "disabled")
    clock = FrozenClock(T0 + timedelta(minutes=2))
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert set_active(session, alert, False, clock) is True
    assert closed_episodes(store) == [(clock.now(), "alert disabled")]
    assert outbox(store) == [("firing", "cancelled", "alert disabled")]
    # Later runs send nothing for it, though the receiver is back.
    for minutes in (5, 10, 60):
        clock.set(T0 + timedelta(minutes=minutes))
        summary = run(store, clock)
        assert summary.results == [] and summary.notifications.sent == 0
    assert [r.status for r in sink.received] == [503]
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert (alert.state, alert.consecutive_hits, alert.current_episode_id) == ("ok", 0, None)


def test_enabled_again_starts_clean_and_is_due_at_once(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store = any_store
    alert_id = make_alert(
        store, flags, "again", pending_evaluations=3, recipients={"slack": sink.hook("again")}
    )
    flags.set(again="firing")
    clock = FrozenClock(T0)
    for minutes in (0, 5):
        clock.set(T0 + timedelta(minutes=minutes))
        assert [r.state for r in run(store, clock).results] == ["pending"]
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.consecutive_hits == 2
        set_active(session, alert, False, clock)
    clock.advance(minutes=1)
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        set_active(session, alert, True, clock)
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert (alert.state, alert.consecutive_hits, alert.next_due_at) == ("ok", 0, None)
    # Due at once (one minute after the last evaluation), counting pending evaluations afresh.
    summary = run(store, clock)
    assert [(r.state, r.outcome) for r in summary.results] == [("pending", "firing")]
    assert sink.received == []


def test_enabled_again_while_still_firing_opens_a_new_episode(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store = any_store
    alert_id = make_alert(store, flags, "loud", recipients={"slack": sink.hook("loud")})
    flags.set(loud="firing")
    clock = FrozenClock(T0)
    run(store, clock)
    assert [slack_state(b) for b in sink.bodies("loud")] == ["FIRING"]
    for active in (False, True):
        clock.advance(minutes=1)
        with store.transaction() as session:
            alert = session.get(Alert, alert_id)
            assert alert is not None
            set_active(session, alert, active, clock)
    clock.advance(minutes=1)
    run(store, clock)
    # No RESOLVED for the episode disabling closed; a FIRING for the new one.
    assert [slack_state(b) for b in sink.bodies("loud")] == ["FIRING", "FIRING"]
    assert closed_episodes(store) == [(T0 + timedelta(minutes=1), "alert disabled"), (None, None)]


def test_delete_keeps_history_closed_and_cancels_pending(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store = any_store
    alert_id = firing_with_a_pending_firing(store, flags, sink, "deleted")
    at = T0 + timedelta(minutes=3)
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert delete_alert(session, alert, keep_history=True, now=at) == 0
    assert closed_episodes(store) == [(at, "alert deleted")]
    assert outbox(store) == [("firing", "cancelled", "alert deleted")]
    run(store, FrozenClock(at + timedelta(minutes=5)))
    assert [r.status for r in sink.received] == [503]


def test_disable_again_closes_an_episode_left_open_by_an_older_version(
    any_store: Any, flags: Flags, sink: Sink
) -> None:
    store = any_store
    alert_id = make_alert(store, flags, "legacy", recipients={"slack": sink.hook("legacy")})
    flags.set(legacy="firing")
    run(store, FrozenClock(T0))
    with store.transaction() as session:  # disabled the old way: the flag only
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.is_active = False
    at = T0 + timedelta(minutes=1)
    with store.transaction() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert set_active(session, alert, False, FrozenClock(at)) is False
    assert closed_episodes(store) == [(at, "alert disabled")]


@pytest.mark.serial  # switched off within a 2.5 s window of a running check
@pytest.mark.parametrize("how", ["disable", "delete"])
def test_alert_switched_off_while_its_check_runs_keeps_no_result(
    any_store: Any, flags: Flags, sink: Sink, how: str
) -> None:
    """The result of a check in flight when its alert is disabled or deleted is dropped: no
    episode reopened, nothing sent, and the run reports no problem."""
    store = any_store
    alert_id = make_alert(store, flags, "inflight", recipients={"slack": sink.hook("inflight")})
    flags.set(inflight="firing", delay="2.5")  # the window to switch it off in
    clock = FrozenClock(T0)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run, store, clock)

        def claimed() -> bool:
            with store.session() as session:
                alert = session.get(Alert, alert_id)
                return alert is not None and alert.lease_holder is not None

        deadline = time.monotonic() + 30
        while not claimed():
            assert time.monotonic() < deadline, "the run never claimed the alert"
            time.sleep(0.01)
        with store.transaction() as session:
            alert = session.get(Alert, alert_id)
            assert alert is not None
            if how == "disable":
                set_active(session, alert, False, clock)
            else:
                delete_alert(session, alert, keep_history=True, now=clock.now())
        summary = future.result(timeout=60)
    assert summary.problems == []
    assert summary.results == []
    assert sink.received == []
    assert closed_episodes(store) == []
    assert outbox(store) == []


# --------------------------------------------------------------------------- the CLI and sync


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Any]:
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def now_firing(store: Any, flags: Flags, sink: Sink, name: str) -> None:
    """`name` exists, fires, and its FIRING was sent (real time: the CLI's clock)."""
    flags.set(**{name: "firing"})
    run(store, FrozenClock(datetime.now(UTC)))
    assert [slack_state(b) for b in sink.bodies(name)] == ["FIRING"]


@pytest.mark.parametrize(
    ("command", "note"),
    [(("disable", "cli"), "alert disabled"), (("delete", "cli", "--yes"), "alert deleted")],
    ids=["disable", "delete"],
)
def test_cli_disable_and_delete_close_the_episode(
    store: Any, cli: Cli, flags: Flags, sink: Sink, command: tuple[str, ...], note: str
) -> None:
    make_alert(store, flags, "cli", recipients={"slack": sink.hook("cli")})
    now_firing(store, flags, sink, "cli")
    result = cli(*command)
    assert result.exit_code == 0, result.output
    [(resolved_at, resolution)] = closed_episodes(store)
    assert resolved_at is not None and resolution == note
    listed = cli("history", "--json").json()
    assert [e["resolution_notes"] for e in listed] == [note]
    assert len(sink.received) == 1


def _sync_document(flags: Flags, sink: Sink, names: dict[str, bool]) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "name": name,
                "condition_type": "flag",
                "condition_config": {"file": str(flags.path), "key": name},
                "channels": ["slack"],
                "recipients": {"slack": sink.hook(name)},
                "is_active": active,
            }
            for name, active in names.items()
        ]
    }


def test_sync_is_active_false_and_prune_close_episodes(
    store: Any, cli: Cli, flags: Flags, sink: Sink, tmp_path: Path
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(_sync_document(flags, sink, {"kept": True, "pruned": True})))
    assert cli("sync", str(path)).exit_code == 0
    flags.set(kept="firing", pruned="firing")
    run(store, FrozenClock(datetime.now(UTC)))
    assert len(sink.received) == 2

    path.write_text(yaml.safe_dump(_sync_document(flags, sink, {"kept": False})))
    result = cli("sync", str(path), "--prune", "--yes")
    assert result.exit_code == 0, result.output
    with store.session() as session:
        episodes = {
            row.alert_name: (row.resolved_at is not None, row.resolution_notes)
            for row in session.scalars(select(AlertHistory))
        }
        kept = session.scalars(select(Alert)).one()
    assert episodes == {"kept": (True, "alert disabled"), "pruned": (True, "alert deleted")}
    assert (kept.name, kept.is_active, kept.state, kept.current_episode_id) == (
        "kept",
        False,
        "ok",
        None,
    )
    assert len(sink.received) == 2
