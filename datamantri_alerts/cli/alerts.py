"""Alert management: create, list, show, edit, enable, disable, delete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from datamantri_alerts.cli.completion import (
    complete_channel,
    complete_state,
    complete_type,
)
from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import (
    ALERT_STATES,
    CHANNEL_NAMES,
    JSON_OPTION,
    PENDING_EVALUATIONS_OPTION,
    REF_ARG,
    REPEAT_INTERVAL_OPTION,
    SEVERITY_OPTION,
    SLACK_OPTION,
    TEAMS_OPTION,
    parse_config_pairs,
    parse_scalar,
    recipients_from_flags,
    require_choice,
)
from datamantri_alerts.errors import InputError


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


TYPE_HELP = "Alert type: {types} (`alerts types` lists their config keys)."


def create(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Unique alert name."),
    description: str | None = typer.Option(None, "--description", help="What it watches."),
    condition_type: str | None = typer.Option(
        None, "--type", metavar="TYPE", help=TYPE_HELP, autocompletion=complete_type
    ),
    config: list[str] | None = typer.Option(
        None, "--config", metavar="KEY=VALUE", help="Type config as KEY=VALUE; repeat for each key."
    ),
    channel: list[str] | None = typer.Option(
        None,
        "--channel",
        metavar="CHANNEL",
        help=f"{CHANNEL_NAMES}; repeat for several.",
        autocompletion=complete_channel,
    ),
    email: list[str] | None = typer.Option(
        None, "--email", metavar="ADDRESS", help="Email recipient (repeat)."
    ),
    slack: str | None = SLACK_OPTION,
    teams: str | None = TEAMS_OPTION,
    whatsapp: list[str] | None = typer.Option(
        None,
        "--whatsapp",
        metavar="NUMBER",
        help="WhatsApp number in E.164, e.g. +14155550100 (repeat).",
    ),
    severity: str | None = SEVERITY_OPTION,
    repeat_interval: int | None = REPEAT_INTERVAL_OPTION,
    pending_evaluations: int | None = PENDING_EVALUATIONS_OPTION,
    notify_on_resolve: bool = typer.Option(
        True, "--notify-on-resolve/--no-notify-on-resolve", help="Send RESOLVED messages."
    ),
    inactive: bool = typer.Option(False, "--inactive", help="Create it switched off."),
    label: list[str] | None = typer.Option(
        None, "--label", help="A label KEY=VALUE (e.g. team=data); repeat for several."
    ),
    from_file: Path | None = typer.Option(
        None, "--from-file", metavar="FILE", help="A YAML or JSON file holding one alert."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an alert from flags, from --from-file, or interactively on a terminal."""
    from datamantri_alerts.documents import load_document
    from datamantri_alerts.schema import validate_alert
    from datamantri_alerts.services.alerts import alert_as_json, create_alert
    from datamantri_alerts.services.reachability import definition_warnings
    from datamantri_alerts.services.signal.silences import parse_label_pairs

    app = app_context(ctx)
    if from_file is not None:
        document = load_document(from_file)
        if isinstance(document, dict) and "alerts" in document and "name" not in document:
            raise InputError("holds a whole alerts file; use `alerts sync`", field="--from-file")
    else:
        document = {
            "name": name,
            "description": description,
            "condition_type": condition_type,
            "condition_config": parse_config_pairs(config),
            "channels": channel or [],
            "recipients": recipients_from_flags(email, slack, teams, whatsapp),
            "is_active": not inactive,
            "severity": severity,
            "repeat_interval_minutes": repeat_interval,
            "pending_evaluations": pending_evaluations,
            "notify_on_resolve": notify_on_resolve,
            "labels": parse_label_pairs(label) or None,
        }
        document = {k: v for k, v in document.items() if v is not None}
        if (not name or not condition_type) and stdin_is_terminal():
            document = _prompt_for_alert(document)
    definition = validate_alert(document)
    for warning in definition_warnings(definition):
        app.warn(warning)
    with app.store.transaction() as session:
        alert = create_alert(session, definition, app.clock)
        result = alert_as_json(alert)
    if as_json:
        print_json(result)
    else:
        app.console.print(f"created alert {result['id']}: {result['name']}")


