"""SQLAlchemy 2.0 typed models of the store.

A constraint naming convention keeps Alembic migrations stable across dialects. Columns holding
text the product writes (summaries, errors, details, outbox payloads) are `Redacted*`: no known
secret reaches the history or the outbox, whichever code path wrote it.

The annotations are evaluated as the classes are defined (no `from __future__ import
annotations`): declarative mapping then reads them as they are instead of evaluating every
`Mapped[...]` string again, ≈ 15 % of this module's import, which every command pays.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from datamantri_alerts.store.crypto import EncryptedJSON, EncryptedText
from datamantri_alerts.store.types import (
    JSONType,
    RedactedJSON,
    RedactedText,
    StoredText,
    UTCDateTime,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class DataSource(Base):
    __tablename__ = "datasources"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(EncryptedText)
    freshness: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    runs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Dashboard(Base):
    __tablename__ = "dashboards"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    runs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobRun(Base):
    """A recorded run of a pipeline or a dashboard refresh (`runs.source: recorded`)."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job", "job_kind", "job_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_kind: Mapped[str] = mapped_column(String(20))  # pipeline | dashboard
    job_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # success | failed | running
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    command: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_active", "is_active"),
        Index("ix_alerts_due", "is_active", "next_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    #: Optional stable identity from the YAML file (`key:`): `sync` matches on it before the
    #: name, so a renamed alert keeps its row and history.
    key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    description: Mapped[str] = mapped_column(StoredText, default="")
    condition_type: Mapped[str] = mapped_column(String(100))
    condition_config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    channels: Mapped[list[str]] = mapped_column(JSONType)
    recipients: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    severity: Mapped[str] = mapped_column(String(20))
    repeat_interval_minutes: Mapped[int] = mapped_column(Integer, default=240)
    notify_on_resolve: Mapped[bool] = mapped_column(Boolean, default=True)
    pending_evaluations: Mapped[int] = mapped_column(Integer, default=1)
    muted_until: Mapped[datetime | None] = mapped_column(nullable=True)
    mute_reason: Mapped[str | None] = mapped_column(StoredText, nullable=True)
    #: {name: value} labels, matched by silences and shown in notifications.
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: Names of maintenance windows during which the alert notifies nothing.
    mute_during: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: Optional per-alert flap detection settings ({enabled, high, low, window}).
    flap_detection: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    # Bookkeeping written by the evaluator.
    state: Mapped[str] = mapped_column(String(20), default="ok")  # ok | pending | firing | error
    consecutive_hits: Mapped[int] = mapped_column(Integer, default=0)
    check_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    last_summary: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    last_details: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, nullable=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_triggered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    trigger_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Recent outcomes, oldest first (F firing, O ok), for flap detection.
    flap_history: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    current_episode_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_holder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertHistory(Base):
    """One row per episode: from the first firing (or error) evaluation until it clears."""

    __tablename__ = "alert_history"
    __table_args__ = (
        Index("ix_alert_history_alert_id", "alert_id"),
        Index("ix_alert_history_triggered_at", "triggered_at"),
        Index("ix_alert_history_alert_triggered", "alert_id", "triggered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True
    )
    alert_name: Mapped[str] = mapped_column(String(300))
    triggered_at: Mapped[datetime]
    condition_met: Mapped[bool] = mapped_column(Boolean, default=True)
    kind: Mapped[str] = mapped_column(String(20), default="firing")  # firing | error
    severity: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(RedactedJSON, nullable=True)
    notifications_sent: Mapped[list[Any]] = mapped_column(RedactedJSON, default=list)
    notification_errors: Mapped[list[Any]] = mapped_column(RedactedJSON, default=list)
    last_notified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolution_notes: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    #: Changes of the outcome inside the episode ([{"at": iso, "outcome": ok|firing}]): a
    #: recovery not yet confirmed, a flapping condition (`services.signal.flapping`).
    flips: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)
    # Acknowledgement (`alerts ack`): stops this episode's REPEATs until ack_until (None: for
    # the rest of the episode). A new episode starts unacknowledged.
    acknowledged_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ack_note: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    ack_until: Mapped[datetime | None] = mapped_column(nullable=True)
    #: The key a tracker (PagerDuty) knows this episode's incident by, when it is not the one
    #: derived from ids and `triggered_at` (`channels.pagerduty.dedup_key`): an episode open
    #: when the store was upgraded keeps the key its FIRING was sent with (migration
    #: `incident_key`), so its RESOLVED and acknowledgements reach the same incident.
    incident_key: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Notification(Base):
    """The delivery outbox: written before a send, updated after it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
        Index("ix_notifications_history_id", "history_id"),
        UniqueConstraint("dedup_key", name="uq_notifications_dedup_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(400))
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True
    )
    history_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_history.id", ondelete="CASCADE"), nullable=True
    )
    channel: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(EncryptedText)  # as written: may be ${VAR}
    kind: Mapped[str] = mapped_column(String(20))  # firing | repeat | resolved | test
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # pending | sent | failed | suppressed
    payload: Mapped[dict[str, Any]] = mapped_column(RedactedJSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    lease_holder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class EvaluatorRun(Base):
    __tablename__ = "evaluator_runs"
    __table_args__ = (Index("ix_evaluator_runs_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    # running | ok | failed | interrupted (stopped by SIGTERM or Ctrl-C)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    firing: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    notifications_sent: Mapped[int] = mapped_column(Integer, default=0)
    notifications_failed: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(RedactedText, nullable=True)


class MaintenanceWindow(Base):
    """A named maintenance window (`services.signal.windows`): its definition as JSON."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Silence(Base):
    """A silence by label matchers ([[name, op, value], ...]) from starts_at until ends_at."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    matchers: Mapped[list[Any]] = mapped_column(JSONType)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(RedactedText, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime]
