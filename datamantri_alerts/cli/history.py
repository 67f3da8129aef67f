"""`alerts history`: episodes newest first, one in detail, resolve by hand, prune, a chart."""

from __future__ import annotations

from typing import Any

import typer

from datamantri_alerts.cli.completion import complete_alert_ref
from datamantri_alerts.cli.context import app_context, data_text, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION
from datamantri_alerts.errors import InputError

app = typer.Typer(
    help="Alert history: one row per episode, from first firing until it clears.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)

MARKS = {"sent": "✓", "failed": "✗", "pending": "…", "suppressed": "muted"}
SEVERITIES = ("info", "warning", "critical")


@app.callback()
def history(
    ctx: typer.Context,
    alert_ref: str | None = typer.Option(
        None,
        "--alert",
        metavar="REF",
        help="Only this alert.",
        autocompletion=complete_alert_ref,
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only episodes triggered since: 24h, 7d or an ISO 8601 time."
    ),
    severity: str | None = typer.Option(None, "--severity", help="info, warning or critical."),
    open_only: bool = typer.Option(False, "--open", help="Only episodes not resolved yet."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="At most this many."),
    chart: bool = typer.Option(
        False, "--chart", help="With --alert: triggers per day as a chart (default last 30 days)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Episodes newest first: alert, triggered, resolved/duration, severity, channels ✓/✗."""
    if ctx.invoked_subcommand is not None:
        return
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.history import (
        HistoryFilter,
        channel_status,
        episode_as_json,
        list_episodes,
        parse_since,
    )

    if severity is not None and severity not in SEVERITIES:
        raise InputError(f"expected one of {', '.join(SEVERITIES)}", field="--severity")
    if chart and alert_ref is None:
        raise InputError("--chart needs --alert REF")
    app_ctx = app_context(ctx)
    now = app_ctx.clock.now()
    since_at = parse_since(since, now) if since else None
    with app_ctx.store.session() as session:
        alert = get_alert(session, alert_ref) if alert_ref is not None else None
        if chart:
            assert alert is not None
            _chart(app_ctx, session, alert, since_at, now, as_json)
            return
        filters = HistoryFilter(
            alert_id=alert.id if alert else None,
            since=since_at,
            severity=severity,
            open_only=open_only,
            limit=limit,
        )
        episodes = list_episodes(session, filters)
        statuses = channel_status(session, [e.id for e in episodes])
        rows = []
        for episode in episodes:
            row = episode_as_json(episode)
            row["channels"] = statuses.get(episode.id, {})
            rows.append(row)
    if as_json:
        print_json(rows)
        return
    if not rows:
        app_ctx.console.print("no history matches")
        return
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("ID", align="right"),
        Column("Alert", flexible=True),
        Column("Triggered"),
        Column("Resolved / duration", drop=2),
        Column("Severity", drop=1),
        Column("Channels", detail=True),
    ]
    table_rows = []
    for row in rows:
        channels = " ".join(
            f"{ch} {MARKS.get(st, st)}" for ch, st in sorted(row["channels"].items())
        )
        name = row["alert_name"] + (" (error)" if row["kind"] == "error" else "")
        table_rows.append(
            (
                str(row["id"]),
                name,
                fmt_time(row["triggered_at"]),
                _resolved(row),
                row["severity"],
                channels or "-",
            )
        )
    typer.echo(render_table(columns, table_rows), nl=False)


def _resolved(row: dict[str, Any]) -> str:
    if row["resolved_at"] is None:
        return "open"
    return f"{fmt_time(row['resolved_at'])} ({_human(row['duration_seconds'])})"


def _human(seconds: int | None) -> str:
    from datamantri_alerts.clock import format_duration

    return "-" if seconds is None else format_duration(seconds)


def _chart(app_ctx: Any, session: Any, alert: Any, since: Any, now: Any, as_json: bool) -> None:
    from datetime import timedelta

    from datamantri_alerts.services.history import triggers_per_day

    start = since or now - timedelta(days=29)
    days = triggers_per_day(session, alert.id, start, now)
    if as_json:
        print_json(
            {
                "alert_id": alert.id,
                "alert_name": alert.name,
                "days": [{"date": d.isoformat(), "triggers": n} for d, n in days],
            }
        )
        return

    peak = max((n for _, n in days), default=0)
    width = 40
    app_ctx.console.print(data_text(f"{alert.name}: triggers per day (UTC)", style="bold"))
    for day, count in days:
        bar = "█" * (round(count / peak * width) if peak else 0)
        line = data_text(f"{day.isoformat()} ")
        line.append(bar or "·", style="red" if count else "dim")
        line.append(f" {count}")
        app_ctx.console.print(line)
    app_ctx.console.print(f"total {sum(n for _, n in days)} over {len(days)} days")


def _acked(data: dict[str, Any]) -> str:
    if data["acknowledged_at"] is None:
        return "-"
    text = f"by {data['acknowledged_by']} at {fmt_time(data['acknowledged_at'])}"
    if data["ack_until"] is not None:
        text += f" until {fmt_time(data['ack_until'])}"
    return text + (f": {data['ack_note']}" if data["ack_note"] else "")


@app.command("show")
def show(
    ctx: typer.Context,
    episode_id: int = typer.Argument(..., metavar="ID", help="The history entry's id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One episode: what the check saw and every delivery attempt with its result."""
    from datamantri_alerts.services.history import (
        attempt_log,
        deliveries,
        episode_as_json,
        get_episode,
    )

    app_ctx = app_context(ctx)
    with app_ctx.store.session() as session:
        episode = get_episode(session, episode_id)
        data = episode_as_json(episode)
        data["deliveries"] = deliveries(session, episode_id)
        data["attempts"] = attempt_log(episode)
    if as_json:
        print_json(data)
        return
    import json

    console = app_ctx.console
    console.print(data_text(f"episode {data['id']}: {data['alert_name']}", style="bold"))
    for label, value in (
        ("kind", data["kind"]),
        ("severity", data["severity"]),
        ("triggered", fmt_time(data["triggered_at"])),
        ("resolved", _resolved(data)),
        ("summary", data["summary"] or "-"),
        ("notes", data["resolution_notes"] or "-"),
        ("acked", _acked(data)),
    ):
        console.print(data_text(f"{label:>10}: {value}"))
    if data["details"]:
        console.print(data_text("   details:"))
        console.print(
            data_text(json.dumps(data["details"], indent=2, default=str, ensure_ascii=False))
        )
    from datamantri_alerts.cli.table import Column, render_table

    deliveries = [
        Column("Kind"),
        Column("Channel"),
        Column("Recipient", flexible=True),
        Column("Status"),
        Column("Attempts", align="right", drop=1),
        Column("Reason", detail=True),
    ]
    rows = [
        (
            row["kind"],
            row["channel"],
            row["recipient"] or "-",
            row["status"],
            str(row["attempts"]),
            row["last_error"] or "",
        )
        for row in data["deliveries"]
    ]
    typer.echo(render_table(deliveries, rows, title="deliveries"), nl=False)
    if data["attempts"]:
        attempts = [
            Column("At"),
            Column("Kind", drop=2),
            Column("Channel"),
            Column("Recipient", flexible=True, drop=3),
            Column("Result"),
            Column("Tries", align="right", drop=1),
            Column("Reason", detail=True),
        ]
        rows = [
            (
                str(entry.get("at", ""))[:19].replace("T", " "),
                entry.get("kind", ""),
                entry.get("channel", ""),
                entry.get("recipient") or "-",
                entry.get("status", "")
                + (f" in digest {entry['digest']}" if entry.get("digest") else ""),
                str(entry.get("attempts", "")),
                entry.get("reason") or "",
            )
            for entry in data["attempts"]
        ]
        typer.echo(render_table(attempts, rows, title="delivery attempts"), nl=False)


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    episode_id: int = typer.Argument(..., metavar="ID", help="The history entry's id."),
    note: str = typer.Option("", "--note", help="Resolution notes kept with the episode."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Close an episode by hand. If the condition still holds, the next run opens a new one.
    The destinations told of it (PagerDuty, webhooks, and people's channels when the alert
    notifies on resolve) are sent its RESOLVED at once, one attempt each; what does not go is
    retried by the next `alerts evaluate`."""
    from datamantri_alerts.services.history import episode_as_json, get_episode, resolve_episode
    from datamantri_alerts.services.leases import Holder
    from datamantri_alerts.services.send_now import Told, send_now
    from datamantri_alerts.services.signal.closing import RESOLVED_KIND
    from datamantri_alerts.store.models import Notification

    app_ctx = app_context(ctx)
    with app_ctx.store.transaction() as session:
        episode = get_episode(session, episode_id)
        was_open, queued = resolve_episode(session, episode, note, app_ctx.clock.now())
        data = episode_as_json(episode)
    told = Told()
    if queued:
        # The RESOLVED messages just queued go now; anything else of the episode still
        # pending (a FIRING waiting for its retry) is left to the evaluator.
        told = send_now(
            app_ctx.store,
            app_ctx.clock,
            Holder.current(app_ctx.settings.hostname),
            [Notification.history_id == episode_id, Notification.kind == RESOLVED_KIND],
            "the RESOLVED",
        )
        with app_ctx.store.session() as session:  # with what was just sent
            data = episode_as_json(get_episode(session, episode_id))
    if as_json:
        print_json({**data, "notifications": told.as_json()})
    elif was_open:
        app_ctx.console.print(f"resolved episode {episode_id} ({data['alert_name']})")
        if told.sent:
            app_ctx.console.print(f"RESOLVED sent to {told.sent} destination(s) told of it")
    else:
        app_ctx.console.print(f"episode {episode_id} was already resolved; note saved")
    for line in told.problems:
        app_ctx.warn(line)


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: str = typer.Option(
        ..., "--older-than", help="Delete closed episodes triggered longer ago than this (90d)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete old closed episodes with their notifications, and old evaluator run records."""
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.history import prune as prune_history

    age = parse_duration(older_than, "--older-than")
    app_ctx = app_context(ctx)
    removed = prune_history(app_ctx.store.transaction, app_ctx.clock.now() - age)
    if as_json:
        print_json(removed)
    else:
        app_ctx.console.print(
            f"deleted {removed['episodes']} episodes, {removed['notifications']} notifications, "
            f"{removed['evaluator_runs']} evaluator run records"
        )
