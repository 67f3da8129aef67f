"""Alert management: create, list, show, edit, enable, disable, delete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import (
    JSON_OPTION,
    parse_config_pairs,
    parse_scalar,
    recipients_from_flags,
)
from datamantri_alerts.errors import InputError


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


REF_ARG = typer.Argument(..., help="The alert's numeric id or exact name.", show_default=False)


def create(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Unique alert name."),
    description: str | None = typer.Option(None, "--description", help="What it watches."),
    condition_type: str | None = typer.Option(None, "--type", help="Alert type."),
    config: list[str] | None = typer.Option(
        None, "--config", help="Type config as KEY=VALUE; repeat for each key."
    ),
    channel: list[str] | None = typer.Option(
        None, "--channel", help="email, slack, teams or whatsapp; repeat for several."
    ),
    email: list[str] | None = typer.Option(None, "--email", help="Email recipient (repeat)."),
    slack: str | None = typer.Option(None, "--slack", help="Slack webhook URL or ${VAR}."),
    teams: str | None = typer.Option(None, "--teams", help="Teams Workflows webhook or ${VAR}."),
    whatsapp: list[str] | None = typer.Option(
        None, "--whatsapp", help="WhatsApp number in E.164, e.g. +14155550100 (repeat)."
    ),
    severity: str | None = typer.Option(None, "--severity", help="info, warning or critical."),
    repeat_interval: int | None = typer.Option(
        None, "--repeat-interval", help="Minutes between REPEAT notifications (0: once)."
    ),
    pending_evaluations: int | None = typer.Option(
        None, "--pending-evaluations", help="Evaluations in a row before it fires."
    ),
    notify_on_resolve: bool = typer.Option(
        True, "--notify-on-resolve/--no-notify-on-resolve", help="Send RESOLVED messages."
    ),
    inactive: bool = typer.Option(False, "--inactive", help="Create it switched off."),
    from_file: Path | None = typer.Option(
        None, "--from-file", help="A YAML or JSON file holding one alert."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an alert from flags, from --from-file, or interactively on a terminal."""
    from datamantri_alerts.schema import load_document, validate_alert
    from datamantri_alerts.services.alerts import alert_as_json, create_alert

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
        }
        document = {k: v for k, v in document.items() if v is not None}
        if (not name or not condition_type) and stdin_is_terminal():
            document = _prompt_for_alert(document)
    definition = validate_alert(document)
    for warning in definition.warnings:
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
    condition_type: str | None = typer.Option(None, "--type", help="Only this alert type."),
    active: bool | None = typer.Option(
        None, "--active/--inactive", help="Only active (or inactive) alerts.", show_default=False
    ),
    state: str | None = typer.Option(None, "--state", help="ok, pending, firing or error."),
    channel: str | None = typer.Option(None, "--channel", help="Only alerts using this channel."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List alerts."""
    from datamantri_alerts.services.alerts import AlertFilter, alert_as_json, list_alert_rows
    from datamantri_alerts.services.alerts import list_alerts as query_alerts

    app = app_context(ctx)
    filters = AlertFilter(search, condition_type, active, state, channel)
    with app.store.session() as session:
        if as_json:
            print_json([alert_as_json(a) for a in query_alerts(session, filters)])
            return
        alerts = list_alert_rows(session, filters)
        rows = [
            (
                str(a.id),
                a.name,
                a.description,
                a.condition_type,
                ", ".join(a.channels or []) or "-",
                "active" if a.is_active else "inactive",
                a.state,
                fmt_time(a.last_triggered_at),
                str(a.trigger_count),
            )
            for a in alerts
        ]
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("ID", align="right"),
        Column("Alert", flexible=True),
        Column("Type"),
        Column("Channels"),
        Column("Status"),
        Column("State"),
        Column("Last triggered"),
        Column("Triggers", align="right"),
    ]
    state_style = {"firing": "red", "error": "magenta", "pending": "yellow", "ok": "green"}
    table_rows = []
    styles = []
    for id_, name, desc, ctype, chans, status, st, last, count in rows:
        label = f"{name} — {desc}" if desc else name
        table_rows.append((id_, label, ctype, chans, status, st, last, count))
        styles.append(
            (
                None,
                None,
                None,
                None,
                None if status == "active" else "dim",
                state_style.get(st),
                None,
                None,
            )
        )
    title = f"{len(rows)} alert{'s' if len(rows) != 1 else ''}"
    typer.echo(render_table(columns, table_rows, styles=styles, title=title), nl=False)


def show(ctx: typer.Context, ref: str = REF_ARG, as_json: bool = JSON_OPTION) -> None:
    """Show every field of one alert (secrets masked)."""
    from datamantri_alerts.services.alerts import alert_as_json, get_alert

    app = app_context(ctx)
    with app.store.session() as session:
        data = alert_as_json(get_alert(session, ref))
    if as_json:
        print_json(data)
        return
    import json

    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(key, "-" if value is None or value == "" else str(value))
    app.console.print(table, markup=False)


def edit(
    ctx: typer.Context,
    ref: str = REF_ARG,
    name: str | None = typer.Option(None, "--name", help="Rename."),
    description: str | None = typer.Option(None, "--description"),
    condition_type: str | None = typer.Option(None, "--type"),
    config: list[str] | None = typer.Option(None, "--config", help="Set KEY=VALUE (repeat)."),
    unset_config: list[str] | None = typer.Option(None, "--unset-config", help="Remove KEY."),
    channel: list[str] | None = typer.Option(None, "--channel", help="Replace the channels."),
    email: list[str] | None = typer.Option(None, "--email", help="Replace email recipients."),
    slack: str | None = typer.Option(None, "--slack"),
    teams: str | None = typer.Option(None, "--teams"),
    whatsapp: list[str] | None = typer.Option(None, "--whatsapp"),
    severity: str | None = typer.Option(None, "--severity"),
    repeat_interval: int | None = typer.Option(None, "--repeat-interval"),
    pending_evaluations: int | None = typer.Option(None, "--pending-evaluations"),
    notify_on_resolve: bool | None = typer.Option(
        None, "--notify-on-resolve/--no-notify-on-resolve", show_default=False
    ),
) -> None:
    """Change fields by flags; with no flags, edit the alert as YAML in $EDITOR."""
    from datamantri_alerts.services.alerts import get_alert, update_alert

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

    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        if not changes and not config_changes and not unset_config:
            changes = _edit_in_editor(alert)
        else:
            merged_config = {**alert.condition_config, **config_changes}
            if condition_type and condition_type != alert.condition_type and not config:
                raise InputError("changing --type needs its --config too", field="--type")
            for key in unset_config or []:
                merged_config.pop(key, None)
            changes["condition_config"] = merged_config
            if recipients:
                changes["recipients"] = {**alert.recipients, **recipients}
        definition = update_alert(session, alert, changes, app.clock)
        alert_id = alert.id
    for warning in definition.warnings:
        app.warn(warning)
    app.console.print(f"updated alert {alert_id}: {definition.name}")


def _edit_in_editor(alert: Any) -> dict[str, Any]:
    import yaml

    from datamantri_alerts.schema import load_document
    from datamantri_alerts.services.alerts import alert_for_export

    current = alert_for_export(alert, show_secrets=False)
    header = "# Edit the alert and save. <redacted> keeps a stored secret; an empty file cancels.\n"
    text = header + yaml.safe_dump(current, sort_keys=False, allow_unicode=True)
    edited = _run_editor(text)
    if edited is None or not edited.strip() or edited == text:
        raise InputError("no changes made", field="edit")
    document = load_document(Path("alert.yaml"), text=edited)
    if not isinstance(document, dict):
        raise InputError("the edited text must be a mapping of alert fields", field="edit")
    document.setdefault("recipients", {})
    return document


def _run_editor(text: str) -> str | None:
    """Open $VISUAL/$EDITOR on text in a private temporary file; returns the saved text."""
    import os
    import shlex
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(prefix="alert-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        result = subprocess.run([*shlex.split(editor), path], check=False)
        if result.returncode != 0:
            raise InputError(f"editor {editor!r} exited with {result.returncode}", field="edit")
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    finally:
        os.unlink(path)


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
