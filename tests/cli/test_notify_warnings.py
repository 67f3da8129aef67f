"""Alerts that can never notify: `create` and `edit` warn, `status` lists them."""

from __future__ import annotations

from tests.conftest import Cli


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def add_pipeline(cli: Cli) -> None:
    assert cli("pipelines", "add", "p1", "--name", "P").exit_code == 0


def test_create_with_email_but_no_channel_warns(cli: Cli) -> None:
    add_pipeline(cli)
    result = cli(
        "create",
        "--name",
        "silent",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=p1",
        "--email",
        "a@example.com",
    )
    assert result.exit_code == 0, result.output
    assert warnings_of(result.stderr) == [
        "warning: channels: no channel is selected: this alert can never notify",
        "warning: recipients.email: recipients given but channel email is not selected "
        "(add it to channels)",
    ]
    # Still created (a warning, not an error): a team may add a channel later.
    assert [a["name"] for a in cli("list", "--json").json()] == ["silent"]

    fine = cli(
        "create",
        "--name",
        "heard",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=p1",
        "--channel",
        "email",
        "--email",
        "a@example.com",
    )
    assert fine.exit_code == 0 and fine.stderr == ""


def test_create_and_edit_warn_about_unset_fallbacks_and_variables(cli: Cli) -> None:
    add_pipeline(cli)
    base = ("--type", "pipeline_failure", "--config", "pipeline_id=p1")
    created = cli("create", "--name", "s", *base, "--channel", "slack")
    assert created.exit_code == 0
    assert warnings_of(created.stderr) == [
        "warning: recipients.slack: channel slack has no recipients and SLACK_WEBHOOK_URL "
        "is not set"
    ]
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/fallback-canary"}
    assert cli("create", "--name", "s2", *base, "--channel", "slack", env=env).stderr == ""

    edited = cli("edit", "s", "--channel", "teams", "--teams", "${TEAMS_HOOK}")
    assert edited.exit_code == 0, edited.output
    assert warnings_of(edited.stderr) == [
        "warning: recipients.teams: ${TEAMS_HOOK} is not set in this environment"
    ]
    set_env = cli("edit", "s", "--description", "d", env={"TEAMS_HOOK": "https://x.example/h"})
    assert set_env.exit_code == 0 and warnings_of(set_env.stderr) == []


def test_status_lists_alerts_that_cannot_notify(cli: Cli) -> None:
    add_pipeline(cli)
    base = ("--type", "pipeline_failure", "--config", "pipeline_id=p1")
    assert cli("create", "--name", "nobody", *base).exit_code == 0
    assert cli("create", "--name", "slacky", *base, "--channel", "slack").exit_code == 0
    assert (
        cli("create", "--name", "ok", *base, "--channel", "email", "--email", "a@example.com")
    ).exit_code == 0
    assert cli("create", "--name", "off", *base, "--inactive").exit_code == 0

    report = cli("status", "--json").json()
    assert report["cannot_notify"] == [
        {
            "id": 1,
            "name": "nobody",
            "problems": ["channels: no channel is selected: this alert can never notify"],
        },
        {
            "id": 2,
            "name": "slacky",
            "problems": [
                "recipients.slack: channel slack has no recipients and SLACK_WEBHOOK_URL is not set"
            ],
        },
    ]
    text = cli("status")
    assert "warning: alert 1 'nobody' cannot notify: channels: no channel is selected" in (
        text.stderr
    )
    assert "warning: alert 2 'slacky' cannot notify: recipients.slack:" in text.stderr
    assert "'off'" not in text.stderr and "'ok'" not in text.stderr

    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/status-canary"}
    with_env = cli("status", "--json", env=env)
    assert [a["name"] for a in with_env.json()["cannot_notify"]] == ["nobody"]
    assert "canary" not in with_env.output
