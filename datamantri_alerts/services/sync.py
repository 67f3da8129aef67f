"""`alerts sync`: make the store match a YAML file, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError
from datamantri_alerts.schema import ParsedFile
from datamantri_alerts.services.alerts import (
    alert_for_export,
    apply_definition,
    create_alert,
    definition_of,
    delete_alert,
    restore_redacted_recipients,
)
from datamantri_alerts.services.entities import (
    ENTITY_LABELS,
    ENTITY_MODELS,
    check_references,
    entity_fields,
    stored_entity_fields,
)
from datamantri_alerts.services.masking import restore_redacted_url, url_for_export
from datamantri_alerts.store.models import Alert

Action = Literal["create", "update", "unchanged", "delete"]
KIND_ORDER = ("datasource", "pipeline", "dashboard")


@dataclass
class Change:
    kind: str  # alert | datasource | pipeline | dashboard
    name: str
    action: Action
    fields: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": self.action}


@dataclass
class SyncPlan:
    changes: list[Change]
    warnings: list[str]
    applied: bool = False

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


def _entities_in_file(parsed: ParsedFile) -> dict[str, list[Any]]:
    return {
        "datasource": parsed.datasources,
        "pipeline": parsed.pipelines,
        "dashboard": parsed.dashboards,
    }


def sync_file(
    session: Session, parsed: ParsedFile, clock: Clock, *, prune: bool, apply: bool
) -> SyncPlan:
    """Plan (and, with apply, carry out) the changes that make the store match the file.

    The caller owns the transaction: on any InputError nothing it did may be committed.
    """
    changes: list[Change] = []
    warnings: list[str] = []
    by_kind = _entities_in_file(parsed)

    # Which ids will exist afterwards: the file's, plus the store's unless pruned.
    stored_rows = {
        kind: {row.id: row for row in session.scalars(select(model))}
        for kind, model in ENTITY_MODELS.items()
    }
    final_ids = {
        kind: {spec.id for spec in by_kind[kind]} | (set() if prune else set(stored_rows[kind]))
        for kind in KIND_ORDER
    }

    for kind in KIND_ORDER:
        model = ENTITY_MODELS[kind]
        for spec in by_kind[kind]:
            if kind != "datasource":
                check_references(spec.references(), final_ids, field=f"{kind}s.{spec.id}.runs")
            fields = entity_fields(kind, spec)
            row = stored_rows[kind].get(spec.id)
            if kind == "datasource":
                fields["url"] = restore_redacted_url(
                    fields["url"], row.url if row else None, f"datasources.{spec.id}.url"
                )
            if row is None:
                changes.append(Change(kind, spec.id, "create"))
                if apply:
                    now = clock.now()
                    session.add(model(id=spec.id, created_at=now, updated_at=now, **fields))
                continue
            current = stored_entity_fields(kind, row)
            differing = [k for k, v in fields.items() if current.get(k) != v]
            changes.append(Change(kind, spec.id, "update" if differing else "unchanged", differing))
            if apply and differing:
                for key in differing:
                    setattr(row, key, fields[key])
                row.updated_at = clock.now()
    if apply:
        session.flush()

    stored_alerts = {a.name: a for a in session.scalars(select(Alert))}
    for definition in parsed.alerts:
        check_references(
            definition.references, final_ids, field=f"alerts.{definition.name}.condition_config"
        )
        warnings.extend(f"alert {definition.name!r}: {w}" for w in definition.warnings)
        alert = stored_alerts.get(definition.name)
        if alert is None:
            restore_redacted_recipients(definition, None)
            changes.append(Change("alert", definition.name, "create"))
            if apply:
                create_alert(session, definition, clock)
            continue
        resolved = restore_redacted_recipients(definition, alert.recipients)
        current = definition_of(alert)
        differing = [
            k
            for k, v in resolved.stored_fields().items()
            if current.get(k) != v and (k != "muted_until" or k in definition.explicit)
        ]
        changes.append(
            Change("alert", definition.name, "update" if differing else "unchanged", differing)
        )
        if apply and differing:
            apply_definition(session, alert, definition, clock)

    if prune:
        wanted_alerts = {d.name for d in parsed.alerts}
        for name, alert in sorted(stored_alerts.items()):
            if name not in wanted_alerts:
                changes.append(Change("alert", name, "delete"))
                if apply:
                    delete_alert(session, alert, keep_history=True, now=clock.now())
        if apply:
            session.flush()
        for kind in reversed(KIND_ORDER):
            wanted = {spec.id for spec in by_kind[kind]}
            for entity_id, row in sorted(stored_rows[kind].items()):
                if entity_id in wanted:
                    continue
                changes.append(Change(kind, entity_id, "delete"))
                if apply:
                    session.delete(row)
            if apply:
                session.flush()
    _check_remaining_references(session, parsed, prune)
    return SyncPlan(changes=changes, warnings=warnings, applied=apply)


def _check_remaining_references(session: Session, parsed: ParsedFile, prune: bool) -> None:
    """Without --prune, stored alerts not in the file must still name existing entities."""
    if prune:
        return
    names_in_file = {d.name for d in parsed.alerts}
    ids = {kind: set() for kind in KIND_ORDER}
    for kind, model in ENTITY_MODELS.items():
        ids[kind] = set(session.scalars(select(model.id)))
        ids[kind] |= {spec.id for spec in _entities_in_file(parsed)[kind]}
    for alert in session.scalars(select(Alert)):
        if alert.name in names_in_file:
            continue
        for key, kind in (
            ("datasource_id", "datasource"),
            ("pipeline_id", "pipeline"),
            ("dashboard_id", "dashboard"),
        ):
            ref = (alert.condition_config or {}).get(key)
            if ref and ref not in ids[kind]:
                raise InputError(
                    f"stored alert {alert.name!r} names {ENTITY_LABELS[kind]} {ref!r}, "
                    "which this file would not keep",
                    field=f"{kind}s",
                )


def export_document(session: Session, *, show_secrets: bool) -> dict[str, Any]:
    """The whole store as a document `sync` accepts."""
    doc: dict[str, Any] = {}
    for kind in KIND_ORDER:
        items = []
        for row in session.scalars(select(ENTITY_MODELS[kind]).order_by(ENTITY_MODELS[kind].id)):
            item: dict[str, Any] = {"id": row.id, "name": row.name}
            if kind == "datasource":
                item["url"] = url_for_export(row.url, show_secrets)
                if row.freshness:
                    item["freshness"] = dict(row.freshness)
            else:
                item["runs"] = dict(row.runs)
            items.append(item)
        doc[f"{kind}s"] = items
    doc["alerts"] = [
        alert_for_export(a, show_secrets=show_secrets)
        for a in session.scalars(select(Alert).order_by(Alert.id))
    ]
    return doc
