"""Alert CRUD: create, find, list, change, enable/disable, delete.

Disabling, enabling and deleting go through `stand_down`, whichever path asks (the CLI, `alerts
edit`, `alerts sync` with `is_active: false` or `--prune`), so an alert that stops being watched
never leaves an episode open or a notification waiting to be sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.fieldpath import field_path
from datamantri_alerts.secrets import REDACTED
from datamantri_alerts.services.masking import recipients_for_display, recipients_for_export
from datamantri_alerts.store.models import Alert, AlertHistory, Notification

if TYPE_CHECKING:
    # Validation (pydantic) is imported where definitions are written, so `alerts list`
    # does not pay for it.
    from datamantri_alerts.schema import AlertDefinition

DEFINITION_FIELDS = (
    "name",
    "key",
    "description",
    "condition_type",
    "condition_config",
    "channels",
    "recipients",
    "is_active",
    "severity",
    "repeat_interval_minutes",
    "notify_on_resolve",
    "pending_evaluations",
    "muted_until",
    "labels",
    "mute_during",
    "flap_detection",
)


def get_alert(session: Session, ref: str | int) -> Alert:
    """An alert by numeric id or exact name."""
    text = str(ref).strip()
    alert: Alert | None = None
    if text.isdigit():
        alert = session.get(Alert, int(text))
    if alert is None:
        alert = session.scalars(select(Alert).where(Alert.name == text)).first()
    if alert is None:
        raise NotFoundError(f"no alert with id or name {text!r}", field="REF")
    return alert


def definition_of(alert: Alert) -> dict[str, Any]:
    """The stored definition as a person would write it (secrets as stored)."""
    return {name: getattr(alert, name) for name in DEFINITION_FIELDS}


def restore_redacted_recipients(
    definition: AlertDefinition, stored: dict[str, Any] | None
) -> AlertDefinition:
    """Recipients exported as <redacted> keep their stored values."""
    recipients = dict(definition.recipients)
    for name, value in definition.recipients.items():
        if value == REDACTED:
            previous = (stored or {}).get(name)
            if previous is None or previous == REDACTED:
                raise InputError(
                    "is <redacted> but there is no stored value to keep",
                    field=field_path("recipients", name),
                )
            recipients[name] = previous
    return definition.model_copy(update={"recipients": recipients})


def create_alert(session: Session, definition: AlertDefinition, clock: Clock) -> Alert:
    from datamantri_alerts.services.entities import check_references, known_ids

    if session.scalars(select(Alert.id).where(Alert.name == definition.name)).first():
        raise InputError(f"an alert named {definition.name!r} already exists", field="name")
    _check_key_free(session, definition.key, None)
    from datamantri_alerts.services.maintenance import check_window_names

    definition = restore_redacted_recipients(definition, None)
    check_references(definition.references, known_ids(session))
    check_window_names(session, definition.mute_during, "mute_during")
    now = clock.now()
    alert = Alert(
        **definition.stored_fields(),
        state="ok",
        consecutive_hits=0,
        trigger_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def apply_definition(
    session: Session, alert: Alert, definition: AlertDefinition, clock: Clock
) -> bool:
    """Make alert match definition; returns whether anything changed."""
    from datamantri_alerts.services.entities import check_references, known_ids

    definition = restore_redacted_recipients(definition, alert.recipients)
    was_active = alert.is_active
    if definition.name != alert.name:
        clash = session.scalars(
            select(Alert.id).where(Alert.name == definition.name, Alert.id != alert.id)
        ).first()
        if clash:
            raise InputError(f"an alert named {definition.name!r} already exists", field="name")
    if definition.key != alert.key:
        _check_key_free(session, definition.key, alert.id)
    check_references(definition.references, known_ids(session))
    from datamantri_alerts.services.maintenance import check_window_names

    check_window_names(session, definition.mute_during, "mute_during")
    changed = False
    for key, value in definition.stored_fields().items():
        if key == "muted_until" and key not in definition.explicit:
            continue  # a mute set with `alerts mute` is not undone by a file that omits it
        if getattr(alert, key) != value:
            setattr(alert, key, value)
            changed = True
    if changed:
        alert.updated_at = clock.now()
        # A changed definition is checked afresh on the next run.
        alert.next_due_at = None
    if alert.is_active != was_active:
        stand_down(session, alert, DISABLED_NOTE, clock.now())
    return changed


def _check_key_free(session: Session, key: str | None, alert_id: int | None) -> None:
    """A stable `key` names one alert only."""
    if key is None:
        return
    query = select(Alert.name).where(Alert.key == key)
    if alert_id is not None:
        query = query.where(Alert.id != alert_id)
    holder = session.scalars(query).first()
    if holder is not None:
        raise InputError(f"alert {holder!r} already has key {key!r}", field="key")


def update_alert(
    session: Session, alert: Alert, changes: dict[str, Any], clock: Clock
) -> AlertDefinition:
    """Replace the given fields of the stored definition, validate the whole, and save."""
    from datamantri_alerts.schema import validate_alert

    merged = {**definition_of(alert), **changes}
    definition = validate_alert(merged)
    apply_definition(session, alert, definition, clock)
    return definition


#: The resolution note of an episode closed because its alert was switched off / deleted, and
#: the reason recorded on its notifications that were still waiting to be sent.
DISABLED_NOTE = "alert disabled"
DELETED_NOTE = "alert deleted"


def stand_down(session: Session, alert: Alert, note: str, now: datetime) -> None:
    """Close the alert's open episodes (resolved now, with `note`), cancel its notifications
    still pending (status `cancelled`, `note` as the reason) and reset its bookkeeping: state
    ok, no pending count or check state, no lease (a result in flight is dropped), due at once.

    Called when an alert is disabled, enabled again (it starts clean) or deleted. People are
    sent nothing; an incident tracker (PagerDuty, a webhook) that was sent the episode's FIRING
    is queued its RESOLVED, or its incident would stay open for ever
    (`services.signal.closing`; with `delete --purge-history` nothing of the alert is kept).
    """
    from datamantri_alerts.services.signal.closing import queue_resolved

    session.flush()
    closing = list(
        session.scalars(
            select(AlertHistory.id).where(
                AlertHistory.alert_id == alert.id, AlertHistory.resolved_at.is_(None)
            )
        )
    )
    session.execute(
        update(AlertHistory)
        .where(AlertHistory.alert_id == alert.id, AlertHistory.resolved_at.is_(None))
        .values(resolved_at=now, resolution_notes=note)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Notification)
        .where(Notification.alert_id == alert.id, Notification.status == "pending")
        .values(status="cancelled", last_error=note, lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    queue_resolved(session, closing, now, stood_down=True)
    alert.state = "ok"
    alert.consecutive_hits = 0
    alert.check_state = None
    alert.current_episode_id = None
    alert.last_notified_at = None
    alert.next_due_at = None
    alert.lease_holder = None
    alert.lease_expires_at = None


def set_active(session: Session, alert: Alert, active: bool, clock: Clock) -> bool:
    """Switch an alert on or off (see `stand_down`); returns whether it changed.

    Disabling an alert that is already off still closes an episode left open (by a version
    that did not close episodes on disable)."""
    if alert.is_active == active:
        if not active and alert.current_episode_id is not None:
            stand_down(session, alert, DISABLED_NOTE, clock.now())
        return False
    alert.is_active = active
    alert.updated_at = clock.now()
    stand_down(session, alert, DISABLED_NOTE, clock.now())
    return True


def delete_alert(session: Session, alert: Alert, *, keep_history: bool, now: datetime) -> int:
    """Delete an alert; returns how many history rows were removed. With `keep_history` its
    episodes stay, closed with the note "alert deleted" (see `stand_down`).

    Without it, an incident tracker still owed a RESOLVED (an episode whose FIRING reached
    PagerDuty or a webhook) refuses the purge (InputError, nothing written): the RESOLVED
    queued by `stand_down` would be purged with the history and the incident left open for
    ever. Deleted with its history kept, the next `alerts evaluate` sends it."""
    stand_down(session, alert, DELETED_NOTE, now)
    removed = 0
    if not keep_history:
        owed = sorted(
            set(
                session.scalars(
                    select(Notification.channel).where(
                        Notification.alert_id == alert.id,
                        Notification.status == "pending",
                        Notification.kind == "resolved",
                    )
                )
            )
        )
        if owed:
            raise InputError(
                f"alert {alert.id} has an incident open on {', '.join(owed)} that is still to be "
                "sent its RESOLVED, which purging its history would drop: delete it with "
                "--keep-history (the next `alerts evaluate` sends the RESOLVED)",
                field="--purge-history",
            )
        removed = (
            session.scalar(
                select(func.count())
                .select_from(AlertHistory)
                .where(AlertHistory.alert_id == alert.id)
            )
            or 0
        )
        session.execute(delete(Notification).where(Notification.alert_id == alert.id))
        session.execute(delete(AlertHistory).where(AlertHistory.alert_id == alert.id))
    session.delete(alert)
    return removed


@dataclass
class AlertFilter:
    search: str | None = None
    condition_type: str | None = None
    active: bool | None = None
    state: str | None = None
    channel: str | None = None
    #: When set: only alerts muted at this instant (`muted_until` after it).
    muted_at: datetime | None = None
    #: Label matchers (`services.signal.silences.Matcher`) every listed alert satisfies.
    labels: list[Any] = field(default_factory=list)


def list_alerts(session: Session, filters: AlertFilter | None = None) -> list[Alert]:
    filters = filters or AlertFilter()
    alerts = list(session.scalars(_filtered(select(Alert).order_by(Alert.id), filters)))
    if filters.channel:
        alerts = [a for a in alerts if filters.channel in (a.channels or [])]
    return [a for a in alerts if _labels_match(filters, a.labels)]


#: The columns of the `alerts list` table.
LISTING_COLUMNS = (
    Alert.id,
    Alert.name,
    Alert.description,
    Alert.condition_type,
    Alert.channels,
    Alert.is_active,
    Alert.state,
    Alert.last_triggered_at,
    Alert.trigger_count,
    Alert.muted_until,
    Alert.labels,
)


def list_alert_rows(session: Session, filters: AlertFilter | None = None) -> list[Any]:
    """The alerts `list_alerts` returns, as rows of `LISTING_COLUMNS` only.

    For the table: no ORM objects and no recipients to decrypt, about a third of the cost.
    """
    filters = filters or AlertFilter()
    rows = list(session.execute(_filtered(select(*LISTING_COLUMNS).order_by(Alert.id), filters)))
    if filters.channel:
        rows = [r for r in rows if filters.channel in (r.channels or [])]
    return [r for r in rows if _labels_match(filters, r.labels)]


def _labels_match(filters: AlertFilter, labels: dict[str, Any] | None) -> bool:
    from datamantri_alerts.services.signal.silences import matches_all

    return matches_all(filters.labels, labels) if filters.labels else True


def _filtered(query: Select[Any], filters: AlertFilter) -> Select[Any]:
    if filters.search:
        pattern = f"%{filters.search.lower()}%"
        query = query.where(
            or_(func.lower(Alert.name).like(pattern), func.lower(Alert.description).like(pattern))
        )
    if filters.condition_type:
        query = query.where(Alert.condition_type == filters.condition_type)
    if filters.active is not None:
        query = query.where(Alert.is_active == filters.active)
    if filters.state:
        query = query.where(Alert.state == filters.state)
    if filters.muted_at is not None:
        query = query.where(Alert.muted_until > filters.muted_at)
    return query


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def alert_as_json(alert: Alert) -> dict[str, Any]:
    """The stable JSON shape of `list --json` / `show --json`; secrets masked."""
    return {
        "id": alert.id,
        "name": alert.name,
        "key": alert.key,
        "description": alert.description,
        "condition_type": alert.condition_type,
        "condition_config": alert.condition_config,
        "channels": alert.channels,
        "recipients": recipients_for_display(alert.recipients or {}),
        "is_active": alert.is_active,
        "severity": alert.severity,
        "repeat_interval_minutes": alert.repeat_interval_minutes,
        "notify_on_resolve": alert.notify_on_resolve,
        "pending_evaluations": alert.pending_evaluations,
        "muted_until": _iso(alert.muted_until),
        "mute_reason": alert.mute_reason,
        "labels": dict(alert.labels or {}),
        "mute_during": list(alert.mute_during or []),
        "flap_detection": alert.flap_detection,
        "flapping": bool(alert.flapping),
        "state": alert.state,
        "last_summary": alert.last_summary,
        "last_evaluated_at": _iso(alert.last_evaluated_at),
        "last_triggered_at": _iso(alert.last_triggered_at),
        "trigger_count": alert.trigger_count,
        "created_at": _iso(alert.created_at),
        "updated_at": _iso(alert.updated_at),
    }


def alert_for_export(alert: Alert, *, show_secrets: bool) -> dict[str, Any]:
    """An alert as a YAML item `sync` accepts; defaults left out for readability."""
    item: dict[str, Any] = {"name": alert.name}
    if alert.key is not None:
        item["key"] = alert.key
    if alert.description:
        item["description"] = alert.description
    item["condition_type"] = alert.condition_type
    item["condition_config"] = dict(alert.condition_config)
    item["channels"] = list(alert.channels)
    item["recipients"] = recipients_for_export(alert.recipients or {}, show_secrets)
    item["is_active"] = alert.is_active
    item["severity"] = alert.severity
    if alert.repeat_interval_minutes != 240:
        item["repeat_interval_minutes"] = alert.repeat_interval_minutes
    if not alert.notify_on_resolve:
        item["notify_on_resolve"] = False
    if alert.pending_evaluations != 1:
        item["pending_evaluations"] = alert.pending_evaluations
    if alert.muted_until is not None:
        item["muted_until"] = alert.muted_until.isoformat()
    if alert.labels:
        item["labels"] = dict(alert.labels)
    if alert.mute_during:
        item["mute_during"] = list(alert.mute_during)
    if alert.flap_detection:
        item["flap_detection"] = dict(alert.flap_detection)
    return item
