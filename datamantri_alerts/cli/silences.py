"""`alerts silence add|list|expire`: silences by label matcher (`services.signal.silences`)."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION

app = typer.Typer(
    help="Silences: hold back the notifications of every alert whose labels match.",
    no_args_is_help=True,
)


def _as_json(silence: object) -> dict[str, object]:
    from datamantri_alerts.services.signal.silences import matchers_of

    return {
        "id": silence.id,  # type: ignore[attr-defined]
        "matchers": [str(m) for m in matchers_of(silence)],  # type: ignore[arg-type]
        "starts_at": silence.starts_at.isoformat(),  # type: ignore[attr-defined]
        "ends_at": silence.ends_at.isoformat(),  # type: ignore[attr-defined]
        "reason": silence.reason,  # type: ignore[attr-defined]
    }


@app.command("add")
def add(
    ctx: typer.Context,
    match: list[str] = typer.Option(
        ..., "--match", help="NAME=VALUE (also !=, =~ and !~ for a regex); repeat: all must match."
    ),
    duration: str = typer.Option(..., "--for", help="How long: 30m, 2h, 1d, 1w."),
    reason: str | None = typer.Option(None, "--reason", help="Why (shown in suppressed rows)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Silence every alert whose labels match, now and any created while it lasts."""
    from datamantri_alerts.services.alerts import AlertFilter, list_alert_rows
    from datamantri_alerts.services.history import parse_duration
    from datamantri_alerts.services.signal.silences import add_silence, parse_matcher

    matchers = [parse_matcher(text) for text in match]
    length = parse_duration(duration, "--for")
    app = app_context(ctx)
    with app.store.transaction() as session:
        silence = add_silence(session, matchers, length, reason, app.clock.now())
        data = _as_json(silence)
        matching = [row.name for row in list_alert_rows(session, AlertFilter(labels=matchers))]
    data["alerts"] = matching
    if as_json:
        print_json(data)
        return
    app.console.print(
        f"silence {data['id']} ({', '.join(data['matchers'])}) until {fmt_time(silence.ends_at)}; "  # type: ignore[arg-type]
        f"matches {len(matching)} alert{'s' if len(matching) != 1 else ''} now",
        markup=False,
    )


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    expired: bool = typer.Option(False, "--expired", help="Include silences that ended."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Silences in force (with --expired, also those that ended)."""
    from datamantri_alerts.services.signal.silences import list_silences

    app = app_context(ctx)
    with app.store.session() as session:
        items = [
            _as_json(s) for s in list_silences(session, app.clock.now(), include_expired=expired)
        ]
    if as_json:
        print_json(items)
        return
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("ID", align="right"),
        Column("Matchers", flexible=True),
        Column("Until"),
        Column("Reason", flexible=True),
    ]
    rows = [
        (
            str(item["id"]),
            ", ".join(item["matchers"]),  # type: ignore[arg-type]
            str(item["ends_at"])[:16].replace("T", " ") + " UTC",
            str(item["reason"] or "-"),
        )
        for item in items
    ]
    title = f"{len(rows)} silence{'s' if len(rows) != 1 else ''}"
    typer.echo(render_table(columns, rows, title=title), nl=False)


@app.command("expire")
def expire(
    ctx: typer.Context,
    silence_id: int = typer.Argument(..., help="The silence's id (see `alerts silence list`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """End a silence now; what it held back is sent by the next evaluator run."""
    from datamantri_alerts.services.signal.silences import expire_silence

    app = app_context(ctx)
    with app.store.transaction() as session:
        was_active = expire_silence(session, silence_id, app.clock.now())
    if as_json:
        print_json({"id": silence_id, "was_active": was_active})
    elif was_active:
        app.console.print(f"expired silence {silence_id}")
    else:
        app.console.print(f"silence {silence_id} had already ended")
