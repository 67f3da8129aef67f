"""`alerts mute REF --for 2h --reason TEXT` and `alerts unmute REF`."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION, REF_ARG


def mute(
    ctx: typer.Context,
    ref: str = REF_ARG,
    duration: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d, 1w."),
    reason: str | None = typer.Option(None, "--reason", help="Why (shown in suppressed rows)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Silence an alert for a while: it is still evaluated and its history still moves, but
    notifications are recorded as suppressed instead of sent."""
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.mute import mute_alert

    length = parse_duration(duration, "--for")
    app = app_context(ctx)
    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        until = mute_alert(alert, length, reason, app.clock.now())
        data = {"id": alert.id, "name": alert.name, "muted_until": until, "reason": reason}
    if as_json:
        print_json(data)
    else:
        app.console.print(f"muted alert {data['id']} ({data['name']}) until {fmt_time(until)}")


def unmute(ctx: typer.Context, ref: str = REF_ARG, as_json: bool = JSON_OPTION) -> None:
    """End an alert's silence now."""
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.mute import unmute_alert

    app = app_context(ctx)
    with app.store.transaction() as session:
        alert = get_alert(session, ref)
        was_muted = unmute_alert(alert)
        data = {"id": alert.id, "name": alert.name, "was_muted": was_muted}
    if as_json:
        print_json(data)
    elif was_muted:
        app.console.print(f"unmuted alert {data['id']} ({data['name']})")
    else:
        app.console.print(f"alert {data['id']} ({data['name']}) was not muted")
