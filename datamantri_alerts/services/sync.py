"""`alerts sync`: make the store match a YAML file, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError, first_of
from datamantri_alerts.fieldpath import field_path
from datamantri_alerts.schema import AlertDefinition, ParsedFile
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
    entity_fields,
    file_reference_problems,
    stored_entity_fields,
)
from datamantri_alerts.services.masking import restore_redacted_url, url_for_export
from datamantri_alerts.store.models import Alert, MaintenanceWindow

Action = Literal["create", "update", "unchanged", "delete"]
KIND_ORDER = ("datasource", "pipeline", "dashboard")
NOT_IN_FILE_NOTE = "not in file (kept; --prune deletes)"


@dataclass(frozen=True)
class FieldChange:
    """One changed field: its dotted path (`condition_config.threshold_seconds`) and the old
    and new values as shown; `secret` values are masked (`mask_url`), so two different secrets
    may show the same."""

    field: str
    old: Any
    new: Any
    secret: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new, "secret": self.secret}

    def line(self) -> str:
        """`field: old -> new`, with `(changed)` where masking hides the difference."""
        text = f"{self.field}: {_shown(self.old)} -> {_shown(self.new)}"
        return f"{text} (changed)" if self.secret and self.old == self.new else text


def _shown(value: Any) -> str:
    import json

    if value is None:
        return "-"
    if isinstance(value, str) and value:
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class Change:
    kind: str  # alert | datasource | pipeline | dashboard
    name: str
    action: Action
    diff: list[FieldChange] = field(default_factory=list)
    #: The stored name this alert had when the file renames it (`renamed_from`).
    renamed_from: str | None = None

    @property
    def fields(self) -> list[str]:
        """The changed top-level fields, in file order."""
        return list(dict.fromkeys(c.field.split(".", 1)[0].split("[", 1)[0] for c in self.diff))

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "name": self.name, "action": self.action}
        data["fields"] = self.fields
        data["diff"] = [c.as_json() for c in self.diff]
        if self.renamed_from is not None:
            data["renamed_from"] = self.renamed_from
        return data


@dataclass(frozen=True)
class Kept:
    """A store item the file does not have, kept because --prune was not given."""

    kind: str
    name: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "note": NOT_IN_FILE_NOTE}


@dataclass
class SyncPlan:
    changes: list[Change]
    warnings: list[str]
    applied: bool = False
    not_in_file: list[Kept] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    @property
    def deletions(self) -> list[tuple[str, str]]:
        return [(c.kind, c.name) for c in self.changes if c.action == "delete"]

    def as_json(self) -> dict[str, Any]:
        """The SPEC shape (`changes`, `applied`) plus each change's diff and `not_in_file`."""
        return {
            "changes": [c.as_json() for c in self.changes],
            "applied": self.applied,
            "not_in_file": [k.as_json() for k in self.not_in_file],
        }


def field_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    secret: Callable[[str], bool] = lambda _: False,
    mask: Callable[[str, str], str] | None = None,
) -> list[FieldChange]:
    """The differences between two definitions, nested mappings as dotted paths.

    secret(path) says which values to mask for display, mask(path, text) how (default
    `mask_url`); lists compare whole, and a list or mapping under a secret path is masked item
    by item (`recipients.webhook[0]`)."""
    from datamantri_alerts.secrets import mask_url

    mask_text = mask or (lambda _path, text: mask_url(text))
    changes: list[FieldChange] = []

    def masked(path: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: masked(field_path(path, str(k)), v) for k, v in value.items()}
        if isinstance(value, list):
            return [masked(field_path(path, i), v) for i, v in enumerate(value)]
        if isinstance(value, str) and secret(path):
            return mask_text(path, value)
        return _plain(value)

    def walk(prefix: str, before: Any, after: Any) -> None:
        if isinstance(before, dict) and isinstance(after, dict):
            for key in dict.fromkeys([*after, *before]):
                walk(field_path(prefix, str(key)), before.get(key), after.get(key))
            return
        if before == after:
            return
        if secret(prefix):
            shown = FieldChange(prefix, masked(prefix, before), masked(prefix, after), secret=True)
            changes.append(shown)
        else:
            changes.append(FieldChange(prefix, _plain(before), _plain(after)))

    for key in dict.fromkeys([*new, *old]):
        walk(key, old.get(key), new.get(key))
    return changes


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _secret_alert_field(path: str) -> bool:
    """recipients.<channel> of a channel whose recipient carries a token (webhook URLs), except
    the keys its mapping recipients hold as plain settings (`recipients.webhook[0].format`)."""
    from datamantri_alerts.channels import channel_names, get_channel

    head, _, rest = path.partition(".")
    if head != "recipients" or not rest:
        return False
    channel = rest.split(".", 1)[0].split("[", 1)[0]
    if channel not in channel_names():
        return True
    found = get_channel(channel)
    leaf = rest.rsplit(".", 1)[-1] if "." in rest else ""
    return found.recipient_is_secret and leaf not in found.plain_recipient_keys


