"""`alerts evaluate`: the run cron makes every minute, and its `--dry-run` preview."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from datamantri_alerts.cli.completion import complete_alert_ref
from datamantri_alerts.cli.context import app_context, data_text, print_json
from datamantri_alerts.cli.options import JSON_OPTION
from datamantri_alerts.errors import InputError

#: `cli.table` styles of the Outcome column.
OUTCOME_STYLES = {"ok": "green", "firing": "red", "error": "yellow"}


def evaluate(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check and report only: send nothing, write nothing."
    ),
    all_alerts: bool = typer.Option(
        False, "--all", help="Every active alert, whatever its check interval."
    ),
    alert_ref: str | None = typer.Option(
        None,
        "--alert",
        metavar="REF",
        help="Only this alert (id or exact name), due or not.",
        autocompletion=complete_alert_ref,
    ),
    concurrency: int = typer.Option(
        16, "--concurrency", min=1, max=512, help="Checks running at the same time."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing unless it fails."),
    metrics_file: str | None = typer.Option(
        None,
        "--metrics-file",
        metavar="PATH",
        help="After the run, write Prometheus metrics here (atomically, for node_exporter's "
        "textfile collector). Default: $ALERTS_METRICS_FILE.",
        show_default=False,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check every due active alert, deliver notifications and write history.

    With --dry-run it only reports, per alert, what the check saw and whether it would fire.
    Exit code 1 when a check could not evaluate or a notification failed (a notification only
    waiting for its retry is not a failure until it is 15 minutes old). SIGTERM (and SIGHUP)
    stops it like Ctrl-C: queries cancelled, leases released, the run recorded as interrupted;
    exit 143 (129 for SIGHUP, 130 for Ctrl-C).
    """
    from datamantri_alerts.interrupts import stop_on_signals

    created = _store_to_create(ctx)
    try:
        with stop_on_signals():
            _evaluate(
                ctx, dry_run, all_alerts, alert_ref, concurrency, quiet, as_json, metrics_file
            )
    except KeyboardInterrupt as exc:  # the queries in flight were cancelled on the way out
        from datamantri_alerts.interrupts import exit_code_for

        done = (
            "queries cancelled, nothing written"
            if dry_run
            else "queries cancelled, leases released, run recorded as interrupted"
        )
        typer.echo(f"alerts evaluate: {exc or 'interrupted'}; stopped ({done})", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    finally:
        if created is not None and created.exists():
            # A mistyped --db or ALERTS_DATABASE_URL in a crontab would otherwise evaluate an
            # empty store every minute, quietly, and never tell anyone anything.
            app = app_context(ctx)
            which = (
                "the default store; give --db or ALERTS_DATABASE_URL for another"
                if app.settings.database_field == "store"
                else f"check {app.settings.database_field}"
            )
            app.warn(
                f"there was no store at {created.absolute()}: this run created an empty one, "
                f"with no alerts ({which})"
            )


def _store_to_create(ctx: typer.Context) -> Path | None:
    """The SQLite file of the store that does not exist yet (opening it creates it), or None."""
    from datamantri_alerts.store.engine import parse_store_url, sqlite_store_path

    settings = app_context(ctx).settings
    try:
        url = parse_store_url(settings.database_url, settings.database_field)
    except InputError:
        return None  # said when the store is opened
    if url.get_backend_name() != "sqlite":
        return None
    path = sqlite_store_path(url)
    return path if path is not None and not path.exists() else None


def _evaluate(
    ctx: typer.Context,
    dry_run: bool,
    all_alerts: bool,
    alert_ref: str | None,
    concurrency: int,
    quiet: bool,
    as_json: bool,
    metrics_file: str | None,
) -> None:
    if not dry_run:
        run_and_report(
            ctx,
            all_alerts=all_alerts,
            ref=alert_ref,
            concurrency=concurrency,
            quiet=quiet,
            as_json=as_json,
            metrics_file=metrics_file,
        )
        return
    report = dry_run_report(ctx, all_alerts=all_alerts, ref=alert_ref, concurrency=concurrency)
    if as_json:
        print_json(report)
    elif not quiet or any(r["outcome"] == "error" for r in report["results"]):
        _print_table(ctx, report)
    if any(r["outcome"] == "error" for r in report["results"]):
        raise typer.Exit(1)


def _projected_state(alert: Any, outcome: str) -> str:
    """The state this outcome would move the alert to (pending_evaluations respected)."""
    if outcome == "error":
        return "error"
    if outcome == "ok":
        return "ok"
    hits = (alert.consecutive_hits or 0) if alert.state in ("pending", "firing") else 0
    return "firing" if hits + 1 >= (alert.pending_evaluations or 1) else "pending"


def dry_run_report(
    ctx: typer.Context, *, all_alerts: bool, ref: str | None, concurrency: int
) -> dict[str, Any]:
    from datamantri_alerts.checks.pool import SourcePool
    from datamantri_alerts.services.checking import (
        AlertSnapshot,
        run_checks,
        store_context_factory,
    )
    from datamantri_alerts.services.due import due_alerts

    app = app_context(ctx)
    store = app.store
    with store.session() as session:
        alerts = due_alerts(session, app.clock.now(), all=all_alerts, ref=ref)
        snapshots = [AlertSnapshot.of(alert) for alert in alerts]
        by_id = {alert.id: alert for alert in alerts}
        session.expunge_all()
    with SourcePool(concurrency) as sources:
        try:
            results = run_checks(
                snapshots,
                store_context_factory(store, app.clock),
                concurrency=concurrency,
                sources=sources,
            )
        except KeyboardInterrupt:  # SIGTERM or Ctrl-C: no query outlives the dry run
            sources.cancel_all()
            raise
    rows = []
    for result in results:
        row = result.as_dict()
        row["state"] = _projected_state(by_id[result.id], result.outcome)
        rows.append(row)
    return {
        "evaluated": len(rows),
        "dry_run": True,
        "results": rows,
        "notifications": {"sent": 0, "failed": 0, "pending": 0, "suppressed": 0},
    }


def _print_table(ctx: typer.Context, report: dict[str, Any]) -> None:
    app = app_context(ctx)
    results = report["results"]
    counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("ok", "firing", "error")}
    title = (
        f"dry run: {report['evaluated']} alerts checked, {counts['firing']} firing, "
        f"{counts['error']} errors (nothing sent, nothing written)"
    )
    if not results:
        app.console.print("no alerts are due (use --all to check every active alert)")
        return
    rows = [
        (
            f"{row['id']} {row['name']}",
            row["condition_type"],
            row["outcome"],
            row["state"],
            row["severity"],
            row["summary"],
            f"{row['duration_ms']} ms",
        )
        for row in results
    ]
    _echo_results(title, rows)


