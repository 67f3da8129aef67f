"""A channel's own warning (a retired Teams connector URL) names its field like every other
warning and error: `alerts[1].recipients.teams`, not `alerts[1]: teams: ...`."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_validate import run
from tests.conftest import Cli

LEGACY = "https://outlook.office.com/webhook/abc/IncomingWebhook/def/ghi"
HINT = "this is a legacy Office 365 connector URL; Microsoft has retired Office 365 connectors"
FILE = f"""
pipelines:
  - {{id: p1, name: P}}
alerts:
  - name: fine
    condition_type: pipeline_failure
    condition_config: {{pipeline_id: p1}}
    channels: [email]
    recipients: {{email: [a@example.com]}}
  - name: legacy teams
    condition_type: pipeline_failure
    condition_config: {{pipeline_id: p1}}
    channels: [teams]
    recipients: {{teams: "{LEGACY}"}}
"""
ONE_ALERT = f"""
name: legacy teams
condition_type: pipeline_failure
condition_config: {{pipeline_id: p1}}
channels: [teams]
recipients: {{teams: "{LEGACY}"}}
"""


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_validate_names_the_recipient_field(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(FILE)
    report = run("validate", "--json", str(path))
    assert report.exit_code == 0, report.output
    (warning,) = report.json()["warnings"]
    assert warning["field"] == "alerts[1].recipients.teams"
    assert warning["message"].startswith(HINT)

    text = run("validate", str(path))
    assert text.exit_code == 0
    assert f"warning: {path}: alerts[1].recipients.teams: {HINT}" in text.output


def test_validate_of_one_alert_file_names_the_field_relative_to_it(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "alert.yaml"
    path.write_text(ONE_ALERT)
    (warning,) = run("validate", "--json", str(path)).json()["warnings"]
    assert warning["field"] == "recipients.teams"


def test_sync_and_create_name_the_recipient_field(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(FILE)
    synced = cli("sync", str(path))
    assert synced.exit_code == 0, synced.output
    assert [w.split(": ", 2)[:2] for w in warnings_of(synced.stderr)] == [
        ["warning", "alerts[1].recipients.teams"]
    ]
    created = cli(
        "create",
        "--name",
        "again",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=p1",
        "--channel",
        "teams",
        "--teams",
        LEGACY,
    )
    assert created.exit_code == 0, created.output
    assert warnings_of(created.stderr) == [
        f"warning: recipients.teams: {HINT} in Teams. "
        "Create a Workflows webhook instead: in the Teams channel choose ... > Workflows > "
        "'Post to a channel when a webhook request is received', and use the URL it gives you."
    ]