def _mask_alert_field(path: str, text: str) -> str:
    """A secret recipient value as its channel shows it (`discord://***`, whatever the scheme);
    a key inside a mapping recipient (`recipients.webhook[0].url`) through `mask_url`."""
    from datamantri_alerts.channels import channel_names, get_channel
    from datamantri_alerts.secrets import mask_secret, mask_url

    rest = path.partition(".")[2]
    channel = rest.split(".", 1)[0].split("[", 1)[0]
    if channel not in channel_names():
        return mask_secret(text)
    if "." in rest:
        return mask_url(text)
    return get_channel(channel).mask_recipient(text)


def _secret_entity_field(path: str) -> bool:
    return path == "url"


def _entities_in_file(parsed: ParsedFile) -> dict[str, list[Any]]:
    return {
        "datasource": parsed.datasources,
        "pipeline": parsed.pipelines,
        "dashboard": parsed.dashboards,
    }


def sync_file(
    session: Session,
    parsed: ParsedFile,
    clock: Clock,
    *,
    prune: bool,
    apply: bool,
    environ: Mapping[str, str] | None = None,
) -> SyncPlan:
    """Plan (and, with apply, carry out) the changes that make the store match the file.

    Alerts are matched by name, else by one of their `renamed_from` names (the stored alert is
    renamed: its id, state and history stay). The caller owns the transaction: on any
    InputError nothing it did may be committed. Warnings are `alerts[3].field: message` lines.
    """
    from datamantri_alerts.services.maintenance import sync_windows
    from datamantri_alerts.services.reachability import definition_warnings

    changes: list[Change] = []
    warnings: list[str] = []
    not_in_file: list[Kept] = []
    by_kind = _entities_in_file(parsed)
    # Windows first: the alerts' mute_during must name windows that exist.
    windows = sync_windows(
        session, parsed.maintenance_windows, clock.now(), prune=False, apply=apply
    )
    changes.extend(Change("maintenance_window", name, action) for name, action in windows)  # type: ignore[arg-type]

    # Which ids will exist afterwards: the file's, plus the store's unless pruned.
    stored_rows = {
        kind: {row.id: row for row in session.scalars(select(model))}
        for kind, model in ENTITY_MODELS.items()
    }
    final_ids = {
        kind: {spec.id for spec in by_kind[kind]} | (set() if prune else set(stored_rows[kind]))
        for kind in KIND_ORDER
    }
    problems = file_reference_problems(parsed, final_ids)
    if problems:
        raise first_of(problems)

    for kind in KIND_ORDER:
        model = ENTITY_MODELS[kind]
        for n, spec in enumerate(by_kind[kind]):
            fields = entity_fields(kind, spec)
            row = stored_rows[kind].get(spec.id)
            if kind == "datasource":
                fields["url"] = restore_redacted_url(
                    fields["url"],
                    row.url if row else None,
                    field_path(parsed.path("datasources", n), "url"),
                )
            if row is None:
                changes.append(Change(kind, spec.id, "create"))
                if apply:
                    now = clock.now()
                    session.add(model(id=spec.id, created_at=now, updated_at=now, **fields))
                continue
            current = stored_entity_fields(kind, row)
            diff = field_changes(current, fields, secret=_secret_entity_field)
            changes.append(Change(kind, spec.id, "update" if diff else "unchanged", diff))
            if apply and diff:
                for key, value in fields.items():
                    if current.get(key) != value:
                        setattr(row, key, value)
                row.updated_at = clock.now()
    if apply:
        session.flush()

    stored_alerts = {a.name: a for a in session.scalars(select(Alert))}
    window_names = {spec.name for spec in parsed.maintenance_windows} | (
        set() if prune else set(session.scalars(select(MaintenanceWindow.name)))
    )
    by_key = {a.key: a for a in stored_alerts.values() if a.key is not None}
    matched: set[str] = set()
    for n, definition in enumerate(parsed.alerts):
        where = parsed.path("alerts", n)
        warnings.extend(definition_warnings(definition, environ, where))
        alert, old_name = _match(stored_alerts, by_key, definition)
        for index, name in enumerate(definition.mute_during or []):
            if name not in window_names:
                raise InputError(
                    f"no maintenance window named {name!r}",
                    field=field_path(where, "mute_during", index),
                )
        if alert is None:
            _restore(definition, None, where)
            changes.append(Change("alert", definition.name, "create"))
            if apply:
                create_alert(session, definition, clock)
            continue
        if alert.name in matched:
            raise InputError(
                f"is stored alert {alert.name!r}, which another alert of the file already is "
                "(by key, name or renamed_from)",
                field=where,
            )
        matched.add(alert.name)
        resolved = _restore(definition, alert.recipients, where)
        current = definition_of(alert)
        wanted = {
            k: v
            for k, v in resolved.stored_fields().items()
            if k != "muted_until" or k in definition.explicit
        }
        diff = field_changes(
            {k: current.get(k) for k in wanted},
            wanted,
            secret=_secret_alert_field,
            mask=_mask_alert_field,
        )
        changes.append(
            Change(
                "alert",
                definition.name,
                "update" if diff else "unchanged",
                diff,
                renamed_from=old_name,
            )
        )
        if apply and diff:
            apply_definition(session, alert, definition, clock)
    if apply:
        session.flush()

    unmatched = sorted(name for name in stored_alerts if name not in matched)
    if prune:
        for name in unmatched:
            changes.append(Change("alert", name, "delete"))
            if apply:
                delete_alert(session, stored_alerts[name], keep_history=True, now=clock.now())
        if apply:
            session.flush()
        for kind in reversed(KIND_ORDER):
            wanted_ids = {spec.id for spec in by_kind[kind]}
            for entity_id, row in sorted(stored_rows[kind].items()):
                if entity_id in wanted_ids:
                    continue
                changes.append(Change(kind, entity_id, "delete"))
                if apply:
                    session.delete(row)
            if apply:
                session.flush()
    else:
        not_in_file += [Kept("alert", name) for name in unmatched]
        for kind in KIND_ORDER:
            wanted_ids = {spec.id for spec in by_kind[kind]}
            not_in_file += [Kept(kind, i) for i in sorted(stored_rows[kind]) if i not in wanted_ids]
    if prune:
        pruned = sync_windows(
            session, parsed.maintenance_windows, clock.now(), prune=True, apply=apply
        )
        changes.extend(
            Change("maintenance_window", name, action)
            for name, action in pruned
            if action == "delete"
        )
    _check_remaining_references(session, matched | {d.name for d in parsed.alerts}, parsed, prune)
    return SyncPlan(changes=changes, warnings=warnings, applied=apply, not_in_file=not_in_file)


