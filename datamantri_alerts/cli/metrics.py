"""`alerts metrics`: the evaluator's Prometheus metrics, read from the store now."""

from __future__ import annotations

import typer

from datamantri_alerts.cli.context import app_context


def metrics(ctx: typer.Context) -> None:
    """Print the Prometheus text format the evaluator writes to ALERTS_METRICS_FILE.

    Runs, checks, alerts by state and severity, notifications by channel and outcome, the
    outbox and the evaluation lag (see README, "Metrics"). Reads the store; changes nothing.
    """
    from datamantri_alerts.services.metrics import current, render

    app = app_context(ctx)
    typer.echo(render(current(app.store, app.clock)), nl=False)
