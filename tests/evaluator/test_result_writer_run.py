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
