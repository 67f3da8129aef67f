"""Overlapping `alerts evaluate` processes share the work and notify exactly once.

Default run: one round per dialect. The must-show figure (5 rounds per dialect):

    .venv/bin/pytest -m slow tests/evaluator/test_concurrent_runs.py
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from datamantri_alerts.store.engine import open_store
from datamantri_alerts.store.models import Notification
from tests.evaluator.conftest import Flags, Sink, alerts_process, make_alerts

#: Serial (scripts/test.sh runs it alone): four processes race for the same due alerts.
pytestmark = pytest.mark.serial

PROCESSES = 4
ALERTS = 200
CHANNELS = ("slack", "teams")


def one_round(db_url: str, store: Any, flags: Flags, sink: Sink, tag: str) -> dict[str, Any]:
    names = [f"{tag}-{i:03d}" for i in range(ALERTS)]
    make_alerts(
        store,
        flags,
        [
            {
                "name": name,
                "key": "all",
                "channels": list(CHANNELS),
                "recipients": {ch: sink.hook(f"{ch}/{name}") for ch in CHANNELS},
            }
            for name in names
        ],
    )
    started = time.monotonic()
    procs = [
        alerts_process(
            db_url, "evaluate", "--json", "--concurrency", "8", env={"ALERTS_HOSTNAME": "h1"}
        )
        for _ in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    elapsed = time.monotonic() - started
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]

    # This round's alerts; an earlier round's are due again once the run crosses their next
    # 5-minute grid point (the clock is the wall clock), and are evaluated once too.
    evaluated = Counter(
        r["name"] for report in reports for r in report["results"] if r["name"] in names
    )
    again = Counter(
        r["name"] for report in reports for r in report["results"] if r["name"] not in names
    )
    assert set(again.values()) <= {1}
    assert sorted(evaluated) == names and set(evaluated.values()) == {1}
    assert sum(r["notifications"]["sent"] for r in reports) == ALERTS * len(CHANNELS)

    received = Counter(
        r.path for r in sink.delivered() if r.path.rsplit("/", 1)[-1].startswith(f"{tag}-")
    )
    expected = {f"/hook/{ch}/{name}" for ch in CHANNELS for name in names}
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    missing = expected - set(received)
    assert duplicates == 0 and not missing, (duplicates, sorted(missing)[:5])
    return {
        "elapsed": elapsed,
        "per_process": [report["evaluated"] for report in reports],
        "sent_per_process": [report["notifications"]["sent"] for report in reports],
        "duplicates": duplicates,
        "missing": len(missing),
    }


@pytest.mark.parametrize(
    "rounds",
    [pytest.param(1, id="1-round"), pytest.param(5, id="5-rounds", marks=pytest.mark.slow)],
)
def test_four_processes_deliver_each_alert_channel_exactly_once(
    store_url: str, flags: Flags, sink: Sink, rounds: int, capsys: pytest.CaptureFixture[str]
) -> None:
    flags.set(all="firing", delay=0.05)
    store = open_store(store_url)
    try:
        figures = [one_round(store_url, store, flags, sink, f"r{n}") for n in range(rounds)]
        with store.session() as session:
            statuses = Counter(session.scalars(select(Notification.status)))
    finally:
        store.dispose()
    assert statuses == {"sent": ALERTS * len(CHANNELS) * rounds}
    with capsys.disabled():
        for n, fig in enumerate(figures):
            print(
                f"\n[{store.dialect} round {n}] {PROCESSES} processes, {ALERTS} alerts x "
                f"{len(CHANNELS)} channels: {fig['elapsed']:.1f} s, evaluated per process "
                f"{fig['per_process']}, sent per process {fig['sent_per_process']}, "
                f"duplicates {fig['duplicates']}, missing {fig['missing']}"
            )
