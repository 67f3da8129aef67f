"""Recipients of the on-call channels through the CLI: validated, masked in show/list/export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

TOKEN = "oncallTOKENsecret0123456789abcdef"
DOC = {
    "name": "Orders freshness",
    "condition_type": "pipeline_failure",
    "condition_config": {"pipeline_id": "p1"},
    "channels": ["webhook", "pagerduty", "apprise"],
    "recipients": {
        "webhook": [
            f"https://hooks.example.com/in/{TOKEN}",
            {
                "url": f"https://am.example.com/hook/{TOKEN}",
                "secret": "${HOOK_SECRET}",
                "format": "alertmanager",
            },
        ],
        "pagerduty": "${PD_KEY}",
        "apprise": [f"discord://123456789012/{TOKEN}", "${CHAT_URL}"],
    },
}


def write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(doc))
    return path


def test_recipients_saved_and_masked(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "p1", "--name", "Orders").exit_code == 0
    created = cli("create", "--from-file", str(write(tmp_path, DOC)))
    assert created.exit_code == 0, created.output
    shown = cli("show", "Orders freshness", "--json")
    assert shown.exit_code == 0, shown.output
    recipients = shown.json()["recipients"]
    assert recipients["pagerduty"] == "${PD_KEY}"
    assert recipients["apprise"] == ["discord://***", "${CHAT_URL}"]
    assert recipients["webhook"][0] == "https://hooks.example.com/***"
    assert recipients["webhook"][1]["format"] == "alertmanager"
    assert recipients["webhook"][1]["secret"] == "${HOOK_SECRET}"
    outputs = [
        shown.output,
        cli("show", "Orders freshness").output,
        cli("list", "--json").output,
        cli("export").output,
    ]
    for output in outputs:
        assert TOKEN not in output
        assert "123456789012" not in output


@pytest.mark.parametrize(
    ("channel", "value", "problem"),
    [
        ("pagerduty", "R0UTINGkeyLITERAL0123456789", "must be a ${ENV_VAR} reference"),
        ("webhook", {"url": "https://h.example/x", "secret": "lit3ral"}, "${ENV_VAR}"),
        ("apprise", "nosuchservice://abc", "Apprise does not accept"),
    ],
)
def test_bad_recipients_exit_2_and_write_nothing(
    cli: Cli, tmp_path: Path, channel: str, value: object, problem: str
) -> None:
    doc = {**DOC, "channels": [channel], "recipients": {channel: value}}
    result = cli("create", "--from-file", str(write(tmp_path, doc)))
    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert "recipients" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "R0UTINGkeyLITERAL" not in result.output and "lit3ral" not in result.output
    assert cli("list", "--json").json() == []


def test_render_previews_the_three_channels(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "p1", "--name", "Orders").exit_code == 0
    assert cli("create", "--from-file", str(write(tmp_path, DOC))).exit_code == 0
    rendered = cli("render", "Orders freshness", "--json")
    assert rendered.exit_code == 0, rendered.output
    assert TOKEN not in rendered.output and "123456789012" not in rendered.output
    previews = {p["channel"]: p for p in rendered.json()}
    assert set(previews) == {"webhook", "pagerduty", "apprise"}
    webhook = json.dumps(previews["webhook"])
    assert '"version": "4"' in webhook and '"event": "firing"' in webhook
    assert "<routing key>" in json.dumps(previews["pagerduty"])
    assert "failure" in json.dumps(previews["apprise"]) or "warning" in json.dumps(
        previews["apprise"]
    )