def _prompt_for_alert(document: dict[str, Any]) -> dict[str, Any]:
    """Ask for what the flags did not give, one field at a time."""
    from datamantri_alerts.channels import channel_names
    from datamantri_alerts.checks import check_types, get_check

    doc = dict(document)
    doc["name"] = doc.get("name") or typer.prompt("Alert name")
    if "description" not in doc:
        doc["description"] = typer.prompt("Description", default="", show_default=False)
    types = check_types()
    while doc.get("condition_type") not in types:
        doc["condition_type"] = typer.prompt(f"Type ({', '.join(types)})")
    model = get_check(doc["condition_type"]).config_model
    config = dict(doc.get("condition_config") or {})
    fields = sorted(model.model_fields.items(), key=lambda item: not item[1].is_required())
    for field_name, info in fields:
        if field_name in config:
            continue
        if info.is_required():
            config[field_name] = parse_scalar(typer.prompt(field_name))
        else:
            answer = typer.prompt(
                f"{field_name} (blank for {info.default!r})", default="", show_default=False
            )
            if answer.strip():
                config[field_name] = parse_scalar(answer)
    doc["condition_config"] = config
    if not doc.get("channels"):
        answer = typer.prompt(f"Channels, comma separated ({', '.join(channel_names())})")
        doc["channels"] = [c.strip() for c in answer.split(",") if c.strip()]
    recipients = dict(doc.get("recipients") or {})
    for ch in doc["channels"]:
        if ch in recipients:
            continue
        label = {
            "email": "Email addresses, comma separated",
            "slack": "Slack webhook URL (blank: $SLACK_WEBHOOK_URL)",
            "teams": "Teams webhook URL (blank: $TEAMS_WEBHOOK_URL)",
            "whatsapp": "WhatsApp numbers in E.164, comma separated",
        }.get(ch, f"{ch} recipients")
        answer = typer.prompt(label, default="", show_default=False).strip()
        if answer:
            recipients[ch] = answer.split(",") if ch in ("email", "whatsapp") else answer
    doc["recipients"] = recipients
    return doc


