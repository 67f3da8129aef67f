"""Options and parsing shared by several commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from datamantri_alerts.errors import InputError

JSON_OPTION = typer.Option(False, "--json", help="Print JSON (stable keys) and nothing else.")


def _complete_alert_ref(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    from datamantri_alerts.cli.completion import complete_alert_ref

    return complete_alert_ref(ctx, args, incomplete)


def _complete_channel(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    from datamantri_alerts.cli.completion import complete_channel

    return complete_channel(ctx, args, incomplete)


REF_ARG = typer.Argument(
    ...,
    help="The alert's numeric id or exact name.",
    show_default=False,
    autocompletion=_complete_alert_ref,
)
#: The built-in channels, for help text (the registry is not imported on the help path).
CHANNEL_NAMES = "apprise, email, pagerduty, slack, teams, webhook or whatsapp"

#: `--channel` of commands that act on one of an alert's channels (`test`, `render`).
ONE_CHANNEL_OPTION = typer.Option(
    None,
    "--channel",
    metavar="CHANNEL",
    help="Only this channel of the alert (e.g. email, slack, webhook, pagerduty, apprise).",
    autocompletion=_complete_channel,
)
SLACK_OPTION = typer.Option(None, "--slack", metavar="URL", help="Slack webhook URL or ${VAR}.")
TEAMS_OPTION = typer.Option(
    None, "--teams", metavar="URL", help="Teams Workflows webhook URL or ${VAR}."
)
SEVERITY_OPTION = typer.Option(
    None, "--severity", metavar="SEVERITY", help="info, warning or critical."
)
REPEAT_INTERVAL_OPTION = typer.Option(
    None,
    "--repeat-interval",
    metavar="MINUTES",
    help="Minutes between REPEAT notifications (0: once).",
)
PENDING_EVALUATIONS_OPTION = typer.Option(
    None, "--pending-evaluations", metavar="N", help="Evaluations in a row before it fires."
)


def parse_scalar(text: str) -> Any:
    """A `--config` value: int, float, true/false/null, JSON list/object, else the text itself."""
    import json

    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            pass
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:  # not JSON (or digits Python will not convert): the text itself
            pass
        except RecursionError:
            raise InputError("the JSON value is nested too deeply", field="--config") from None
    return text


def parse_config_pairs(pairs: list[str] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected KEY=VALUE, got {pair!r}", field="--config")
        config[key.strip()] = parse_scalar(value)
    return config


def recipients_from_flags(
    email: list[str] | None,
    slack: str | None,
    teams: str | None,
    whatsapp: list[str] | None,
) -> dict[str, Any]:
    recipients: dict[str, Any] = {}
    if email:
        recipients["email"] = [e for item in email for e in item.split(",") if e.strip()]
    if slack:
        recipients["slack"] = slack
    if teams:
        recipients["teams"] = teams
    if whatsapp:
        recipients["whatsapp"] = [w for item in whatsapp for w in item.split(",") if w.strip()]
    return recipients


#: The states an alert can be in (`Alert.state`).
ALERT_STATES = ("ok", "pending", "firing", "error")


def require_choice(value: str | None, valid: Sequence[str], field: str) -> str | None:
    """value itself when it is one of valid (or None); else an InputError (exit 2) that
    names the field and lists the valid values."""
    if value is None or value in valid:
        return value
    raise InputError(f"{value!r} is not one of: {', '.join(valid)}", field=field)
