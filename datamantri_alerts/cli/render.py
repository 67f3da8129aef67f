"""`alerts render REF`: print what would be sent for an alert, without sending anything."""

from __future__ import annotations

import json

import typer

from datamantri_alerts.cli.context import app_context, print_json
from datamantri_alerts.cli.options import JSON_OPTION, ONE_CHANNEL_OPTION, REF_ARG


def _complete_event(ctx: object, args: list[str], incomplete: str) -> list[str]:
    return [e for e in ("firing", "repeat", "resolved") if e.startswith(incomplete)]


def render(
    ctx: typer.Context,
    ref: str = REF_ARG,
    channel: str | None = ONE_CHANNEL_OPTION,
    event: str = typer.Option(
        "firing",
        "--event",
        metavar="EVENT",
        help="Which notification: firing, repeat or resolved.",
        autocompletion=_complete_event,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the notification an alert would send (templates and payloads exactly as a send
    builds them, from its last evaluation); sends nothing, writes nothing."""
    from datamantri_alerts.escaping import terminal
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.preview import preview_message, render_previews

    app = app_context(ctx)
    with app.store.session() as session:
        alert = get_alert(session, ref)
        message = preview_message(alert, event.strip().lower(), app.clock, app.settings.hostname)
        previews = render_previews(alert, message, channel=channel)
    if as_json:
        print_json([preview.as_json() for preview in previews])
        return
    out: list[str] = []
    for preview in previews:
        to = ", ".join(preview.recipients) or "(no recipient)"
        out.append(f"=== {preview.channel} to {to}")
        if preview.note:
            out.append(f"(note: {preview.note})")
        for part, value in preview.content.items():
            text = value if isinstance(value, str) else json.dumps(value, indent=2)
            out.append(f"--- {part}")
            out.append(text)
        out.append("")
    # Rendered text is data: control characters are shown escaped, line by line.
    typer.echo("\n".join(terminal(line) for line in "\n".join(out).split("\n")))
