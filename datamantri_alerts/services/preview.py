"""`alerts render`: what an alert's notification would say, built as a send builds it.

The Message is made the way the evaluator makes it (`services.outbox.message_payload`) from
the alert's last evaluation (summary and details; a placeholder when it was never
evaluated), and each channel's `preview` runs the same templates and payload code as its
`send`. Nothing is sent and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamantri_alerts.clock import Clock
from datamantri_alerts.errors import InputError
from datamantri_alerts.store.models import Alert

#: `--event` values and the outbox kind each one is.
EVENTS = ("firing", "repeat", "resolved")
NEVER_EVALUATED = "(this alert has not been evaluated yet: the summary of its last check goes here)"


@dataclass(frozen=True)
class Preview:
    channel: str
    #: Recipients as they may be shown (webhook URLs masked).
    recipients: list[str]
    content: dict[str, Any]
    #: Set when the channel's settings are incomplete here (rendered with their defaults).
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "recipients": self.recipients,
            "content": self.content,
            "note": self.note,
        }


def preview_message(alert: Alert, event: str, clock: Clock, host: str) -> Any:
    """The channel Message the evaluator would queue for this event of alert."""
    from datamantri_alerts.channels.base import Message
    from datamantri_alerts.services.outbox import message_payload

    if event not in EVENTS:
        raise InputError(f"{event!r} is not one of: {', '.join(EVENTS)}", field="--event")
    now = clock.now()
    payload = message_payload(
        alert=alert,
        kind=event,
        at=now,
        summary=alert.last_summary or NEVER_EVALUATED,
        details=dict(alert.last_details or {}),
        severity=alert.severity,
        host=host,
        episode_id=alert.current_episode_id or 0,
        triggered_at=alert.last_triggered_at or now,
    )
    return Message.model_validate(payload)


def render_previews(
    alert: Alert,
    message: Any,
    *,
    channel: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Preview]:
    """One Preview per channel of the alert (or only `channel`, which must be one of them)."""
    from datamantri_alerts.channels import NotConfiguredError, get_channel
    from datamantri_alerts.channels.retry import display_recipient
    from datamantri_alerts.services.outbox import fan_out

    env = os.environ if environ is None else environ
    channels = list(alert.channels or [])
    if channel is not None and channel not in channels:
        raise InputError(
            f"alert {alert.name!r} does not use channel {channel!r} "
            f"(it uses: {', '.join(channels) or 'none'})",
            field="--channel",
        )
    if not channels:
        raise InputError(f"alert {alert.name!r} has no channels to render")
    previews = []
    for name in channels:
        if channel is not None and name != channel:
            continue
        chan = get_channel(name)
        note = None
        try:
            config = chan.config_model.from_env(env)
        except NotConfiguredError as exc:
            note = f"{exc.reason}; rendered with the default settings"
            config = chan.config_model.model_construct(
                templates_dir=env.get("ALERTS_TEMPLATES_DIR") or None
            )
        recipients = [
            display_recipient(chan, recipient)
            for chan_name, recipient in fan_out([name], alert.recipients or {})
            if chan_name == name and recipient
        ]
        previews.append(Preview(name, recipients, chan.preview(message, config), note))
    return previews
