"""`alerts test REF`: a TEST notification on every channel against loopback stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.channels.conftest import (
    ALL_SECRETS,
    EMAIL_TO,
    SLACK_PATH,
    SLACK_TOKEN,
    TEAMS_PATH,
    WHATSAPP_TO,
    LoopbackHTTPServer,
    Reply,
    SMTPServer,
    load_card_validator,
    make_tls_material,
    start_slack,
    start_smtp_starttls,
    start_teams,
    start_twilio,
    twilio_environ,
)
from tests.conftest import Cli, dump_store

NAME = "Orders table has rows"


@dataclass
class StandIns:
    smtp: SMTPServer
    slack: LoopbackHTTPServer
    teams: LoopbackHTTPServer
    twilio: LoopbackHTTPServer

    @property
    def environ(self) -> dict[str, str]:
        return {
            **self.smtp.environ,
            **twilio_environ(self.twilio),
            "TEAMS_WEBHOOK_URL": self.teams.url(TEAMS_PATH),
            "ALERTS_HOSTNAME": "test-host",
        }


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[StandIns]:
    controller, smtp = start_smtp_starttls(*make_tls_material(tmp_path))
    servers = StandIns(smtp, start_slack(), start_teams(load_card_validator()), start_twilio())
    yield servers
    controller.stop()
    for server in (servers.slack, servers.teams, servers.twilio):
        server.stop()


@pytest.fixture
def alert(cli: Cli, stand_ins: StandIns) -> str:
    """An alert on all four channels; Teams comes from TEAMS_WEBHOOK_URL (no recipient)."""
    added = cli("datasources", "add", "abc-123", "--name", "Prod", "--url", "sqlite:///prod.db")
    assert added.exit_code == 0, added.output
    created = cli(
        "create",
        "--name",
        NAME,
        "--type",
        "sql",
        "--config",
        "datasource_id=abc-123",
        "--config",
        "query=select 1",
        "--channel",
        "email",
        "--channel",
        "slack",
        "--channel",
        "teams",
        "--channel",
        "whatsapp",
        "--email",
        EMAIL_TO,
        "--slack",
        stand_ins.slack.url(SLACK_PATH),
        "--whatsapp",
        WHATSAPP_TO,
    )
    assert created.exit_code == 0, created.output
    return NAME


def assert_no_secrets(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text


def test_all_four_channels_delivered(
    cli: Cli, alert: str, stand_ins: StandIns, sqlite_url: str
) -> None:
    before = dump_store(sqlite_url)
    result = cli("test", alert, env=stand_ins.environ)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert [line.split()[0] for line in lines] == ["email", "slack", "teams", "whatsapp"]
    assert all(" delivered (" in line for line in lines)
    assert EMAIL_TO in lines[0] and WHATSAPP_TO in lines[3]
    assert f"http://127.0.0.1:{stand_ins.slack.port}/***" in lines[1]
    assert_no_secrets(result.output)

    # Each stand-in got exactly one TEST message, saying it is one.
    (mail,) = stand_ins.smtp.recorder.messages
    assert b"[TEST]" in mail.content
    (slack,) = stand_ins.slack.requests
    assert slack.json()["text"].startswith(f"[TEST] WARNING: {NAME}")
    (teams,) = stand_ins.teams.requests
    assert teams.json()["attachments"][0]["content"]["body"][0]["text"] == f"[TEST] {NAME}"
    (twilio,) = stand_ins.twilio.requests
    body = twilio.form()["Body"]
    assert "[TEST]" in body and "test-host" in body and "nothing is wrong" in body

    # A test changes nothing in the store: no state, trigger count or history.
    assert dump_store(sqlite_url) == before


def test_json_output(cli: Cli, alert: str, stand_ins: StandIns) -> None:
    result = cli("test", alert, "--json", env=stand_ins.environ)
    assert result.exit_code == 0, result.output
    rows = result.json()
    assert [row["channel"] for row in rows] == ["email", "slack", "teams", "whatsapp"]
    for row in rows:
        assert {"channel", "recipient", "status", "error", "duration_ms"} <= set(row)
        assert row["status"] == "delivered"
        assert row["error"] is None
        assert isinstance(row["duration_ms"], int)
    assert rows[2]["recipient"] == "${TEAMS_WEBHOOK_URL}"
    assert SLACK_TOKEN not in rows[1]["recipient"]
    assert_no_secrets(result.stdout)


def test_archived_slack_channel_fails_with_slacks_reason(
    cli: Cli, alert: str, stand_ins: StandIns
) -> None:
    stand_ins.slack.script(Reply(410, "channel_is_archived"))
    result = cli("test", alert, env=stand_ins.environ)
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    (slack_line,) = [line for line in lines if line.startswith("slack")]
    assert "failed" in slack_line
    assert "channel_is_archived" in slack_line
    assert sum(" delivered (" in line for line in lines) == 3  # the others still went out
    assert len(stand_ins.slack.requests) == 1  # permanent: not retried
    assert_no_secrets(result.output)


def test_one_channel_only(cli: Cli, alert: str, stand_ins: StandIns) -> None:
    result = cli("test", alert, "--channel", "whatsapp", env=stand_ins.environ)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("whatsapp")
    assert len(result.stdout.strip().splitlines()) == 1
    assert stand_ins.slack.requests == [] and stand_ins.smtp.recorder.messages == []


def test_missing_settings_are_reported_per_channel(cli: Cli, alert: str) -> None:
    result = cli("test", alert, "--json")
    assert result.exit_code == 1
    errors = {row["channel"]: row["error"] for row in result.json()}
    assert "SMTP_HOST is not set" in errors["email"]
    assert errors["teams"] == "environment variable TEAMS_WEBHOOK_URL is not set"
    assert "TWILIO_ACCOUNT_SID is not set" in errors["whatsapp"]


def test_bad_input_exits_2(cli: Cli, alert: str, stand_ins: StandIns) -> None:
    unknown = cli("test", "no such alert", env=stand_ins.environ)
    assert unknown.exit_code == 2
    not_used = cli("test", alert, "--channel", "pagerduty", env=stand_ins.environ)
    assert not_used.exit_code == 2
    assert "pagerduty" in not_used.stderr
    assert stand_ins.slack.requests == []


def test_a_secret_in_the_description_is_not_sent(
    cli: Cli, stand_ins: StandIns, sqlite_url: str
) -> None:
    """The outbox redacts what evaluate sends; `alerts test` sends without the outbox, through
    the same `deliver`, which masks every known secret in the message (here the very webhook
    and the Teams one pasted into the description and the name)."""
    from datamantri_alerts.secrets import forget_secrets

    slack = stand_ins.slack.url(SLACK_PATH)
    teams = stand_ins.environ["TEAMS_WEBHOOK_URL"]
    added = cli("datasources", "add", "w", "--name", "W", "--url", "sqlite:///prod.db")
    assert added.exit_code == 0, added.output
    created = cli(
        *("create", "--name", f"hook {SLACK_TOKEN}", "--type", "sql"),
        *("--config", "datasource_id=w", "--config", "query=select 1"),
        *("--description", f"post to {slack} or {teams}; runbook https://wiki.example/runbook"),
        *("--channel", "slack", "--slack", slack),
    )
    assert created.exit_code == 0, created.output
    forget_secrets()  # a new process: nothing known until the store is read
    result = cli("test", "1", env=stand_ins.environ)
    assert result.exit_code == 0, result.output
    (request,) = stand_ins.slack.requests
    body = request.body.decode()
    assert_no_secrets(body)
    assert "https://wiki.example/runbook" in body  # a link that is no secret stays
