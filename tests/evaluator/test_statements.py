"""Store writes are batched: a run's statement count does not grow with the number of alerts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from tests.evaluator.conftest import Flags, make_alerts


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
        summary = run_evaluation(store, SystemClock(), RunOptions(host="h", batch_size=100))
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