def _match(
    stored: dict[str, Alert], by_key: dict[str, Alert], definition: AlertDefinition
) -> tuple[Alert | None, str | None]:
    """The stored alert a file alert is: by `key`, else by name, else by its first stored
    `renamed_from` name; and the stored name when that differs (a rename)."""
    alert = by_key.get(definition.key) if definition.key is not None else None
    if alert is None:
        alert = stored.get(definition.name)
    if alert is None:
        alert = next((stored[old] for old in definition.renamed_from if old in stored), None)
    if alert is None:
        return None, None
    return alert, (alert.name if alert.name != definition.name else None)


def _restore(
    definition: AlertDefinition, stored: dict[str, Any] | None, where: str
) -> AlertDefinition:
    try:
        return restore_redacted_recipients(definition, stored)
    except InputError as exc:
        raise exc.under(where) from None


def _check_remaining_references(
    session: Session, names_in_file: set[str], parsed: ParsedFile, prune: bool
) -> None:
    """Without --prune, stored alerts not in the file must still name existing entities."""
    if prune:
        return
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
    from datamantri_alerts.services.maintenance import export_windows

    windows = export_windows(session)
    if windows:
        doc["maintenance_windows"] = windows
    doc["alerts"] = [
        alert_for_export(a, show_secrets=show_secrets)
        for a in session.scalars(select(Alert).order_by(Alert.id))
    ]
    return doc
