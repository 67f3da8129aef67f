"""`alerts sync FILE` and `alerts export`: configuration as code."""

from __future__ import annotations

from pathlib import Path

import typer

from datamantri_alerts.cli.context import app_context, print_json
from datamantri_alerts.cli.options import JSON_OPTION
from datamantri_alerts.errors import InputError


class _DryRunDone(Exception):
    """Raised inside the transaction to roll a dry run back."""


def sync(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The YAML (or JSON) file to apply."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(False, "--prune", help="Delete what the file no longer has."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make the store match FILE (sources, pipelines, dashboards, alerts) in one transaction."""
    from datamantri_alerts.schema import load_document, validate_file
    from datamantri_alerts.services.sync import sync_file

    app = app_context(ctx)
    parsed = validate_file(load_document(file))
    if dry_run:
        with app.store.session() as session:
            plan = sync_file(session, parsed, app.clock, prune=prune, apply=False)
            session.rollback()
    else:
        with app.store.transaction() as session:
            plan = sync_file(session, parsed, app.clock, prune=prune, apply=True)
    for warning in plan.warnings:
        app.warn(warning)
    if as_json:
        print_json({"changes": [c.as_json() for c in plan.changes], "applied": plan.applied})
        return
    from rich.table import Table
    from rich.text import Text

    style = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
    table = Table(title="sync plan" + (" (dry run)" if dry_run else ""), title_justify="left")
    for column in ("Kind", "Name", "Action", "Changed fields"):
        table.add_column(column, overflow="fold")
    for change in plan.changes:
        table.add_row(
            change.kind,
            change.name,
            Text(change.action, style=style[change.action]),
            ", ".join(change.fields),
        )
    app.console.print(table)
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in style}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing in the file"
    verb = "would apply" if dry_run else "applied"
    app.console.print(f"{verb}: {summary}" if plan.has_changes else f"no changes ({summary})")


def export(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
    show_secrets: bool = typer.Option(
        False, "--show-secrets", help="Write literal secrets instead of <redacted>."
    ),
) -> None:
    """Print the store as YAML that `alerts sync` accepts."""
    import yaml

    from datamantri_alerts.services.sync import export_document

    app = app_context(ctx)
    with app.store.session() as session:
        document = export_document(session, show_secrets=show_secrets)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    if output is None:
        if show_secrets:  # asked for in full: past the output redactor
            from datamantri_alerts.logs import write_unredacted

            write_unredacted(text)
        else:
            typer.echo(text, nl=False)
        return
    if output.exists() and output.is_dir():
        raise InputError(f"{output} is a folder", field="--output")
    output.write_text(text, encoding="utf-8")
    if show_secrets:
        output.chmod(0o600)
    app.console.print(f"wrote {output}")
