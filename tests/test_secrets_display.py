"""list, show and export never print a literal webhook URL, SMTP/Twilio secret or DB password."""

from __future__ import annotations

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
