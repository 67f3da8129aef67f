"""`alerts status`: is the evaluator running, and can it deliver?"""

from __future__ import annotations

from typing import Any

import typer

from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION


def status(
    ctx: typer.Context,
    expected_interval: str = typer.Option(
        "1m", "--expected-interval", help="How often cron runs `alerts evaluate` (1m, 5m ...)."
    ),
    limit: int = typer.Option(10, "--limit", min=1, max=1000, help="Runs to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluator health: last runs, their duration and outcome, an overdue warning when none
    finished within twice the expected interval (exit 1), and which channels are configured."""
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.status import evaluator_status

    interval = parse_duration(expected_interval, "--expected-interval")
    app = app_context(ctx)
    with app.store.session() as session:
        report = evaluator_status(session, app.clock.now(), expected_interval=interval, limit=limit)
    if as_json:
        print_json(report)
    else:
        _print(app, report)
    if report["overdue"]:
        raise typer.Exit(1)


def _rate(window: dict[str, Any]) -> str:
    """`98.5% (197/200)`, or `-` when nothing was sent or failed in the window."""
    if window["rate"] is None:
        return "-"
    total = window["sent"] + window["failed"]
    return f"{window['rate'] * 100:.1f}% ({window['sent']}/{total})"


def _print(app: Any, report: dict[str, Any]) -> None:
    from datamantri_alerts.cli.table import Column, render_table

    console = app.console
    if report["overdue"]:
        last = report["last_finished_at"]
        when = f"the last finished at {fmt_time(last)}" if last else "no run has ever finished"
        app.warn(
            f"the evaluator is overdue: no run finished in the last "
            f"{2 * report['expected_interval_seconds']} s ({when}); is cron running "
            "`alerts evaluate`?"
        )
    else:
        console.print(f"evaluator: ok, last run finished {fmt_time(report['last_finished_at'])}")
    if report["runs"]:
        run_columns = [
            Column("Started"),
            Column("Host", flexible=True, drop=2),
            Column("Duration", align="right"),
            Column("Outcome"),
            Column("Evaluated", align="right", drop=3),
            Column("Firing", align="right", drop=4),
            Column("Sent", align="right", drop=5),
            Column("Failed", align="right", drop=1),
        ]
        rows = []
        for run in report["runs"]:
            duration = run["duration_seconds"]
            rows.append(
                (
                    fmt_time(run["started_at"]),
                    f"{run['host']}:{run['pid']}",
                    "running" if duration is None else f"{duration:.1f} s",
                    run["outcome"],
                    str(run["evaluated"]),
                    str(run["firing"]),
                    str(run["notifications_sent"]),
                    str(run["notifications_failed"]),
                )
            )
        typer.echo(render_table(run_columns, rows, title="recent runs"), nl=False)
    channel_columns = [
        Column("Channel"),
        Column("Active alerts", align="right", drop=2),
        Column("Fallback", drop=1),
        Column("Configuration", flexible=True),
        Column("Sent 24h", align="right", drop=3),
        Column("Sent 7d", align="right", drop=4),
    ]
    rows = []
    styles = []
    for channel in report["channels"]:
        config = "ready" if channel["configured"] else "missing: " + "; ".join(channel["problems"])
        fallback = "-"
        if channel["fallback_env"]:
            state = "set" if channel["fallback_set"] else "not set"
            fallback = f"{channel['fallback_env']} {state}"
        style = "red" if not channel["configured"] and channel["alerts_using"] else None
        rates = (_rate(channel["delivery"][label]) for label in ("24h", "7d"))
        rows.append((channel["name"], str(channel["alerts_using"]), fallback, config, *rates))
        styles.append((None, None, None, style, None, None))
    typer.echo(render_table(channel_columns, rows, styles=styles, title="channels"), nl=False)
    _print_cannot_notify(app, report["cannot_notify"])
    outbox = report["outbox"]
    heartbeat = "set" if report["heartbeat"]["configured"] else "not set"
    console.print(
        f"outbox: {outbox['pending']} pending, {outbox['failed_last_24h']} failed "
        f"in the last 24 h; {report['heartbeat']['env']} {heartbeat}"
    )


def _print_cannot_notify(app: Any, alerts: list[dict[str, Any]]) -> None:
    """One warning line per reason an active alert can never notify."""
    for alert in alerts:
        for problem in alert["problems"]:
            app.warn(f"alert {alert['id']} {alert['name']!r} cannot notify: {problem}")
