"""A freshness episode through the real evaluator: FIRING at warning, ESCALATED once when it
crosses error_after, nothing when it falls back to warning, RESOLVED when fresh; the episode's
severity is the highest it reached. Other types keep the alert's own severity."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from datamantri_alerts.clock import FrozenClock, SystemClock
from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
from datamantri_alerts.store.models import AlertHistory, Notification
from tests.conftest import utc
from tests.evaluator.conftest import Flags, Sink, make_alert
from tests.evaluator.helpers import as_a_new_process, slack_state

T0 = utc(2026, 11, 30, 12, 0)


def _load(url: str, stamp: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS orders (loaded_at TEXT)"))
        conn.execute(text("DELETE FROM orders"))
        conn.execute(text("INSERT INTO orders VALUES (:stamp)"), {"stamp": stamp})
    engine.dispose()


def _freshness_alert(store: Any, warehouse: str, sink: Sink, **fields: Any) -> int:
    from datamantri_alerts.schema import DataSourceSpec, validate_alert
    from datamantri_alerts.services.alerts import create_alert
    from datamantri_alerts.services.entities import add_entity

    document = {
        "name": "stale orders",
        "condition_type": "freshness",
        "condition_config": {
            "datasource_id": "wh",
            "table": "orders",
            "loaded_at_field": "loaded_at",
            "warn_after": {"count": 2, "period": "hour"},
            "error_after": {"count": 6, "period": "hour"},
        },
        "channels": ["slack"],
        "recipients": {"slack": sink.hook("fresh")},
        **fields,
    }
    with store.transaction() as session:
        add_entity(
            session, "datasource", DataSourceSpec(id="wh", name="W", url=warehouse), SystemClock()
        )
        return create_alert(session, validate_alert(document), SystemClock()).id


def run(store: Any, clock: FrozenClock) -> Any:
    as_a_new_process()
    summary = run_evaluation(store, clock, RunOptions(host="test-host", all=True))
    assert summary.ok, summary.problems
    return summary


def test_warning_escalates_to_critical_once_per_episode(
    store: Any, sink: Sink, tmp_path: Path
) -> None:
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _load(warehouse, "2026-11-30 09:00:00+00:00")
    alert_id = _freshness_alert(store, warehouse, sink, severity="info")
    clock = FrozenClock(T0)

    seen = []
    # 3h: warning (FIRING); 4h: still warning; 7h: critical (ESCALATED); 8h: critical;
    # reloaded 5h ago: back to warning, told nothing; reloaded now: ok, and RESOLVED on the
    # second ok in a row (the recovery confirmation), resolved at the first one.
    for hours, reload in (
        (0, None),
        (1, None),
        (4, None),
        (5, None),
        (6, "2026-11-30 13:00:00"),
        (7, "2026-11-30 19:00:00"),
        (7.5, None),
    ):
        clock.set(T0 + timedelta(hours=hours))
        if reload:
            _load(warehouse, reload)
        result = run(store, clock).results[0]
        seen.append((result.outcome, result.severity))
    assert seen == [
        ("firing", "warning"),
        ("firing", "warning"),
        ("firing", "critical"),
        ("firing", "critical"),
        ("firing", "warning"),
        ("ok", "info"),
        ("ok", "info"),
    ]

    bodies = sink.bodies("fresh")
    assert [slack_state(b) for b in bodies] == ["FIRING", "ESCALATED", "RESOLVED"]
    escalated = bodies[1]
    assert "escalated from warning to critical" in escalated["text"]
    assert "past error_after 6h" in escalated["text"]
    assert "WARNING" in bodies[0]["text"] or "warning" in bodies[0]["text"].lower()

    with store.session() as session:
        episodes = session.scalars(select(AlertHistory)).all()
        notes = session.scalars(select(Notification).order_by(Notification.id)).all()
    assert len(episodes) == 1
    assert episodes[0].alert_id == alert_id
    assert episodes[0].severity == "critical"  # the highest the episode reached
    assert episodes[0].resolved_at == T0 + timedelta(hours=7)
    assert [(n.kind, n.payload["severity"]) for n in notes] == [
        ("firing", "warning"),
        ("escalated", "critical"),
        ("resolved", "critical"),
    ]
    assert notes[1].payload["details"]["escalated_from"] == "warning"


def test_an_episode_that_opens_critical_is_not_escalated(
    store: Any, sink: Sink, tmp_path: Path
) -> None:
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _load(warehouse, "2026-11-30 01:00:00")
    _freshness_alert(store, warehouse, sink)
    clock = FrozenClock(T0)
    run(store, clock)
    clock.advance(hours=1)
    run(store, clock)
    assert [slack_state(b) for b in sink.bodies("fresh")] == ["FIRING"]
    with store.session() as session:
        assert session.scalars(select(AlertHistory.severity)).all() == ["critical"]


def test_other_types_keep_the_alerts_severity_and_never_escalate(
    store: Any, flags: Flags, sink: Sink
) -> None:
    """Editing an alert's severity during an episode is not an escalation of a flag check."""
    from sqlalchemy import update

    from datamantri_alerts.store.models import Alert

    alert_id = make_alert(
        store, flags, "etl", recipients={"slack": sink.hook("etl")}, severity="warning"
    )
    clock = FrozenClock(T0)
    flags.set(etl="firing")
    assert run(store, clock).results[0].severity == "warning"
    with store.transaction() as session:
        session.execute(update(Alert).where(Alert.id == alert_id).values(severity="critical"))
    clock.advance(minutes=10)
    assert run(store, clock).results[0].severity == "critical"
    assert [slack_state(b) for b in sink.bodies("etl")] == ["FIRING"]


def test_an_escalation_while_muted_is_told_when_the_mute_ends(
    store: Any, sink: Sink, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from datamantri_alerts.store.models import Alert

    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _load(warehouse, "2026-11-30 09:00:00")
    alert_id = _freshness_alert(store, warehouse, sink)
    clock = FrozenClock(T0)
    run(store, clock)  # FIRING at warning, told
    with store.transaction() as session:
        session.execute(
            update(Alert).where(Alert.id == alert_id).values(muted_until=T0 + timedelta(hours=5))
        )
    clock.set(T0 + timedelta(hours=4))
    assert run(store, clock).results[0].severity == "critical"  # escalated, held back
    assert [slack_state(b) for b in sink.bodies("fresh")] == ["FIRING"]
    clock.set(T0 + timedelta(hours=5, minutes=1))  # the mute has ended, still critical
    run(store, clock)
    bodies = sink.bodies("fresh")
    assert [slack_state(b) for b in bodies] == ["FIRING", "ESCALATED"]
    assert "escalated from warning to critical" in bodies[1]["text"]
