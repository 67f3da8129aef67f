"""`alerts datasources|pipelines|dashboards list|add|remove`: the watched entities."""

from __future__ import annotations

from typing import Any

import typer

from datamantri_alerts.cli.completion import entity_id_completer
from datamantri_alerts.cli.context import app_context, print_json
from datamantri_alerts.cli.options import JSON_OPTION


def _entity_json(kind: str, row: Any) -> dict[str, Any]:
    from datamantri_alerts.services.masking import url_for_display

    data: dict[str, Any] = {"id": row.id, "name": row.name}
    if kind == "datasource":
        data["url"] = url_for_display(row.url)
        data["freshness"] = row.freshness
    else:
        data["runs"] = row.runs
    data["created_at"] = row.created_at.isoformat()
    data["updated_at"] = row.updated_at.isoformat()
    return data


def _list(ctx: typer.Context, kind: str, as_json: bool) -> None:
    from datamantri_alerts.services.entities import list_entities

    app = app_context(ctx)
    with app.store.session() as session:
        rows = [_entity_json(kind, r) for r in list_entities(session, kind)]
    if as_json:
        print_json(rows)
        return
    from datamantri_alerts.cli.table import Column, render_table

    if kind == "datasource":
        columns = [
            Column("ID"),
            Column("Name", flexible=True),
            Column("Freshness", drop=1),
            Column("URL", detail=True),
        ]
    else:
        columns = [Column("ID"), Column("Name", flexible=True), Column("Runs", detail=True)]
    table_rows = []
    for row in rows:
        if kind == "datasource":
            fresh = row["freshness"]
            fresh_text = f"{fresh['table']}.{fresh['column']}" if fresh else "-"
            if fresh and fresh.get("timestamp_timezone"):
                fresh_text += f" ({fresh['timestamp_timezone']})"
            table_rows.append((row["id"], row["name"], fresh_text, row["url"]))
        else:
            runs = row["runs"]
            detail = {
                "sql": f"sql on {runs.get('datasource_id')}",
                "dbt": f"dbt {runs.get('path')}",
            }.get(runs.get("source"), "recorded")
            table_rows.append((row["id"], row["name"], detail))
    title = f"{len(rows)} {kind}s"
    typer.echo(render_table(columns, table_rows, title=title), nl=False)


