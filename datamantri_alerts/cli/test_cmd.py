"""`alerts test REF`: send a TEST notification on each channel and recipient now."""

from __future__ import annotations

from typing import Any

import typer

from datamantri_alerts.cli.context import app_context, data_text, print_json
from datamantri_alerts.cli.options import JSON_OPTION, ONE_CHANNEL_OPTION, REF_ARG


def test(
    ctx: typer.Context,
    ref: str = REF_ARG,
    channel: str | None = ONE_CHANNEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a TEST notification on each channel now; exit 1 if any delivery failed.

    Changes no alert state, trigger count or history.
    """
    from datamantri_alerts.services.alerts import get_alert
    from datamantri_alerts.services.testing import plan_test, run_test

    app = app_context(ctx)
    with app.store.session() as session:
        alert = get_alert(session, ref)
        plan = plan_test(alert, clock=app.clock, host=app.settings.hostname, channel=channel)
    if not as_json and app.err.is_terminal:
        results = _run_with_progress(app, plan)
    else:
        results = run_test(plan)
    if as_json:
        print_json([result.as_json() for result in results])
    else:
        for result in results:
            seconds = result.duration_ms / 1000
            line = data_text(f"{result.channel:<9} {result.recipient_display}  ")
            if result.delivered:
                line.append("delivered", style="green")
            else:
                line.append("failed", style="red")
                line.append_text(data_text(f": {result.error or 'unknown error'}"))
            line.append(f" ({seconds:.1f} s)")
            app.console.print(line, soft_wrap=True)
    if any(not result.delivered for result in results):
        raise typer.Exit(1)


def _run_with_progress(app: Any, plan: Any) -> Any:
    """run_test with a status line on stderr naming the channel and recipient it is waiting
    on, and one line per retry as it happens."""
    from datamantri_alerts.services.testing import run_test

    with app.err.status("starting", spinner="dots") as status:

        def started(channel: str, recipient: str) -> None:
            status.update(data_text(f"waiting on {channel} ({recipient})"))

        def retrying(notice: Any) -> None:
            app.err.print(
                data_text(
                    f"{notice.channel} ({notice.recipient}): attempt {notice.attempt}/"
                    f"{notice.attempts} failed: {notice.reason}; retrying in "
                    f"{notice.wait_seconds:.1f} s"
                ),
                soft_wrap=True,
            )

        return run_test(plan, on_start=started, on_retry=retrying)
