"""`alerts validate FILE...`: every problem of alert files, before anything touches a store."""

from __future__ import annotations

from pathlib import Path

import typer

from datamantri_alerts.cli.context import app_context, print_json
from datamantri_alerts.cli.options import JSON_OPTION

#: Exit codes: 0 valid (warnings allowed), 1 warnings with --strict, 2 any error.
EXIT_WARNINGS = 1
EXIT_ERRORS = 2


def validate(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(
        ...,
        help="Alert files (YAML or JSON) as `alerts sync` takes them.",
        show_default=False,
        metavar="FILE",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        help="Also check references against this store's data sources, pipelines and "
        "dashboards (the global --db works too). Without it no store is opened.",
        show_default=False,
        metavar="URL",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when there are warnings."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check FILEs without a store: every problem, one line each with its field path; warns
    about alerts that can never notify. Exit 0 valid, 1 warnings with --strict, 2 errors."""
    from datamantri_alerts.services.validation import store_entity_ids, validate_files

    app = app_context(ctx)
    root_db = ctx.parent.params.get("db") if ctx.parent is not None else None
    url = db or (app.settings.database_url if root_db else None)
    store_ids = store_entity_ids(url) if url else None
    report = validate_files(files, store_ids=store_ids)
    if as_json:
        print_json(report.as_json())
    else:
        for finding in report.errors:
            _line("error", finding.line())
        for finding in report.warnings:
            app.warn(finding.line())
        summary = (
            f"{len(report.files)} file{'s' if len(report.files) != 1 else ''}: "
            f"{len(report.errors)} error{'s' if len(report.errors) != 1 else ''}, "
            f"{len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}"
        )
        app.console.print(summary if report.errors or report.warnings else f"{summary} (valid)")
    if report.errors:
        raise typer.Exit(EXIT_ERRORS)
    if strict and report.warnings:
        raise typer.Exit(EXIT_WARNINGS)


def _line(prefix: str, text: str) -> None:
    """`error: text` on stderr, control characters shown escaped."""
    from datamantri_alerts.escaping import terminal

    typer.echo(f"{prefix}: {terminal(text)}", err=True)
