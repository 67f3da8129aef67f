"""`alerts ack REF|EPISODE_ID [--note TEXT] [--for DURATION]` and `alerts unack REF|EPISODE_ID`."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context, data_text, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION

#: `alerts unack` on an episode whose acknowledgement was delivered to PagerDuty (the Events
#: API v2 has no event taking an acknowledgement back).
PAGERDUTY_NOTE = (
    "PagerDuty has no un-acknowledge: its incident stays acknowledged until PagerDuty's own "
    "acknowledgement timeout or a new trigger"
)

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
    acknowledged), and PagerDuty (and native webhooks) are told at once; chat and e-mail are
    not. Recorded as $ALERTS_USER, else the OS login name."""
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.leases import Holder
    from datamantri_alerts.services.signal.ack import acknowledge, current_user, tell_trackers

    length = parse_duration(duration, "--for") if duration is not None else None
    by = current_user()  # ALERTS_USER is checked before anything is written
    app = app_context(ctx)
    with app.store.transaction() as session:
        done = acknowledge(session, target, by=by, now=app.clock.now(), note=note, length=length)
    told = tell_trackers(
        app.store, app.clock, Holder.current(app.settings.hostname), done.episode_id
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
                "notifications": told.as_json(),
                "waiting_for_firing": done.waiting,
            }
        )
    else:
        until = f" until {fmt_time(done.until)}" if done.until else ""
        app.console.print(
            data_text(
                f"acknowledged episode {done.episode_id} of alert {done.alert_id} "
                f"({done.alert_name}) as {done.by}{until}"
            )
        )
        if told.sent:
            app.console.print(data_text(f"acknowledgement sent to {_destinations(told.sent)}"))
        if done.waiting:
            app.console.print(
                f"the episode's FIRING has not reached {_destinations(done.waiting)} yet "
                "(still pending, or held by a mute, window or silence): PagerDuty and webhooks "
                "are told of the acknowledgement after it",
                soft_wrap=True,
            )
    for line in told.problems:
        app.warn(line)


def _destinations(n: int) -> str:
    return f"{n} destination" + ("" if n == 1 else "s")


def unack(ctx: typer.Context, target: str = TARGET_ARG, as_json: bool = JSON_OPTION) -> None:
    """Take an acknowledgement back: the episode's REPEATs resume. A resolved episode is
    refused. PagerDuty has no un-acknowledge: an incident it was told of stays acknowledged
    until its own timeout or a new trigger."""
    from datamantri_alerts.services.signal.ack import pagerduty_acknowledged, unacknowledge

    app = app_context(ctx)
    with app.store.transaction() as session:
        episode, was = unacknowledge(session, target)
        pagerduty = was and pagerduty_acknowledged(session, episode)
        data = {
            "episode_id": episode.id,
            "alert_name": episode.alert_name,
            "was_acknowledged": was,
            "pagerduty_stays_acknowledged": pagerduty,
        }
    if as_json:
        print_json(data)
    elif was:
        app.console.print(data_text(f"episode {data['episode_id']} is no longer acknowledged"))
        if pagerduty:
            app.console.print(PAGERDUTY_NOTE)
    else:
        app.console.print(data_text(f"episode {data['episode_id']} was not acknowledged"))