def _add(ctx: typer.Context, kind: str, document: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from datamantri_alerts.schema import format_validation_error
    from datamantri_alerts.services.entities import SPEC_MODELS, add_entity

    app = app_context(ctx)
    try:
        spec = SPEC_MODELS[kind].model_validate(document)
    except ValidationError as exc:
        raise format_validation_error(exc) from None
    with app.store.transaction() as session:
        add_entity(session, kind, spec, app.clock)
    app.console.print(f"added {kind} {spec.id}", markup=False)


def _remove(ctx: typer.Context, kind: str, entity_id: str) -> None:
    from datamantri_alerts.services.entities import remove_entity

    app = app_context(ctx)
    with app.store.transaction() as session:
        remove_entity(session, kind, entity_id)
    app.console.print(f"removed {kind} {entity_id}", markup=False)


datasources = typer.Typer(help="Data sources: databases and HTTP endpoints.", no_args_is_help=True)
pipelines = typer.Typer(
    help="Pipelines: ETL/ELT jobs whose runs succeed or fail.", no_args_is_help=True
)
dashboards = typer.Typer(help="Dashboards: scheduled refresh jobs.", no_args_is_help=True)


@datasources.command("list")
def datasources_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List data sources (passwords masked)."""
    _list(ctx, "datasource", as_json)


@datasources.command("add")
def datasources_add(
    ctx: typer.Context,
    entity_id: str = typer.Argument(..., metavar="ID", help="A short id such as abc-123."),
    name: str = typer.Option(..., "--name", help="A readable name."),
    url: str = typer.Option(..., "--url", help="SQLAlchemy URL, http(s):// URL, or ${VAR}."),
    freshness_table: str | None = typer.Option(
        None, "--freshness-table", metavar="TABLE", help="Default table for sla_breach alerts."
    ),
    freshness_column: str | None = typer.Option(
        None,
        "--freshness-column",
        metavar="COLUMN",
        help="Its load-time column (timestamp or date) for sla_breach alerts.",
    ),
    freshness_timezone: str | None = typer.Option(
        None, "--freshness-timezone", help="IANA zone of a naive freshness column (default UTC)."
    ),
) -> None:
    """Add a data source."""
    doc: dict[str, Any] = {"id": entity_id, "name": name, "url": url}
    if freshness_table or freshness_column or freshness_timezone:
        doc["freshness"] = {"table": freshness_table, "column": freshness_column}
        if freshness_timezone is not None:
            doc["freshness"]["timestamp_timezone"] = freshness_timezone
    _add(ctx, "datasource", doc)


@datasources.command("remove")
def datasources_remove(
    ctx: typer.Context,
    entity_id: str = typer.Argument(
        ...,
        metavar="ID",
        help="The data source's id.",
        autocompletion=entity_id_completer("datasource"),
    ),
) -> None:
    """Remove a data source no alert uses."""
    _remove(ctx, "datasource", entity_id)


def _runs_document(
    source: str,
    datasource: str | None,
    query: str | None,
    path: str | None,
    timestamp_timezone: str | None = None,
) -> dict[str, Any]:
    runs: dict[str, Any] = {"source": source}
    if timestamp_timezone is not None:
        runs["timestamp_timezone"] = timestamp_timezone
    if datasource is not None:
        runs["datasource_id"] = datasource
    if query is not None:
        runs["query"] = query
    if path is not None:
        runs["path"] = path
    return runs


def _job_commands(group: typer.Typer, kind: str) -> None:
    @group.command("list")
    def list_jobs(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
        _list(ctx, kind, as_json)

    list_jobs.__doc__ = f"List {kind}s."

    @group.command("add")
    def add_job(
        ctx: typer.Context,
        entity_id: str = typer.Argument(..., metavar="ID", help="A short id such as etl-1."),
        name: str = typer.Option(..., "--name", help="A readable name."),
        source: str = typer.Option(
            "recorded", "--runs-source", help="recorded, sql or dbt: where its runs come from."
        ),
        datasource: str | None = typer.Option(None, "--datasource", help="For --runs-source sql."),
        query: str | None = typer.Option(None, "--query", help="For --runs-source sql."),
        path: str | None = typer.Option(None, "--path", help="run_results.json, for dbt."),
        timestamp_timezone: str | None = typer.Option(
            None,
            "--timestamp-timezone",
            help="For --runs-source sql: IANA zone of naive run times (default UTC).",
        ),
    ) -> None:
        _add(
            ctx,
            kind,
            {
                "id": entity_id,
                "name": name,
                "runs": _runs_document(source, datasource, query, path, timestamp_timezone),
            },
        )

    add_job.__doc__ = f"Add a {kind}."

    @group.command("remove")
    def remove_job(
        ctx: typer.Context,
        entity_id: str = typer.Argument(
            ..., metavar="ID", help=f"The {kind}'s id.", autocompletion=entity_id_completer(kind)
        ),
    ) -> None:
        _remove(ctx, kind, entity_id)

    remove_job.__doc__ = f"Remove a {kind} no alert uses."


_job_commands(pipelines, "pipeline")
_job_commands(dashboards, "dashboard")

GROUPS = {"datasources": datasources, "pipelines": pipelines, "dashboards": dashboards}
GROUP_KINDS = ((datasources, "datasource"), (pipelines, "pipeline"), (dashboards, "dashboard"))


# --------------------------------------------------------------------------- datasources check
# (issue 3: checks) Reach one data source now, as the datasource_failure check would.


@datasources.command("check")
def datasources_check(
    ctx: typer.Context,
    entity_id: str = typer.Argument(
        ...,
        metavar="ID",
        help="The data source id.",
        autocompletion=entity_id_completer("datasource"),
    ),
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, max=600, help="Seconds for connect and for the query."
    ),
    follow_redirects: bool = typer.Option(
        False, "--follow-redirects", help="HTTP: follow up to 5 redirects instead of failing."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Test the connection to a data source now (SELECT 1, or GET for HTTP); exit 1 if it fails."""
    from datamantri_alerts.services.connectivity import check_datasource

    app = app_context(ctx)
    result = check_datasource(app.store, entity_id, timeout, follow_redirects=follow_redirects)
    if as_json:
        print_json(result.as_dict())
    else:
        mark = "ok" if result.reachable else ("error" if result.error else "FAILED")
        app.console.print(f"{mark}: {result.summary}", markup=False, soft_wrap=True)
    if not result.reachable:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- show and edit
# The same as `alerts show` / `alerts edit`: one edit loop (cli/editing.py) for every record.


def _show(ctx: typer.Context, kind: str, entity_id: str, as_json: bool) -> None:
    from datamantri_alerts.cli.alerts import print_fields
    from datamantri_alerts.services.entities import get_entity

    app = app_context(ctx)
    with app.store.session() as session:
        data = _entity_json(kind, get_entity(session, kind, entity_id))
    if as_json:
        print_json(data)
    else:
        print_fields(app, data)


def _edit(ctx: typer.Context, kind: str, entity_id: str) -> None:
    from datamantri_alerts.cli.alerts import dump_yaml, parse_edited_mapping
    from datamantri_alerts.cli.editing import edit_in_editor
    from datamantri_alerts.services.edits import read_entity, save_entity_edit
    from datamantri_alerts.services.entities import ENTITY_LABELS

    app = app_context(ctx)
    label = ENTITY_LABELS[kind]
    with app.store.session() as session:
        document, seen = read_entity(session, kind, entity_id)

    def save(text: str) -> Any:
        edited = parse_edited_mapping(text, f"the {label}'s fields")
        with app.store.transaction() as session:
            return save_entity_edit(session, kind, seen, edited, app.clock)

    saved = edit_in_editor(dump_yaml(document), save, what=f"{label} {entity_id}")
    if saved is None:
        app.console.print(f"edit cancelled, {label} {entity_id} unchanged", markup=False)
    else:
        app.console.print(f"updated {label} {entity_id}", markup=False)


def _show_edit_commands(group: typer.Typer, kind: str) -> None:
    # services.entities imports the schema (pydantic): not at import time, `--help` is fast.
    label = "data source" if kind == "datasource" else kind
    id_arg = typer.Argument(
        ...,
        metavar="ID",
        help=f"The {label}'s id.",
        autocompletion=entity_id_completer(kind),
    )

    @group.command("show")
    def show_entity(
        ctx: typer.Context, entity_id: str = id_arg, as_json: bool = JSON_OPTION
    ) -> None:
        _show(ctx, kind, entity_id, as_json)

    show_entity.__doc__ = f"Show every field of one {label} (passwords masked)."

    @group.command("edit")
    def edit_entity(ctx: typer.Context, entity_id: str = id_arg) -> None:
        _edit(ctx, kind, entity_id)

    edit_entity.__doc__ = (
        f"Edit a {label} as YAML in $EDITOR (an invalid save reopens it with the errors)."
    )


for _group, _kind in GROUP_KINDS:
    _show_edit_commands(_group, _kind)
