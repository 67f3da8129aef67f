"""A run whose result write fails (services/result_writer.py inside `_evaluate_due`): the run
stops claiming once the failure is known, as it did when the write ran on its own thread."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from datamantri_alerts.clock import SystemClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import Alert
from tests.evaluator.conftest import Flags, make_alerts


@pytest.mark.serial  # claims and writes raced with check delays and a 1.5 s late write
def test_a_failed_write_stops_the_claims(sqlite_store: Any, flags: Flags) -> None:
    flags.set(slow="ok", delay="0.5")
    make_alerts(
        sqlite_store,
        flags,
        [{"name": f"slow-{i}", "key": "slow", "channels": []} for i in range(12)],
    )
    with sqlite_store.transaction() as session:
        # The store refuses every result write (a claim writes only the lease columns).
        session.execute(
            text(
                "CREATE TRIGGER refuse_results BEFORE UPDATE OF last_evaluated_at ON alerts "
                "BEGIN SELECT RAISE(ABORT, 'the store refused the write'); END"
            )
        )
    with pytest.raises(Exception, match="the store refused the write"):
        run_evaluation(
            sqlite_store, SystemClock(), RunOptions(host="h", batch_size=2, concurrency=2)
        )
    with sqlite_store.session() as session:
        leased = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.lease_holder.is_not(None))
        )
    # Batches 1 (its write failed) and 2 (claimed as batch 1 completed, before its write) keep
    # their leases until they expire; no batch is claimed once the failure is known (before:
    # batch 3 was claimed and checked too, 6 alerts leased).
    assert leased == 4


def _run_with_a_refused_result(
    store: Any, flags: Flags, monkeypatch: pytest.MonkeyPatch, merge_limit: int
) -> list[int]:
    """Six alerts in batches of 2; the store refuses the last alert's result; batch 1's write
    is held 1.5 s (the real write, late), so batches 2 and 3 queue up behind it."""
    import threading
    import time

    from datamantri_alerts.services import evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "WRITE_MERGE_LIMIT", merge_limit)
    make_alerts(store, flags, [{"name": f"a-{i}", "key": "k", "channels": []} for i in range(6)])
    with store.session() as session:
        ids = sorted(session.scalars(select(Alert.id)))
    with store.transaction() as session:
        session.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE UPDATE OF last_evaluated_at ON alerts "
                f"WHEN NEW.id = {ids[-1]} BEGIN SELECT RAISE(ABORT, 'result refused'); END"
            )
        )
    real = evaluate_module.apply_results
    first = threading.Event()

    def first_write_late(*args: Any, **kwargs: Any) -> None:
        if not first.is_set():
            first.set()
            time.sleep(1.5)
        real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "apply_results", first_write_late)
    with pytest.raises(Exception, match="result refused"):
        run_evaluation(store, SystemClock(), RunOptions(host="h", batch_size=2, concurrency=2))
    return ids


@pytest.mark.serial  # claims and writes raced with check delays and a 1.5 s late write
@pytest.mark.parametrize("merge_limit", [0, 500])
def test_a_refused_result_keeps_the_batches_before_it_and_the_run_counts_what_was_written(
    sqlite_store: Any, flags: Flags, monkeypatch: pytest.MonkeyPatch, merge_limit: int
) -> None:
    """Batch 2 was checked before batch 3 and is written whether or not it was merged with it;
    the run's record counts the results written, not the ones rolled back (review: 2 written
    with merging, and `evaluated` said 6 either way)."""
    from datamantri_alerts.store.models import EvaluatorRun

    ids = _run_with_a_refused_result(sqlite_store, flags, monkeypatch, merge_limit)
    with sqlite_store.session() as session:
        written = set(session.scalars(select(Alert.id).where(Alert.last_evaluated_at.is_not(None))))
        recorded = session.scalar(select(EvaluatorRun.evaluated).order_by(EvaluatorRun.id.desc()))
    assert written == set(ids[:4])
    assert recorded == len(written)
