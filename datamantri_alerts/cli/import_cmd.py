"""`alerts import dbt PATH`: another tool's monitoring configuration as alerts YAML on stdout."""

from __future__ import annotations

from pathlib import Path

import typer

from datamantri_alerts.cli.context import app_context

app = typer.Typer(
    help="Write alerts YAML (for `alerts sync`) from another tool's configuration.",
    no_args_is_help=True,
)

_HEADER = """\
# Freshness alerts imported from dbt ({path}).
# Add `channels` and `recipients` to each alert (or keep them as history-only), set the
# data source URL variables, then: alerts sync alerts.yaml
"""


@app.command("dbt")
def dbt(
    ctx: typer.Context,
    path: Path = typer.Argument(
        ...,
        help="A dbt target/manifest.json, a sources .yml file, or a folder of .yml files.",
        metavar="PATH",
        show_default=False,
    ),
    datasource: str | None = typer.Option(
        None,
        "--datasource",
        metavar="ID",
        help="Use this existing data source instead of declaring one per dbt database "
        "with a ${DBT_...} URL placeholder.",
    ),
) -> None:
    """One `freshness` alert per dbt source table with a freshness config, as YAML on stdout.

    Thresholds, loaded_at_field, filter and source-level defaults are taken as dbt resolves
    them; what is left out (no freshness, no loaded_at_field) is listed on stderr.
    """
    import yaml

    from datamantri_alerts.importers.dbt import alerts_document, read_path

    app_ctx = app_context(ctx)
    tables = read_path(path)
    if datasource is not None:
        from datamantri_alerts.services.entities import get_entity

        with app_ctx.store.session() as session:
            get_entity(session, "datasource", datasource)  # exit 2 when it does not exist
    result = alerts_document(tables, datasource_id=datasource)
    for warning in result.warnings:
        app_ctx.warn(f"not imported: {warning}")
    text = yaml.safe_dump(result.document, sort_keys=False, allow_unicode=True, width=100)
    typer.echo(_HEADER.format(path=path.name) + text, nl=False)
