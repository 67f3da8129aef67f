"""Why an alert's notifications are held back right now: the one place every notification
decision asks (mute, maintenance window, silence, flapping, in that order).

A notification held back is recorded as suppressed with this reason. When nothing holds the
alert any more, `services.mute.release_after_mute` sends what the user is still owed, the same
way for the end of a mute, a window or a silence; `held_alert_ids` tells it which alerts are
still held by something other than the mute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamantri_alerts.services.signal.silences import active_silences, describe, silence_for
from datamantri_alerts.services.signal.windows import Window, active_windows
from datamantri_alerts.store.models import Alert, MaintenanceWindow, Silence

#: Every maintenance window, by name: built once (the result writer loads them per batch).
_WINDOWS = select(MaintenanceWindow).order_by(MaintenanceWindow.name)


@dataclass
class Signals:
    """Windows and silences in force, loaded once per batch of alerts."""

    windows: list[Window] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)

    @classmethod
    def load(cls, session: Session, now: datetime) -> Signals:
        rows = session.scalars(_WINDOWS)
        return cls(
            windows=[Window.of(row.name, row.definition) for row in rows],
            silences=active_silences(session, now),
        )


def outside_reason(alert: Any, now: datetime, signals: Signals) -> str | None:
    """The window or silence holding `alert` at `now` (not the mute or flapping), or None."""
    names = active_windows(signals.windows, alert.mute_during or [], now)
    if names:
        return f"maintenance window {names[0]}"
    silence = silence_for(signals.silences, _labels(alert.labels))
    if silence is not None:
        return describe(silence)
    return None


def hold_reason(
    alert: Any, now: datetime, signals: Signals, flapping: str | None = None
) -> str | None:
    """Why `alert`'s notifications at `now` are suppressed, or None to send them.

    `flapping` is the flap notice when the alert is flapping (`services.signal.flapping`).
    """
    if alert.muted_until is not None and alert.muted_until > now:
        return f"muted until {alert.muted_until.isoformat()}" + (
            f": {alert.mute_reason}" if alert.mute_reason else ""
        )
    return outside_reason(alert, now, signals) or flapping


def held_alert_ids(session: Session, now: datetime) -> set[int]:
    """Alerts a window, a silence or flapping still holds at `now` (the mute is checked by
    the release itself)."""
    signals = Signals.load(session, now)
    held = set(session.scalars(select(Alert.id).where(Alert.flapping.is_(True))))
    if not signals.windows and not signals.silences:
        return held
    rows = session.execute(select(Alert.id, Alert.labels, Alert.mute_during)).all()
    for row in rows:
        if outside_reason(row, now, signals) is not None:
            held.add(row.id)
    return held


def _labels(raw: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}
