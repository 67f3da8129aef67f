"""Saving an edit made outside any transaction (`alerts edit` in $EDITOR, `datasources edit`).

An editor may stay open for minutes, so nothing is locked while it is: the record is read
(`read_alert` / `read_entity` give what to edit plus a `Seen` snapshot), edited, and saved in a
short transaction by `save_alert_edit` / `save_entity_edit`. Both go through `claim_unchanged`:
an `UPDATE ... WHERE <key> AND updated_at = <seen>` that takes the row (its write lock on
PostgreSQL and MariaDB; SQLite's write transaction holds the whole file) only if nobody saved
it meanwhile, then a comparison of the editable fields with the snapshot, which also catches
writers that do not move `updated_at` (`alerts mute`). Either way: `ConflictError`, nothing
written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import ConflictError, InputError
from datamantri_alerts.services.entities import ENTITY_LABELS, ENTITY_MODELS
from datamantri_alerts.store.models import Alert

if TYPE_CHECKING:
    from datamantri_alerts.schema import AlertDefinition

CHANGED_MEANWHILE = "changed by someone else meanwhile"


@dataclass(frozen=True)
class Seen:
    """What an edit started from: the row's key, its `updated_at` and its editable fields."""

    key: Any
    updated_at: datetime
    fields: dict[str, Any]


def claim_unchanged(
    session: Session, model: type[Any], seen: Seen, current: dict[str, Any], now: datetime
) -> None:
    """Take the row for this transaction if it is as `seen`; ConflictError otherwise.

    current: the row's editable fields as read in this transaction (compared after the row
    is taken, so no writer can slip in between)."""
    result = session.execute(
        update(model)
        .where(model.id == seen.key, model.updated_at == seen.updated_at)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1 or current != seen.fields:
        raise ConflictError(CHANGED_MEANWHILE)


# --------------------------------------------------------------------------- alerts


def read_alert(session: Session, ref: str) -> tuple[dict[str, Any], Seen]:
    """The alert as the editor shows it (secrets as <redacted>) and its snapshot."""
    from datamantri_alerts.services.alerts import alert_for_export, definition_of, get_alert

    alert = get_alert(session, ref)
    document = alert_for_export(alert, show_secrets=False)
    return document, Seen(alert.id, alert.updated_at, definition_of(alert))


def save_alert_edit(
    session: Session, seen: Seen, document: dict[str, Any], clock: Clock
) -> AlertDefinition:
    """Validate document (every field of an alert, `<redacted>` keeping stored secrets) and
    save it over the alert read as seen. InputError when invalid, ConflictError when the
    alert changed or was deleted meanwhile."""
    from datamantri_alerts.services.alerts import definition_of, update_alert

    alert = session.get(Alert, seen.key, populate_existing=True)
    if alert is None:
        raise ConflictError("deleted by someone else meanwhile")
    claim_unchanged(session, Alert, seen, definition_of(alert), clock.now())
    document = {**document}
    document.setdefault("recipients", {})
    return update_alert(session, alert, document, clock)


# --------------------------------------------------------------------------- entities


def entity_document(kind: str, row: Any) -> dict[str, Any]:
    """A data source, pipeline or dashboard as an item of the YAML file (secrets redacted)."""
    from datamantri_alerts.services.masking import url_for_export

    document: dict[str, Any] = {"id": row.id, "name": row.name}
    if kind == "datasource":
        document["url"] = url_for_export(row.url, show_secrets=False)
        if row.freshness:
            document["freshness"] = dict(row.freshness)
    else:
        document["runs"] = dict(row.runs)
    return document


def read_entity(session: Session, kind: str, entity_id: str) -> tuple[dict[str, Any], Seen]:
    from datamantri_alerts.services.entities import get_entity, stored_entity_fields

    row = get_entity(session, kind, entity_id)
    return entity_document(kind, row), Seen(row.id, row.updated_at, stored_entity_fields(kind, row))


def save_entity_edit(
    session: Session, kind: str, seen: Seen, document: dict[str, Any], clock: Clock
) -> Any:
    """Validate document and save it over the entity read as seen (its id cannot change).
    InputError when invalid, ConflictError when it changed or was deleted meanwhile."""
    from pydantic import ValidationError

    from datamantri_alerts.schema import JobSpec, format_validation_error
    from datamantri_alerts.services.entities import (
        SPEC_MODELS,
        check_references,
        entity_fields,
        known_ids,
        stored_entity_fields,
    )
    from datamantri_alerts.services.masking import restore_redacted_url

    try:
        spec = SPEC_MODELS[kind].model_validate(document)
    except ValidationError as exc:
        raise format_validation_error(exc) from None
    if spec.id != seen.key:
        raise InputError(
            f"cannot be changed by an edit (add a new {ENTITY_LABELS[kind]} and remove this one)",
            field="id",
        )
    model = ENTITY_MODELS[kind]
    row = session.get(model, seen.key, populate_existing=True)
    if row is None:
        raise ConflictError("deleted by someone else meanwhile")
    claim_unchanged(session, model, seen, stored_entity_fields(kind, row), clock.now())
    if isinstance(spec, JobSpec):
        check_references(spec.references(), known_ids(session), field="runs")
    fields = entity_fields(kind, spec)
    if kind == "datasource":
        fields["url"] = restore_redacted_url(fields["url"], row.url, "url")
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = clock.now()
    return row
