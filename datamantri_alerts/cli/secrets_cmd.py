"""`alerts secrets`: encryption at rest of stored secrets."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context

app = typer.Typer(
    help="Encryption at rest of stored secrets (ALERTS_SECRET_KEY, Fernet).", no_args_is_help=True
)


@app.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for ALERTS_SECRET_KEY."""
    from datamantri_alerts.store.crypto import generate_key as make_key

    typer.echo(make_key())


@app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Re-encrypt every stored secret with the first key of ALERTS_SECRET_KEY.

    To rotate: set ALERTS_SECRET_KEY="NEW,OLD", run this, then drop OLD from the variable.
    Plain (unencrypted) secrets are encrypted too.
    """
    from datamantri_alerts.services.secrets_at_rest import rotate_secrets, scrub_sqlite

    app_ctx = app_context(ctx)
    with app_ctx.store.transaction() as session:
        report = rotate_secrets(session)
    scrub_sqlite(app_ctx.store.engine)
    app_ctx.console.print(
        f"re-encrypted {report.rewritten} values "
        f"({report.encrypted_before} were encrypted, {report.plain_before} were plain)"
    )
