"""`alerts runs record|wrap|list`: job runs of `recorded` pipelines and dashboards."""

from __future__ import annotations

from datetime import datetime

import typer

from datamantri_alerts.cli.context import app_context, data_text, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION
from datamantri_alerts.errors import InputError

app = typer.Typer(
    help="Job runs of pipelines and dashboards whose runs.source is recorded.",
    no_args_is_help=True,
)

KIND_OPTION = typer.Option(
    None, "--kind", help="pipeline or dashboard (only needed when both have the id)."
)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"not an ISO 8601 time: {value!r}", field=option) from None
    if parsed.tzinfo is None:
        raise InputError(
            "needs a time zone offset, e.g. 2026-01-31T02:00:00+00:00 or ...Z", field=option
        )
    from datamantri_alerts.inputs import bounded_time

    try:
        return bounded_time(parsed)
    except ValueError as exc:
        raise InputError(str(exc), field=option) from None


@app.command("record")
def record(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="A pipeline or dashboard id."),
    status: str = typer.Option(..., "--status", help="success or failed."),
    error: str | None = typer.Option(None, "--error", help="What went wrong (for failed)."),
    started_at: str | None = typer.Option(
        None, "--started-at", help="ISO 8601 with offset (default: --finished-at)."
    ),
    finished_at: str | None = typer.Option(
        None, "--finished-at", help="ISO 8601 with offset (default: now)."
    ),
    exit_code: int | None = typer.Option(
        None, "--exit-code", min=-(2**31), max=2**31 - 1, help="The job's exit code."
    ),
    kind: str | None = KIND_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a finished run of a pipeline or dashboard refresh."""
    from datamantri_alerts.services.runs import record_run, run_as_dict

    if status not in ("success", "failed"):
        raise InputError(f"must be success or failed, got {status!r}", field="--status")
    app_ctx = app_context(ctx)
    with app_ctx.store.transaction() as session:
        run = record_run(
            session,
            job_id,
            status,
            app_ctx.clock,
            kind=kind,
            started_at=_parse_time(started_at, "--started-at"),
            finished_at=_parse_time(finished_at, "--finished-at"),
            error=error,
            exit_code=exit_code,
            host=app_ctx.settings.hostname,
        )
        data = run_as_dict(run)
    if as_json:
        print_json(data)
    else:
        app_ctx.console.print(
            f"recorded run {data['id']} of {data['job_kind']} {job_id}: {status}", markup=False
        )


@app.command(
    "wrap",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def wrap(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="A pipeline or dashboard id."),
    command: list[str] = typer.Argument(
        ..., metavar="COMMAND", help="The command to run and its arguments, after --."
    ),
    kind: str | None = KIND_OPTION,
) -> None:
    """Run COMMAND and record it as a run: start, end, exit code and the tail of its stderr.

    Usage: alerts runs wrap [--kind K] JOB_ID -- COMMAND [ARGS...]

    The command always runs and this exits with its exit code (127: not found, 128+N: killed by
    signal N, which the wrapper forwards). Its output passes through. When the run cannot be
    recorded (store unreachable, unknown JOB_ID) that is one warning line on stderr: recording
    never stops the job itself.
    """
    from datamantri_alerts.services.runs import wrap_job

    if command and command[0] == "--":  # click keeps it once positionals stop option parsing
        command = command[1:]
    elif command and command[0].startswith("-"):
        raise InputError(
            f"unexpected {command[0]!r}: options go before JOB_ID, the command after --",
            field="COMMAND",
        )
    if not command:
        raise InputError("give the command to run after --", field="COMMAND")
    app_ctx = app_context(ctx)
    outcome = wrap_job(
        lambda: app_ctx.store,
        job_id,
        command,
        app_ctx.clock,
        kind=kind,
        host=app_ctx.settings.hostname,
    )
    if outcome.start_error:
        app_ctx.err.print(data_text(f"alerts runs wrap: {outcome.start_error}"), soft_wrap=True)
    if outcome.not_recorded:
        app_ctx.warn(outcome.not_recorded)
    raise typer.Exit(outcome.exit_code)


@app.command("list")
def list_(
    ctx: typer.Context,
    job_id: str | None = typer.Argument(None, metavar="[JOB_ID]", help="Only this job's runs."),
    kind: str | None = typer.Option(None, "--kind", help="pipeline or dashboard."),
    status: str | None = typer.Option(None, "--status", help="success, failed or running."),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="At most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List recorded runs, newest first."""
    from datamantri_alerts.services.runs import JOB_KINDS, RUN_STATUSES, list_runs, run_as_dict

    if kind is not None and kind not in JOB_KINDS:
        raise InputError(f"must be pipeline or dashboard, got {kind!r}", field="--kind")
    if status is not None and status not in RUN_STATUSES:
        raise InputError(f"must be one of {', '.join(RUN_STATUSES)}", field="--status")
    app_ctx = app_context(ctx)
    with app_ctx.store.session() as session:
        runs = list_runs(session, job_id, kind=kind, status=status, limit=limit)
        rows = [run_as_dict(r) for r in runs]
        times = [(r.started_at, r.finished_at) for r in runs]
    if as_json:
        print_json(rows)
        return
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("ID", align="right"),
        Column("Job"),
        Column("Status"),
        Column("Started", drop=2),
        Column("Finished", drop=3),
        Column("Exit", align="right", drop=1),
        Column("Error", flexible=True, detail=True),
    ]
    table_rows = []
    for row, (started, finished) in zip(rows, times, strict=True):
        error = (row["error"] or "").strip().splitlines()
        table_rows.append(
            [
                str(row["id"]),
                f"{row['job_kind']} {row['job_id']}",
                row["status"],
                fmt_time(started),
                fmt_time(finished),
                "-" if row["exit_code"] is None else str(row["exit_code"]),
                error[-1] if error else "",  # the last line, whole: the table wraps it
            ]
        )
    typer.echo(render_table(columns, table_rows, title=f"{len(rows)} runs"), nl=False)
