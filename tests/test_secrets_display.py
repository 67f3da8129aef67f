"""list, show and export never print a literal webhook URL, SMTP/Twilio secret or DB password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli

SLACK = "https://hooks.slack.com/services/T000/B000/slack-canary-TOKEN"
TEAMS = "https://example.webhook.office.com/webhookb2/teams-canary-TOKEN"
DB = "postgresql://monitor:db-canary-PASSWORD@db.internal/prod"
CANARIES = (
    "slack-canary-TOKEN",
    "teams-canary-TOKEN",
    "db-canary-PASSWORD",
    "smtp-canary-PASSWORD",
    "twilio-canary-TOKEN",
)


def test_no_secret_in_list_show_export(cli: Cli, tmp_path: Path) -> None:
    env = {"SMTP_PASSWORD": "smtp-canary-PASSWORD", "TWILIO_AUTH_TOKEN": "twilio-canary-TOKEN"}
    (tmp_path / "secrets.env").write_text(
        "SMTP_PASSWORD=smtp-canary-PASSWORD\nTWILIO_AUTH_TOKEN=twilio-canary-TOKEN\n"
    )
    assert cli("datasources", "add", "w", "--name", "W", "--url", DB).exit_code == 0
    created = cli(
        "--env-file",
        str(tmp_path / "secrets.env"),
        "-v",
        "create",
        "--name",
        "Secretive",
        "--type",
        "sql",
        "--config",
        "datasource_id=w",
        "--config",
        "query=select 1",
        "--channel",
        "slack",
        "--channel",
        "teams",
        "--slack",
        SLACK,
        "--teams",
        TEAMS,
        env=env,
    )
    assert created.exit_code == 0, created.output
    outputs = [created.output]
    for args in (
        ["list"],
        ["list", "--json"],
        ["show", "Secretive"],
        ["show", "1", "--json"],
        ["export"],
        ["datasources", "list"],
        ["datasources", "list", "--json"],
    ):
        result = cli("-v", *args, env=env)
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    joined = "\n".join(outputs)
    for canary in CANARIES:
        assert canary not in joined, canary
    shown = cli("show", "1", "--json").json()
    assert shown["recipients"]["slack"].startswith("https://hooks.slack.com/")
    assert shown["recipients"]["slack"].endswith("***")


def test_a_webhook_pasted_into_a_description_is_masked_by_every_command(tmp_path: Path) -> None:
    """Each command is a new process: `list` reads no recipients, yet the redactor knows every
    stored secret before the first line is written (the store's secret columns are read when
    it is opened). A password with `@` in a URL is masked whole."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    weird = "postgresql://monitor:p@ss:db-canary-PASSWORD@db.internal/prod"

    def alerts(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_"))}
        done = subprocess.run(
            [sys.executable, "-m", "datamantri_alerts", "--db", db, *args],
            capture_output=True,
            text=True,
            env={**env, "XDG_DATA_HOME": str(tmp_path), "COLUMNS": "200"},
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    alerts("datasources", "add", "w", "--name", "W", "--url", DB)
    alerts(
        *("create", "--name", "Hooked", "--type", "sql", "--config", "datasource_id=w"),
        *("--config", "query=select 1", "--channel", "slack", "--slack", SLACK),
        *("--description", f"hook {SLACK}; db {weird}; see https://wiki.example/runbook"),
    )
    for args in (["list"], ["list", "--json"], ["show", "1"], ["show", "1", "--json"]):
        output = alerts(*args)
        assert "Hooked" in output
        for canary in CANARIES:
            assert canary not in output, (args, output)
        assert "ss:db-canary" not in output and "p@ss" not in output
        assert "https://wiki.example/runbook" in output
