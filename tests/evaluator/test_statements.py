"""Store writes are batched: a run's statement count does not grow with the number of alerts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from datamantri_alerts.clock import FrozenClock, SystemClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from tests.conftest import utc
from tests.evaluator.conftest import Flags, make_alerts

#: Both runs of `statements_for` happen at this instant, 50 s before the next minute: the
#: first run's alerts are not due again in the second, as they were when a slow machine's
#: second run began past the minute the first one ended in (310 results, not 300).
AT = utc(2026, 11, 30, 12, 0, 10)


def statements_for(store: Any, flags: Flags, count: int, tag: str) -> tuple[int, int]:
    make_alerts(
        store,
        flags,
        [{"name": f"{tag}-{i}", "key": "all", "channels": []} for i in range(count)],
    )
    executed: list[str] = []

    def count_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement)

    event.listen(store.engine, "before_cursor_execute", count_statement)
    try:
        summary = run_evaluation(store, FrozenClock(AT), RunOptions(host="h", batch_size=100))
    finally:
        event.remove(store.engine, "before_cursor_execute", count_statement)
    assert len(summary.results) == count
    assert summary.firing == count
    return len(executed), summary.results[0].id


def test_statements_per_run_stay_flat(store: Any, flags: Flags) -> None:
    flags.set(all="firing")
    small, _ = statements_for(store, flags, 10, "small")
    large, _ = statements_for(store, flags, 300, "large")
    # 300 alerts in 3 claim batches: a fixed handful of statements per batch of 100, not per
    # alert (one per alert and column would be thousands).
    assert large <= small * 3 + 10, (small, large)
    assert large < 100
    print(f"\nstatements per run: 10 alerts {small}, 300 alerts {large}")


def test_a_quiet_batch_reads_and_writes_only_what_its_results_need(
    store: Any, flags: Flags
) -> None:
    """Results with nothing to tell (every check ok, as before): no alert's message columns or
    destinations are read (recipients are decrypted only for an alert with a message to
    queue), windows and silences are not read per batch, and the UPDATE of `alerts` writes
    what every evaluation writes, not the columns whose value stays (the state)."""
    flags.set(quiet="ok")
    make_alerts(
        store,
        flags,
        [{"name": f"quiet-{i}", "key": "quiet", "channels": []} for i in range(30)],
    )
    run_evaluation(store, SystemClock(), RunOptions(host="h", batch_size=10))
    executed: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(" ".join(statement.split()))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        summary = run_evaluation(
            store, SystemClock(), RunOptions(host="h", all=True, batch_size=10)
        )
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(summary.results) == 30
    assert {r.state for r in summary.results} == {"ok"}
    assert not [s for s in executed if "recipients" in s]
    # The run's release of ended mutes reads them once; the 3 batches do not.
    assert len([s for s in executed if "FROM maintenance_windows" in s]) <= 1
    updates = [s for s in executed if s.startswith("UPDATE alerts SET") and "last_summary" in s]
    # One executemany per write: one per batch, or fewer when batches queued up behind a write
    # and were written together (`services.result_writer`).
    assert 1 <= len(updates) <= 3
    for statement in updates:
        written = {
            part.split("=")[0].strip()
            for part in statement.split(" SET ", 1)[1].split(" WHERE ")[0].split(",")
        }
        assert {"last_summary", "last_details", "last_evaluated_at", "next_due_at"} <= written
        assert {"lease_holder", "lease_expires_at"} <= written
        assert not written & {"state", "consecutive_hits", "trigger_count", "current_episode_id"}
