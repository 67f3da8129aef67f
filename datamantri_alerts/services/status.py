"""Evaluator health: recent runs, whether one finished recently enough, channel configuration.

Channel configuration is read from the environment by variable *name*: the report says which
variables are set or missing and never carries a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datamantri_alerts.store.models import Alert, EvaluatorRun, Notification

DEFAULT_EXPECTED_INTERVAL = timedelta(minutes=1)


def run_as_json(run: EvaluatorRun) -> dict[str, Any]:
    duration = (
        round((run.finished_at - run.started_at).total_seconds(), 3) if run.finished_at else None
    )
    return {
        "id": run.id,
        "host": run.host,
        "pid": run.pid,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "outcome": run.outcome,
        "evaluated": run.evaluated,
        "firing": run.firing,
        "resolved": run.resolved,
        "errors": run.errors,
        "notifications_sent": run.notifications_sent,
        "notifications_failed": run.notifications_failed,
        "message": run.message,
    }


#: The windows `alerts status` reports delivery success over, by label.
DELIVERY_WINDOWS: dict[str, timedelta] = {"24h": timedelta(days=1), "7d": timedelta(days=7)}


def delivery_rates(session: Session, now: datetime) -> dict[str, dict[str, dict[str, Any]]]:
    """Per channel and window: notifications created in the window that were sent or failed
    (pending and suppressed ones are not outcomes yet), and `rate` = sent / (sent + failed),
    None when there were none. `{channel: {"24h": {"sent", "failed", "rate"}, "7d": ...}}`."""
    since = now - max(DELIVERY_WINDOWS.values())
    rows = session.execute(
        select(Notification.channel, Notification.status, Notification.created_at).where(
            Notification.created_at >= since, Notification.status.in_(("sent", "failed"))
        )
    )
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for channel, status, created in rows:
        windows = counts.setdefault(channel, {})
        for label, span in DELIVERY_WINDOWS.items():
            tally = windows.setdefault(label, {"sent": 0, "failed": 0})
            if created >= now - span:
                tally[status] += 1
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for channel, windows in counts.items():
        out[channel] = {}
        for label in DELIVERY_WINDOWS:
            tally = windows.get(label, {"sent": 0, "failed": 0})
            total = tally["sent"] + tally["failed"]
            rate = round(tally["sent"] / total, 4) if total else None
            out[channel][label] = {**tally, "rate": rate}
    return out


def channel_report(
    session: Session, environ: Mapping[str, str] | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per channel: configured or what is missing (variable names only), alerts using it, and
    (given now) the delivery success rate over the last 24 h and 7 d (`delivery_rates`)."""
    from datamantri_alerts.channels import channel_names, get_channel
    from datamantri_alerts.channels.base import ChannelConfig

    env = os.environ if environ is None else environ
    using: dict[str, int] = {}
    for channels in session.scalars(select(Alert.channels).where(Alert.is_active.is_(True))):
        for name in channels or []:
            using[name] = using.get(name, 0) + 1
    rates = delivery_rates(session, now) if now is not None else {}
    empty = {label: {"sent": 0, "failed": 0, "rate": None} for label in DELIVERY_WINDOWS}
    report = []
    for name in channel_names():
        channel = get_channel(name)
        model: type[ChannelConfig] = channel.config_model
        problems = model.problems(env)
        fallback = channel.fallback_env
        report.append(
            {
                "name": name,
                "configured": not problems,
                "problems": problems,
                "fallback_env": fallback,
                "fallback_set": bool(fallback and env.get(fallback, "").strip()),
                "alerts_using": using.get(name, 0),
                "delivery": rates.get(name, empty),
            }
        )
    return report


def alerts_that_cannot_notify(
    session: Session, environ: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Active alerts that can never notify (`services/reachability.py`), each with its reasons
    as `field: message` lines (variable names only, never values)."""
    from datamantri_alerts.services.reachability import notify_warnings

    found = []
    query = select(Alert).where(Alert.is_active.is_(True)).order_by(Alert.id)
    for alert in session.scalars(query):
        problems = notify_warnings(alert.channels or [], alert.recipients or {}, environ)
        if problems:
            found.append(
                {"id": alert.id, "name": alert.name, "problems": [p.line() for p in problems]}
            )
    return found


def evaluator_status(
    session: Session,
    now: datetime,
    *,
    expected_interval: timedelta = DEFAULT_EXPECTED_INTERVAL,
    limit: int = 10,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    from datamantri_alerts.services.heartbeat import HEARTBEAT_ENV

    env = os.environ if environ is None else environ
    runs = list(
        session.scalars(select(EvaluatorRun).order_by(EvaluatorRun.started_at.desc()).limit(limit))
    )
    last_finished = session.scalar(
        select(func.max(EvaluatorRun.finished_at)).where(EvaluatorRun.finished_at.is_not(None))
    )
    window = expected_interval * 2
    overdue = last_finished is None or now - last_finished > window
    pending = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.status == "pending")
    )
    failed = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.status == "failed", Notification.created_at >= now - timedelta(days=1))
    )
    return {
        "now": now,
        "last_finished_at": last_finished,
        "expected_interval_seconds": int(expected_interval.total_seconds()),
        "overdue": overdue,
        "runs": [run_as_json(r) for r in runs],
        "channels": channel_report(session, env, now),
        "cannot_notify": alerts_that_cannot_notify(session, env),
        "outbox": {"pending": int(pending or 0), "failed_last_24h": int(failed or 0)},
        "heartbeat": {"env": HEARTBEAT_ENV, "configured": bool(env.get(HEARTBEAT_ENV, "").strip())},
    }