def _echo_results(title: str, rows: list[tuple[str, ...]]) -> None:
    """The results table, fitted to the terminal: the summary goes on its own line under
    its alert when it does not fit as a column (words and URLs are never broken)."""
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("Alert", flexible=True),
        Column("Type", drop=3),
        Column("Outcome"),
        Column("State", drop=1),
        Column("Severity", drop=2),
        Column("Summary", detail=True),
        Column("Duration", align="right", drop=4),
    ]
    styles = [(None, None, OUTCOME_STYLES.get(row[2]), None, None, None, None) for row in rows]
    typer.echo(render_table(columns, rows, styles=styles, title=title), nl=False)


# --------------------------------------------------------------------------- the real run
# (everything below writes state, history and the outbox; the dry run above writes nothing)


def run_and_report(
    ctx: typer.Context,
    *,
    all_alerts: bool,
    ref: str | None,
    concurrency: int,
    quiet: bool,
    as_json: bool,
    metrics_file: str | None = None,
) -> None:
    """Evaluate, deliver and record; exit 1 unless every due alert was evaluated and every
    due notification delivered."""
    from datamantri_alerts.services.evaluate import RunOptions, run_evaluation
    from datamantri_alerts.settings import lease_setting

    app = app_context(ctx)
    if all_alerts and ref is not None:
        raise InputError("give --all or --alert, not both")
    lease_ttl, lease_warning = lease_setting()
    if lease_warning is not None:
        app.warn(lease_warning)
    options = RunOptions(
        all=all_alerts,
        ref=ref,
        concurrency=concurrency,
        host=app.settings.hostname,
        lease_ttl=lease_ttl,
        metrics_file=metrics_file or os.environ.get("ALERTS_METRICS_FILE") or None,
    )
    show_progress = not quiet and not as_json and app.err.is_terminal
    if show_progress:
        summary = _run_with_progress(app, options)
    else:
        summary = run_evaluation(app.store, app.clock, options)
    if as_json:
        print_json(summary.as_json())
    elif quiet:
        _print_problems(app, summary, quiet=True)
    else:
        _print_run_table(app, summary)
        _print_problems(app, summary, quiet=False)
    if not summary.ok:
        raise typer.Exit(1)


def _run_with_progress(app: Any, options: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from datamantri_alerts.services.evaluate import Progress as RunProgress
    from datamantri_alerts.services.evaluate import run_evaluation

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=app.err,
        transient=True,
    ) as bar:
        task = bar.add_task("checking", total=None)
        hooks = RunProgress(
            on_total=lambda total: bar.update(task, total=total),
            on_checked=lambda n: bar.advance(task, n),
            on_delivering=lambda: bar.update(task, description="delivering"),
        )
        return run_evaluation(app.store, app.clock, options, hooks)


def _print_run_table(app: Any, summary: Any) -> None:
    n = summary.notifications
    title = (
        f"{len(summary.results)} alerts evaluated, {summary.firing} firing, "
        f"{summary.resolved} resolved, {summary.errors} errors; notifications: {n.sent} sent, "
        f"{n.failed} failed, {n.pending} pending, {n.suppressed} suppressed"
    )
    if not summary.results:
        app.console.print("no alerts are due (use --all to check every active alert)")
        app.console.print(title)
        return
    rows = [
        (
            f"{row.id} {row.name}",
            row.condition_type,
            row.outcome,
            row.state,
            row.severity,
            row.summary,
            f"{row.duration_ms} ms",
        )
        for row in summary.results
    ]
    _echo_results(title, rows)


def _print_problems(app: Any, summary: Any, *, quiet: bool) -> None:
    """What made the run fail, on stderr; with quiet, nothing else (cron mails any output)."""
    from datamantri_alerts.services.delivery import OVERDUE_AFTER

    for row in summary.results:
        if row.outcome == "error":
            app.err.print(data_text(f"error: alert {row.id} {row.name}: {row.summary}"))
    n = summary.notifications
    minutes = int(OVERDUE_AFTER.total_seconds() // 60)
    if n.failed:
        app.err.print(data_text(f"notifications: {n.failed} failed (see `alerts history show ID`)"))
    if summary.overdue:
        app.err.print(
            data_text(
                f"notifications: {summary.overdue} still undelivered after {minutes} minutes "
                "(retried by later runs; see `alerts history show ID`)"
            )
        )
    elif n.pending and not quiet:
        app.err.print(
            data_text(
                f"notifications: {n.pending} waiting for a retry by a later run (not a failure "
                f"until {minutes} minutes old)"
            )
        )
    for problem in summary.problems:
        app.err.print(data_text(f"problem: {problem}"))