def list_alerts(
    ctx: typer.Context,
    search: str | None = typer.Option(None, "--search", help="Text in name or description."),
    condition_type: str | None = typer.Option(
        None,
        "--type",
        metavar="TYPE",
        help="Only this alert type: {types}.",
        autocompletion=complete_type,
    ),
    active: bool | None = typer.Option(
        None, "--active/--inactive", help="Only active (or inactive) alerts.", show_default=False
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        metavar="STATE",
        help=f"Only alerts in this state: {', '.join(ALERT_STATES)}.",
        autocompletion=complete_state,
    ),
    channel: str | None = typer.Option(
        None,
        "--channel",
        metavar="CHANNEL",
        help="Only alerts using this channel (e.g. email, slack, webhook, pagerduty, apprise).",
        autocompletion=complete_channel,
    ),
    muted: bool = typer.Option(False, "--muted", help="Only alerts muted now."),
    label: list[str] | None = typer.Option(
        None, "--label", help="Only alerts whose labels match NAME=VALUE (also != =~ !~); repeat."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List alerts (fitted to the terminal width: fewer columns and the description on its
    own line when narrow)."""
    from datamantri_alerts.services.alerts import AlertFilter, list_alert_rows
    from datamantri_alerts.services.alerts import list_alerts as query_alerts
    from datamantri_alerts.services.signal.ack import open_acknowledgements
    from datamantri_alerts.services.signal.silences import parse_matcher

    app = app_context(ctx)
    require_choice(state, ALERT_STATES, "--state")
    if condition_type is not None:
        from datamantri_alerts.checks import check_types

        require_choice(condition_type, check_types(), "--type")
    if channel is not None:
        from datamantri_alerts.channels import channel_names

        require_choice(channel, channel_names(), "--channel")
    now = app.clock.now()
    matchers = [parse_matcher(text, "--label") for text in label or []]
    filters = AlertFilter(
        search, condition_type, active, state, channel, now if muted else None, labels=matchers
    )
    with app.store.session() as session:
        if as_json:
            found = query_alerts(session, filters)
            acks = open_acknowledgements(session, [a.id for a in found], now)
            print_json([_as_json(a, now, acks.get(a.id)) for a in found])
            return
        alerts = list_alert_rows(session, filters)
        acked = set(open_acknowledgements(session, [a.id for a in alerts], now))
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("ID", align="right"),
        Column("Alert", flexible=True),
        Column("Type", drop=2),
        Column("Channels", drop=3),
        Column("Status"),
        Column("State"),
        Column("Last triggered", drop=5),
        Column("Triggers", align="right", drop=4),
        Column("Description", detail=True, drop=6),
    ]
    state_style = {"firing": "red", "error": "magenta", "pending": "yellow", "ok": "green"}
    table_rows = []
    styles = []
    for a in alerts:
        status = active_status(a.is_active, a.muted_until, now)
        table_rows.append(
            (
                str(a.id),
                a.name,
                a.condition_type,
                ", ".join(a.channels or []) or "-",
                status,
                f"{a.state} (acked)" if a.id in acked else a.state,
                fmt_time(a.last_triggered_at),
                str(a.trigger_count),
                a.description or "",
            )
        )
        status_style = None if status == "active" else ("yellow" if a.is_active else "dim")
        styles.append(
            (None, None, None, None, status_style, state_style.get(a.state), None, None, None)
        )
    title = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    typer.echo(render_table(columns, table_rows, styles=styles, title=title), nl=False)


def _as_json(alert: Any, now: Any, acked: Any = None) -> dict[str, Any]:
    """`alert_as_json` plus `muted`: whether it is muted at this moment, and `acknowledged`:
    the open episode's acknowledgement in force now (None when there is none)."""
    from datamantri_alerts.services.alerts import alert_as_json
    from datamantri_alerts.services.signal.ack import ack_as_json

    muted = alert.muted_until is not None and alert.muted_until > now
    acknowledged = ack_as_json(acked, now) if acked is not None else None
    return {**alert_as_json(alert), "muted": muted, "acknowledged": acknowledged}


def active_status(is_active: bool, muted_until: Any, now: Any) -> str:
    """`active`, `inactive`, or `muted until <time>` for an active alert muted now."""
    if not is_active:
        return "inactive"
    if muted_until is not None and muted_until > now:
        return f"muted until {fmt_time(muted_until)}"
    return "active"


def show(ctx: typer.Context, ref: str = REF_ARG, as_json: bool = JSON_OPTION) -> None:
    """Show every field of one alert (secrets masked; a mute with its end and reason)."""
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.signal.ack import describe, open_acknowledgements

    app = app_context(ctx)
    now = app.clock.now()
    with app.store.session() as session:
        alert = get_alert(session, ref)
        acked = open_acknowledgements(session, [alert.id], now).get(alert.id)
        data = _as_json(alert, now, acked)
        status = active_status(alert.is_active, alert.muted_until, now)
        if acked is not None:
            status += f"; episode {acked.id} {describe(acked)}"
    if as_json:
        print_json(data)
        return
    del data["muted"]
    del data["acknowledged"]
    data = {"status": status, **data}
    print_fields(app, data)


def print_fields(app: Any, data: dict[str, Any]) -> None:
    """key/value lines: values are data, long ones wrapped at spaces under the key column."""
    import json

    from datamantri_alerts.cli.table import terminal_width, wrap_words
    from datamantri_alerts.escaping import terminal

    key_width = max((len(key) for key in data), default=0) + 2
    room = max(terminal_width() - key_width, 20)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        text = "-" if value is None or value == "" else terminal(str(value))
        parts = wrap_words(" ".join(text.split("\n")), room)
        lines.append(key.ljust(key_width) + parts[0])
        lines.extend(" " * key_width + part for part in parts[1:])
    typer.echo("\n".join(lines))


def edit(
    ctx: typer.Context,
    ref: str = REF_ARG,
    name: str | None = typer.Option(None, "--name", help="Rename."),
    description: str | None = typer.Option(None, "--description", help="New description."),
    condition_type: str | None = typer.Option(
        None,
        "--type",
        metavar="TYPE",
        help="New type (give its --config too): {types}.",
        autocompletion=complete_type,
    ),
    config: list[str] | None = typer.Option(
        None, "--config", metavar="KEY=VALUE", help="Set KEY=VALUE (repeat)."
    ),
    unset_config: list[str] | None = typer.Option(
        None, "--unset-config", metavar="KEY", help="Remove KEY (repeat)."
    ),
    channel: list[str] | None = typer.Option(
        None,
        "--channel",
        metavar="CHANNEL",
        help=f"Replace the channels (repeat): {CHANNEL_NAMES}.",
        autocompletion=complete_channel,
    ),
    email: list[str] | None = typer.Option(
        None, "--email", metavar="ADDRESS", help="Replace email recipients (repeat)."
    ),
    slack: str | None = SLACK_OPTION,
    teams: str | None = TEAMS_OPTION,
    whatsapp: list[str] | None = typer.Option(
        None, "--whatsapp", metavar="NUMBER", help="Replace WhatsApp numbers (E.164, repeat)."
    ),
    severity: str | None = SEVERITY_OPTION,
    repeat_interval: int | None = REPEAT_INTERVAL_OPTION,
    pending_evaluations: int | None = PENDING_EVALUATIONS_OPTION,
    notify_on_resolve: bool | None = typer.Option(
        None,
        "--notify-on-resolve/--no-notify-on-resolve",
        show_default=False,
        help="Send (or do not send) RESOLVED messages.",
    ),
    label: list[str] | None = typer.Option(None, "--label", help="Set label KEY=VALUE (repeat)."),
    unset_label: list[str] | None = typer.Option(None, "--unset-label", help="Remove label KEY."),
) -> None:
    """Change fields by flags; with no flags, edit the alert as YAML in $EDITOR.

    In the editor, an invalid save reopens it with the errors at the top; nothing is locked
    while it is open, and a save after someone else changed the alert is refused (the edit
    is kept in a file)."""
    from datamantri_alerts.services.alerts import get_alert, update_alert
    from datamantri_alerts.services.reachability import definition_warnings
    from datamantri_alerts.services.signal.silences import parse_label_pairs

    app = app_context(ctx)
    changes: dict[str, Any] = {
        "name": name,
        "description": description,
        "condition_type": condition_type,
        "channels": channel,
        "severity": severity,
        "repeat_interval_minutes": repeat_interval,
        "pending_evaluations": pending_evaluations,
        "notify_on_resolve": notify_on_resolve,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    recipients = recipients_from_flags(email, slack, teams, whatsapp)
    config_changes = parse_config_pairs(config)
    label_changes = parse_label_pairs(label)
    if (
        not changes
        and not config_changes
        and not unset_config
        and not recipients
        and not label_changes
        and not unset_label
    ):
        _edit_alert_in_editor(app, ref)
        return
    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        merged_config = {**alert.condition_config, **config_changes}
        if condition_type and condition_type != alert.condition_type and not config:
            raise InputError("changing --type needs its --config too", field="--type")
        for key in unset_config or []:
            merged_config.pop(key, None)
        changes["condition_config"] = merged_config
        if recipients:
            changes["recipients"] = {**alert.recipients, **recipients}
        if label_changes or unset_label:
            labels = {**(alert.labels or {}), **label_changes}
            for key in unset_label or []:
                labels.pop(key, None)
            changes["labels"] = labels or None
        definition = update_alert(session, alert, changes, app.clock)
        alert_id = alert.id
    for warning in definition_warnings(definition):
        app.warn(warning)
    app.console.print(f"updated alert {alert_id}: {definition.name}")


def _edit_alert_in_editor(app: Any, ref: str) -> None:
    from datamantri_alerts.cli.editing import edit_in_editor
    from datamantri_alerts.services.edits import read_alert, save_alert_edit

    with app.store.session() as session:
        document, seen = read_alert(session, ref)

    def save(text: str) -> Any:
        edited = parse_edited_mapping(text, "the alert's fields")
        with app.store.transaction() as session:
            return save_alert_edit(session, seen, edited, app.clock)

    definition = edit_in_editor(dump_yaml(document), save, what=f"alert {seen.key}")
    if definition is None:
        app.console.print(f"edit cancelled, alert {seen.key} unchanged")
        return
    from datamantri_alerts.services.reachability import definition_warnings

    for warning in definition_warnings(definition):
        app.warn(warning)
    app.console.print(f"updated alert {seen.key}: {definition.name}")


def dump_yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def parse_edited_mapping(text: str, what: str) -> dict[str, Any]:
    """The saved editor text as a mapping; InputError naming the problem otherwise."""
    from datamantri_alerts.documents import load_document

    document = load_document(Path("edit.yaml"), text=text)
    if not isinstance(document, dict):
        raise InputError(f"the edited text must be a mapping of {what}", field="edit")
    return document


def enable(ctx: typer.Context, ref: str = REF_ARG) -> None:
    """Switch an alert on."""
    _toggle(ctx, ref, True)


def disable(ctx: typer.Context, ref: str = REF_ARG) -> None:
    """Switch an alert off (it keeps its history)."""
    _toggle(ctx, ref, False)


def _toggle(ctx: typer.Context, ref: str, active: bool) -> None:
    from datamantri_alerts.services.alerts import get_alert, set_active

    app = app_context(ctx)
    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        changed = set_active(session, alert, active, app.clock)
        label = f"{alert.id}: {alert.name}"
    word = "enabled" if active else "disabled"
    app.console.print(f"{word} alert {label}" if changed else f"alert {label} was already {word}")


def delete(
    ctx: typer.Context,
    ref: str = REF_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    keep_history: bool = typer.Option(
        True, "--keep-history/--purge-history", help="Keep the alert's history rows."
    ),
) -> None:
    """Delete an alert (asks first unless --yes)."""
    from datamantri_alerts.services.alerts import delete_alert, get_alert

    app = app_context(ctx)
    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        label = f"{alert.id}: {alert.name}"
        if not yes:
            if not stdin_is_terminal():
                raise InputError("refusing to delete without --yes when not on a terminal")
            if not typer.confirm(f"Delete alert {label}?", default=False):
                raise typer.Exit(1)
        removed = delete_alert(session, alert, keep_history=keep_history, now=app.clock.now())
    extra = f", {removed} history rows removed" if not keep_history else ", history kept"
    app.console.print(f"deleted alert {label}{extra}")


COMMANDS = {
    "create": create,
    "list": list_alerts,
    "show": show,
    "edit": edit,
    "enable": enable,
    "disable": disable,
    "delete": delete,
}
