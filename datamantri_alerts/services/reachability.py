"""Can an alert ever notify anyone? One rule for `validate`, `create`, `edit`, `sync`, `status`.

An alert is valid without a reachable recipient (a team may add one later), so these are
warnings, not errors. Variables are looked up by *name* in the environment; no value is read
into a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datamantri_alerts.fieldpath import field_path

if TYPE_CHECKING:
    from datamantri_alerts.schema import AlertDefinition

_ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class NotifyWarning:
    """Why an alert (or one of its channels) cannot notify; `field` is a `fieldpath` path."""

    field: str
    message: str

    def line(self, *prefix: str | int | None) -> str:
        """`prefix.field: message`, the form every command prints."""
        path = field_path(*prefix, self.field)
        return f"{path}: {self.message}" if path else self.message


def notify_warnings(
    channels: Sequence[str],
    recipients: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> list[NotifyWarning]:
    """Warnings for an alert's channels and recipients (as validated or stored).

    - no channel at all;
    - a selected channel without recipients whose environment fallback (SLACK_WEBHOOK_URL,
      TEAMS_WEBHOOK_URL) is not set;
    - recipients given for a channel that is not selected (they are never used);
    - a `${VAR}` in a recipient of a selected channel that is not set in this environment.
    """
    from datamantri_alerts.channels import channel_names, get_channel

    env = os.environ if environ is None else environ
    found: list[NotifyWarning] = []
    if not channels:
        found.append(
            NotifyWarning("channels", "no channel is selected: this alert can never notify")
        )
    for name in channels:
        value = recipients.get(name)
        if value:
            continue
        fallback = get_channel(name).fallback_env if name in channel_names() else None
        if fallback and not env.get(fallback, "").strip():
            found.append(
                NotifyWarning(
                    field_path("recipients", name),
                    f"channel {name} has no recipients and {fallback} is not set",
                )
            )
    for name, value in recipients.items():
        if name not in channels and value:
            found.append(
                NotifyWarning(
                    field_path("recipients", name),
                    f"recipients given but channel {name} is not selected (add it to channels)",
                )
            )
    for name in channels:
        value = recipients.get(name)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if not isinstance(item, str):
                continue
            for var in dict.fromkeys(_ENV_NAME.findall(item)):
                if var not in env:
                    where = (
                        field_path("recipients", name, index)
                        if isinstance(value, list)
                        else field_path("recipients", name)
                    )
                    found.append(NotifyWarning(where, f"${{{var}}} is not set in this environment"))
    return found


def recipient_warnings(recipients: Mapping[str, Any]) -> list[NotifyWarning]:
    """The channels' own warnings about validated recipients (e.g. a retired Teams connector
    URL), each under its field (`recipients.teams`)."""
    from datamantri_alerts.channels import channel_names, get_channel

    known = set(channel_names())
    return [
        NotifyWarning(field_path("recipients", name), text)
        for name, value in recipients.items()
        if name in known and value
        for text in get_channel(name).recipient_warnings(value)
    ]


def alert_warnings(
    definition: AlertDefinition, environ: Mapping[str, str] | None = None
) -> list[NotifyWarning]:
    """Every warning about a validated alert: its recipients' (`recipient_warnings`), then why
    it could never notify (`notify_warnings`)."""
    return recipient_warnings(definition.recipients) + notify_warnings(
        definition.channels, definition.recipients, environ
    )


def definition_warnings(
    definition: AlertDefinition, environ: Mapping[str, str] | None = None, where: str = ""
) -> list[str]:
    """`alert_warnings` as printed lines, `field: message`; under `where` (`alerts[3]`, giving
    `alerts[3].recipients.teams: ...`) when the alert is an item of a file."""
    return [w.line(where) for w in alert_warnings(definition, environ)]
