"""`alerts windows list|add|remove`: named maintenance windows (`services.maintenance`)."""

from __future__ import annotations

from pathlib import Path

import typer

from datamantri_alerts.cli.context import app_context, fmt_time, print_json
from datamantri_alerts.cli.options import JSON_OPTION

app = typer.Typer(
    help="Maintenance windows: recurring or one-off times when alerts naming them stay quiet.",
    no_args_is_help=True,
)


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Each window with its next start and end, and the alerts that name it."""
    from datamantri_alerts.services.maintenance import list_windows

    app = app_context(ctx)
    with app.store.session() as session:
        listings = list_windows(session, app.clock.now())
    if as_json:
        print_json([item.as_json() for item in listings])
        return
    from datamantri_alerts.cli.table import Column, render_table

    columns = [
        Column("Window", flexible=True),
        Column("Next start"),
        Column("Next end"),
        Column("Alerts", flexible=True),
    ]
    rows = [
        (
            item.name,
            "open now"
            if item.open_now
            else fmt_time(item.next_start)
            if item.next_start
            else "never",
            fmt_time(item.next_end),
            ", ".join(item.alerts) or "-",
        )
        for item in listings
    ]
    title = f"{len(rows)} maintenance window{'s' if len(rows) != 1 else ''}"
    typer.echo(render_table(columns, rows, title=title), nl=False)


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The window's name (alerts name it in mute_during)."),
    times: list[str] | None = typer.Option(None, "--times", help="HH:MM-HH:MM (repeat)."),
    weekdays: list[str] | None = typer.Option(
        None, "--weekdays", help="monday or monday:friday (repeat)."
    ),
    days_of_month: list[str] | None = typer.Option(
        None, "--days-of-month", help="1, -1 (the last day) or 1:7 (repeat)."
    ),
    months: list[str] | None = typer.Option(None, "--months", help="june or 6 or june:august."),
    location: str = typer.Option("UTC", "--location", help="IANA time zone, e.g. Europe/Berlin."),
    start: str | None = typer.Option(None, "--start", help="One-off: ISO instant with offset."),
    end: str | None = typer.Option(None, "--end", help="One-off: ISO instant with offset."),
    from_file: Path | None = typer.Option(
        None, "--from-file", help="A YAML or JSON file holding one window."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a window (or replace the one with this name)."""
    from datamantri_alerts.documents import load_document
    from datamantri_alerts.services.maintenance import add_window
    from datamantri_alerts.services.signal.windows import validate_window

    if from_file is not None:
        document = load_document(from_file)
        if isinstance(document, dict):
            document = {"name": name, **document}
    else:
        given = {
            "name": name,
            "times": times,
            "weekdays": weekdays,
            "days_of_month": days_of_month,
            "months": months,
            "location": location,
            "start": start,
            "end": end,
        }
        document = {k: v for k, v in given.items() if v}
    spec = validate_window(document, "window")
    app = app_context(ctx)
    with app.store.transaction() as session:
        add_window(session, spec, app.clock.now())
    if as_json:
        print_json({"name": spec.name, **spec.stored()})
    else:
        app.console.print(f"saved maintenance window {spec.name}", markup=False)


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The window's name."),
) -> None:
    """Delete a window that no alert names."""
    from datamantri_alerts.services.maintenance import remove_window

    app = app_context(ctx)
    with app.store.transaction() as session:
        remove_window(session, name)
    app.console.print(f"removed maintenance window {name}", markup=False)
