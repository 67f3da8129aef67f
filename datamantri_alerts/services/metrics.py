"""Prometheus metrics of the evaluator, read from the store, in the text exposition format.

Written after every evaluator run to `ALERTS_METRICS_FILE` / `--metrics-file` (atomically, for
node_exporter's textfile collector) and printed by `alerts metrics`; both read the same store
rows, so they agree. The format is prometheus_client's (`generate_latest`, `write_to_textfile`).

Metrics (all names `datamantri_alerts_*`, base units):

| name | type | labels | meaning |
|---|---|---|---|
| `runs_total` | counter | outcome (ok, failed) | finished evaluator runs |
| `last_run_timestamp_seconds` | gauge | | end of the last finished run (Unix time) |
| `last_run_duration_seconds` | gauge | | its duration |
| `checks_total` | counter | outcome (evaluated, error) | checks made by finished runs |
| `alerts` | gauge | state (ok, pending, firing, error, disabled), severity | alerts now |
| `notifications_total` | counter | channel, outcome (sent, failed, suppressed) | outbox rows |
| `outbox_pending` | gauge | | notifications waiting to be delivered |
| `outbox_oldest_pending_age_seconds` | gauge | | age of the oldest of them (0: none) |
| `evaluation_lag_seconds` | gauge | | now minus the oldest `next_due_at` already due (0: none) |

`checks_total{outcome="evaluated"}` counts every check, `{outcome="error"}` the ones that could
not evaluate. Counters are sums over the rows the store keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from datamantri_alerts.store.models import Alert, EvaluatorRun, Notification

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from datamantri_alerts.clock import Clock
    from datamantri_alerts.store.engine import Store

log = logging.getLogger(__name__)

PREFIX = "datamantri_alerts"
NOTIFICATION_OUTCOMES = ("sent", "failed", "suppressed")
ALERT_STATES = ("ok", "pending", "firing", "error")
SEVERITIES = ("info", "warning", "critical")


@dataclass
class MetricsSnapshot:
    """What the store says now; every time in seconds."""

    runs: dict[str, int] = field(default_factory=dict)
    last_run_at: float | None = None
    last_run_duration: float | None = None
    checks: dict[str, int] = field(default_factory=dict)
    #: (state, severity) -> alerts
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (channel, outcome) -> notifications
    notifications: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_pending: int = 0
    oldest_pending_age: float = 0.0
    evaluation_lag: float = 0.0


def snapshot(session: Session, now: datetime) -> MetricsSnapshot:
    """Read the metrics from the store (a handful of aggregate queries)."""
    snap = MetricsSnapshot()
    finished = EvaluatorRun.finished_at.is_not(None)
    for outcome, count in session.execute(
        select(EvaluatorRun.outcome, func.count()).where(finished).group_by(EvaluatorRun.outcome)
    ):
        snap.runs[str(outcome)] = int(count)
    last = session.execute(
        select(EvaluatorRun.started_at, EvaluatorRun.finished_at)
        .where(finished)
        .order_by(EvaluatorRun.finished_at.desc(), EvaluatorRun.id.desc())
        .limit(1)
    ).first()
    if last is not None:
        started, ended = last
        snap.last_run_at = ended.timestamp()
        snap.last_run_duration = max(0.0, (ended - started).total_seconds())
    evaluated, errors = session.execute(
        select(
            func.coalesce(func.sum(EvaluatorRun.evaluated), 0),
            func.coalesce(func.sum(EvaluatorRun.errors), 0),
        ).where(finished)
    ).one()
    snap.checks = {"evaluated": int(evaluated), "error": int(errors)}
    for state, severity, active, count in session.execute(
        select(Alert.state, Alert.severity, Alert.is_active, func.count()).group_by(
            Alert.state, Alert.severity, Alert.is_active
        )
    ):
        key = (str(state) if active else "disabled", str(severity))
        snap.alerts[key] = snap.alerts.get(key, 0) + int(count)
    for channel, status, count in session.execute(
        select(Notification.channel, Notification.status, func.count()).group_by(
            Notification.channel, Notification.status
        )
    ):
        if status == "pending":
            snap.outbox_pending += int(count)
        elif status in NOTIFICATION_OUTCOMES:
            snap.notifications[(str(channel), str(status))] = int(count)
    oldest = session.scalar(
        select(func.min(Notification.created_at)).where(Notification.status == "pending")
    )
    if oldest is not None:
        snap.oldest_pending_age = max(0.0, (now - oldest).total_seconds())
    due = session.scalar(
        select(func.min(Alert.next_due_at)).where(
            Alert.is_active.is_(True), Alert.next_due_at.is_not(None), Alert.next_due_at <= now
        )
    )
    if due is not None:
        snap.evaluation_lag = max(0.0, (now - due).total_seconds())
    return snap


class SnapshotCollector:
    """A prometheus_client collector over one snapshot."""

    def __init__(self, snap: MetricsSnapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.snap
        runs = CounterMetricFamily(
            f"{PREFIX}_runs", "Finished evaluator runs by outcome.", labels=["outcome"]
        )
        for outcome in sorted({"ok", "failed", *snap.runs}):
            runs.add_metric([outcome], snap.runs.get(outcome, 0))
        yield runs
        if snap.last_run_at is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_run_timestamp_seconds",
                "End of the last finished evaluator run (Unix time).",
                value=snap.last_run_at,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_last_run_duration_seconds",
                "Duration of the last finished evaluator run.",
                value=snap.last_run_duration or 0.0,
            )
        checks = CounterMetricFamily(
            f"{PREFIX}_checks",
            "Checks made by finished runs: evaluated (all) and error (could not evaluate).",
            labels=["outcome"],
        )
        for outcome in ("evaluated", "error"):
            checks.add_metric([outcome], snap.checks.get(outcome, 0))
        yield checks
        alerts = GaugeMetricFamily(
            f"{PREFIX}_alerts", "Alerts by state and severity.", labels=["state", "severity"]
        )
        states = sorted({*ALERT_STATES, "disabled", *(s for s, _ in snap.alerts)})
        severities = sorted({*SEVERITIES, *(v for _, v in snap.alerts)})
        for state in states:
            for severity in severities:
                alerts.add_metric([state, severity], snap.alerts.get((state, severity), 0))
        yield alerts
        notifications = CounterMetricFamily(
            f"{PREFIX}_notifications",
            "Notifications by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for channel, outcome in sorted(snap.notifications):
            notifications.add_metric([channel, outcome], snap.notifications[(channel, outcome)])
        yield notifications
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_pending",
            "Notifications waiting to be delivered.",
            value=snap.outbox_pending,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending notification (0 when none).",
            value=snap.oldest_pending_age,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_evaluation_lag_seconds",
            "Now minus the oldest next_due_at that is already due (0 when none).",
            value=snap.evaluation_lag,
        )


def registry_of(snap: MetricsSnapshot) -> Any:
    """A fresh prometheus_client CollectorRegistry holding only these metrics."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return registry


def render(snap: MetricsSnapshot) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    from prometheus_client import generate_latest

    return generate_latest(registry_of(snap)).decode("utf-8")


def write_file(path: str, snap: MetricsSnapshot) -> None:
    """Write atomically (a temporary file renamed over path), as the textfile collector needs."""
    from prometheus_client import write_to_textfile

    write_to_textfile(path, registry_of(snap))


def current(store: Store, clock: Clock) -> MetricsSnapshot:
    with store.session() as session:
        return snapshot(session, clock.now())


def export_after_run(store: Store, clock: Clock, path: str | None) -> None:
    """After an evaluator run: write the metrics file when one is configured. A failure here
    is logged (one line, warning) and never fails the run."""
    if not path:
        return
    try:
        write_file(path, current(store, clock))
    except Exception as exc:  # the run's outcome must not depend on the metrics file
        from datamantri_alerts.secrets import describe_exception

        reason = describe_exception(exc, limit=300)
        log.warning("could not write the metrics file %s: %s", path, reason)
