"""`alerts db`: the store's schema."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context

app = typer.Typer(help="The store's schema and migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations to the store (new stores are migrated on first use)."""
    from datamantri_alerts.secrets import mask_url
    from datamantri_alerts.store.engine import Store
    from datamantri_alerts.store.migrate import upgrade as run_upgrade

    app_ctx = app_context(ctx)
    store = Store(app_ctx.store_url())
    try:
        before, after = run_upgrade(store.engine)
    finally:
        store.dispose()
    where = mask_url(app_ctx.settings.database_url)
    if before == after:
        app_ctx.console.print(f"{where}: already at {after}")
    else:
        app_ctx.console.print(f"{where}: upgraded {before or 'empty store'} -> {after}")


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the store's schema revision."""
    from datamantri_alerts.store.engine import Store
    from datamantri_alerts.store.migrate import SCHEMA_HEAD, current_revision, refuse_newer

    app_ctx = app_context(ctx)
    store = Store(app_ctx.store_url())
    try:
        revision = current_revision(store.engine)
    finally:
        store.dispose()
    refuse_newer(revision)
    note = "" if revision == SCHEMA_HEAD else f" (this version expects {SCHEMA_HEAD})"
    app_ctx.console.print(f"{revision or 'empty store'}{note}")
