"""`alerts ack REF|EPISODE_ID [--note TEXT] [--for DURATION]` and `alerts unack REF|EPISODE_ID`."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context, data_text, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION

TARGET_ARG = typer.Argument(
    ...,
    metavar="REF|EPISODE_ID",
    help="An alert's id or exact name (its open episode), or an episode id as #ID.",
    show_default=False,
)


def ack(
    ctx: typer.Context,
    target: str = TARGET_ARG,
    note: str | None = typer.Option(None, "--note", help="What is being done (shown in history)."),
    duration: str | None = typer.Option(
        None, "--for", help="Only for this long (30m, 2h, 1d); then REPEATs resume."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Acknowledge an episode: its REPEATs stop (its RESOLVED still goes; a new episode is not
    acknowledged). Recorded as $ALERTS_USER, else the OS login name."""
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.signal.ack import acknowledge, current_user

    length = parse_duration(duration, "--for") if duration is not None else None
    app = app_context(ctx)
    with app.store.transaction() as session:
        done = acknowledge(
            session, target, by=current_user(), now=app.clock.now(), note=note, length=length
        )
    if as_json:
        print_json(
            {
                "episode_id": done.episode_id,
                "alert_id": done.alert_id,
                "alert_name": done.alert_name,
                "acknowledged_by": done.by,
                "acknowledged_at": done.at,
                "note": done.note,
                "until": done.until,
            }
        )
        return
    until = f" until {fmt_time(done.until)}" if done.until else ""
    app.console.print(
        data_text(
            f"acknowledged episode {done.episode_id} of alert {done.alert_id} "
            f"({done.alert_name}) as {done.by}{until}"
        )
    )


def unack(ctx: typer.Context, target: str = TARGET_ARG, as_json: bool = JSON_OPTION) -> None:
    """Take an acknowledgement back: the episode's REPEATs resume."""
    from datamantri_alerts.services.signal.ack import unacknowledge

    app = app_context(ctx)
    with app.store.transaction() as session:
        episode, was = unacknowledge(session, target)
        data = {"episode_id": episode.id, "alert_name": episode.alert_name, "was_acknowledged": was}
    if as_json:
        print_json(data)
    elif was:
        app.console.print(data_text(f"episode {data['episode_id']} is no longer acknowledged"))
    else:
        app.console.print(data_text(f"episode {data['episode_id']} was not acknowledged"))
