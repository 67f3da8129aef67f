"""`alerts sync FILE` and `alerts export`: configuration as code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from datamantri_alerts.cli.context import app_context, print_json
from datamantri_alerts.cli.options import JSON_OPTION
from datamantri_alerts.errors import InputError

#: `--exit-code`: the plan has changes (0: none; 1 is a runtime failure, 2 bad input).
EXIT_CHANGES = 3


def sync(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The YAML (or JSON) file to apply."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete what the file no longer has (asks first; see --yes)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Delete with --prune without asking (needed off a terminal)."
    ),
    exit_code: bool = typer.Option(
        False,
        "--exit-code",
        help=f"Exit {EXIT_CHANGES} when the plan has changes, 0 when it has none (for CI "
        "drift checks, with --dry-run).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make the store match FILE (sources, pipelines, dashboards, alerts) in one transaction.

    Prints the plan: per item create, update (each changed field old -> new, secrets masked),
    unchanged or delete, and the store items the file does not have."""
    from datamantri_alerts.documents import load_document
    from datamantri_alerts.errors import first_of
    from datamantri_alerts.schema import collect_file
    from datamantri_alerts.services.sync import sync_file

    app = app_context(ctx)
    parsed, problems = collect_file(load_document(file))
    if problems or parsed is None:
        # One line, as for all bad input; `alerts validate FILE` lists every problem.
        error = first_of(problems)
        if len(problems) > 1:
            error = InputError(f"{error.message}; `alerts validate` lists all", error.field)
        raise error
    # Long work says what it is doing, on a terminal only (stderr; never with --json).
    items = sum(len(getattr(parsed, part, None) or []) for part in _PARTS)
    tell = not as_json and items >= LARGE_FILE_ITEMS and app.err.is_terminal
    if tell:
        app.err.print(f"planning {items} items from {file.name}…", soft_wrap=True)
    with app.store.session() as session:
        plan = sync_file(session, parsed, app.clock, prune=prune, apply=False)
        session.rollback()
    if not dry_run and plan.deletions and not yes:
        from datamantri_alerts.cli import alerts as alert_commands

        if as_json or not alert_commands.stdin_is_terminal():
            raise InputError(
                f"would delete {len(plan.deletions)} item"
                f"{'s' if len(plan.deletions) != 1 else ''}; "
                + ("pass --yes with --json" if as_json else "confirm on a terminal or pass --yes")
                + " (nothing was changed)",
                field="--prune",
            )
        _print_plan(app, plan, dry_run=True)
        from datamantri_alerts.escaping import terminal

        names = ", ".join(f"{kind} {terminal(name)}" for kind, name in plan.deletions[:5])
        more = len(plan.deletions) - 5
        question = f"Delete {names}{f' and {more} more' if more > 0 else ''}?"
        if not typer.confirm(question, default=False):
            app.err.print("nothing changed")
            raise typer.Exit(1)
    if not dry_run:
        confirmed = set(plan.deletions)
        if tell and plan.has_changes:
            app.err.print(f"applying {len(plan.changes)} changes…", soft_wrap=True)
        with app.store.transaction() as session:
            plan = sync_file(session, parsed, app.clock, prune=prune, apply=True)
            if not set(plan.deletions) <= confirmed:
                raise InputError(
                    "the store changed while you were asked; nothing was changed, run sync again",
                    field="--prune",
                )
    for warning in plan.warnings:
        app.warn(warning)
    if as_json:
        print_json(plan.as_json())
    else:
        _print_plan(app, plan, dry_run=dry_run)
    if exit_code and plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


#: A file with this many items (data sources, pipelines, dashboards, windows, alerts) is large
#: enough for sync to say on a terminal what it is doing while it plans and applies.
LARGE_FILE_ITEMS = 50
_PARTS = ("datasources", "pipelines", "dashboards", "maintenance_windows", "alerts")


def _print_plan(app: Any, plan: Any, *, dry_run: bool) -> None:
    """The plan as a table: one row per item, its changed fields below it, one per line
    (fitted to the terminal like every table, `cli.table`)."""
    import typer

    from datamantri_alerts.cli.table import Column, render_table
    from datamantri_alerts.services.sync import NOT_IN_FILE_NOTE

    style = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
    columns = [
        Column("Kind"),
        Column("Name", flexible=True),
        Column("Action"),
        Column("Changes", below=True),
    ]
    rows: list[list[str]] = []
    styles: list[list[str | None]] = []
    for change in plan.changes:
        details = [c.line() for c in change.diff]
        if change.renamed_from is not None:
            details.insert(0, f"renamed from {change.renamed_from!r} (history kept)")
        rows.append([change.kind, change.name, change.action, "\n".join(details)])
        styles.append([None, None, style[change.action], None])
    for kept in plan.not_in_file:
        rows.append([kept.kind, kept.name, "kept", NOT_IN_FILE_NOTE])
        styles.append([None, None, "dim", None])
    title = "sync plan" + (" (dry run)" if dry_run else "")
    typer.echo(render_table(columns, rows, styles=styles, title=title), nl=False)
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in style}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing in the file"
    if plan.not_in_file:
        summary += f"; {len(plan.not_in_file)} not in file (kept)"
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
