"""Maintenance windows in the store: add, remove, list, sync from the YAML file, export.

What a window means (when it is open) lives in `services.signal.windows`; this module keeps
the named definitions and checks that alerts name windows that exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.errors import InputError, NotFoundError
from datamantri_alerts.services.signal.windows import Window, WindowSpec
from datamantri_alerts.store.models import Alert, MaintenanceWindow


def check_window_names(session: Session, names: Iterable[str] | None, field: str) -> None:
    """InputError for the first name in `names` that is no stored window."""
    wanted = list(names or [])
    if not wanted:
        return
    known = set(session.scalars(select(MaintenanceWindow.name)))
    for index, name in enumerate(wanted):
        if name not in known:
            raise InputError(
                f"no maintenance window named {name!r} (see `alerts windows list`)",
                field=f"{field}[{index}]",
            )


def add_window(session: Session, spec: WindowSpec, now: datetime) -> MaintenanceWindow:
    """Create a window, or replace the definition of the one with that name."""
    row = session.scalars(
        select(MaintenanceWindow).where(MaintenanceWindow.name == spec.name)
    ).first()
    if row is None:
        row = MaintenanceWindow(
            name=spec.name, definition=spec.stored(), created_at=now, updated_at=now
        )
        session.add(row)
    elif row.definition != spec.stored():
        row.definition = spec.stored()
        row.updated_at = now
    session.flush()
    return row


def users_of(session: Session, name: str) -> list[str]:
    """Names of the alerts whose `mute_during` names the window."""
    rows = session.execute(select(Alert.name, Alert.mute_during).order_by(Alert.id)).all()
    return [row.name for row in rows if name in (row.mute_during or [])]


def remove_window(session: Session, name: str) -> None:
    """Delete a window no alert names; InputError naming the alerts otherwise."""
    row = session.scalars(select(MaintenanceWindow).where(MaintenanceWindow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no maintenance window named {name!r}", field="NAME")
    users = users_of(session, name)
    if users:
        raise InputError(
            f"alerts {', '.join(users)} use it in mute_during; change them first", field="NAME"
        )
    session.delete(row)
    session.flush()


@dataclass
class WindowListing:
    """One row of `alerts windows list`: `next_start` None while open, both None if never."""

    name: str
    definition: dict[str, Any]
    open_now: bool
    next_start: datetime | None
    next_end: datetime | None
    alerts: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "definition": self.definition,
            "open_now": self.open_now,
            "next_start": self.next_start.isoformat() if self.next_start else None,
            "next_end": self.next_end.isoformat() if self.next_end else None,
            "alerts": self.alerts,
        }


def list_windows(session: Session, now: datetime) -> list[WindowListing]:
    listings = []
    for row in session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.name)):
        window = Window.of(row.name, row.definition)
        start, end = window.next_change(now)
        listings.append(
            WindowListing(
                name=row.name,
                definition=dict(row.definition),
                open_now=window.contains(now),
                next_start=start,
                next_end=end,
                alerts=users_of(session, row.name),
            )
        )
    return listings


def sync_windows(
    session: Session, specs: Sequence[WindowSpec], now: datetime, *, prune: bool, apply: bool
) -> list[tuple[str, str]]:
    """(name, create|update|unchanged|delete) making the stored windows match `specs`."""
    stored = {row.name: row for row in session.scalars(select(MaintenanceWindow))}
    actions: list[tuple[str, str]] = []
    for spec in specs:
        row = stored.get(spec.name)
        action = (
            "create"
            if row is None
            else "unchanged"
            if row.definition == spec.stored()
            else "update"
        )
        actions.append((spec.name, action))
        if apply and action != "unchanged":
            add_window(session, spec, now)
    if prune:
        wanted = {spec.name for spec in specs}
        for name, row in sorted(stored.items()):
            if name not in wanted:
                actions.append((name, "delete"))
                if apply:
                    session.delete(row)
        if apply:
            session.flush()
    return actions


def export_windows(session: Session) -> list[dict[str, Any]]:
    """The stored windows as `maintenance_windows:` items `sync` accepts."""
    rows = session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.name))
    return [{"name": row.name, **row.definition} for row in rows]
