"""User and data text is shown literally by every command, and reaches the channels escaped.

An alert named `x [/bold] y` (rich markup), one named with an emoji code and an 8-bit CSI,
and query rows holding a markdown link, a code fence and escape sequences go through create,
list, show, evaluate (a real run delivering to a loopback Slack/Teams sink), history and
status: every command exits 0 and prints the text as written, with control characters shown
escaped; the webhook payloads carry it escaped for Slack mrkdwn and Teams markdown.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.evaluator.conftest import Sink, sink

__all__ = ["sink"]

MARKUP_NAME = "x [/bold] y"
# C0 controls (ESC) are refused at input (tests/cli/test_refusals.py); an 8-bit CSI is stored.
EMOJI_NAME = ":thumbsup: [red]r[/red] \x9b31mred\x9b0m"
EMOJI_SHOWN = ":thumbsup: [red]r[/red] \\x9b31mred\\x9b0m"
LINK = "[link](https://evil.example)"
ROWS = [LINK, "```\n*boom* <!here>", "\x1b]0;pwned\x07\x1b[2Jcleared"]


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("create table notes (id integer primary key, note text)")
        db.executemany("insert into notes (note) values (?)", [(row,) for row in ROWS])
    return f"sqlite:///{path}"


def _create(cli: Cli, name: str, sink: Sink, hook: str) -> Any:
    return cli(
        "create",
        "--name",
        name,
        "--description",
        f"description {LINK} [bold]b[/bold]",
        "--type",
        "sql",
        "--config",
        "datasource_id=wh",
        "--config",
        "query=select note from notes order by id",
        "--channel",
        "slack",
        "--channel",
        "teams",
        "--slack",
        sink.hook(f"slack-{hook}"),
        "--teams",
        sink.hook(f"teams-{hook}"),
    )


def _no_raw_escapes(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text, text


def test_markup_and_control_text_through_every_command(
    cli: Cli, sink: Sink, warehouse: str
) -> None:
    added = cli("datasources", "add", "wh", "--name", "W [bold]house", "--url", warehouse)
    assert added.exit_code == 0, added.output

    created = _create(cli, MARKUP_NAME, sink, "markup")
    assert created.exit_code == 0, created.output
    assert f"created alert 1: {MARKUP_NAME}" in created.stdout
    emoji = _create(cli, EMOJI_NAME, sink, "emoji")
    assert emoji.exit_code == 0, emoji.output
    assert f"created alert 2: {EMOJI_SHOWN}" in emoji.stdout
    assert "👍" not in emoji.stdout

    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    assert MARKUP_NAME in listed.stdout and EMOJI_SHOWN in listed.stdout
    assert "👍" not in listed.stdout

    for ref, expected in (("1", MARKUP_NAME), ("2", EMOJI_SHOWN)):
        shown = cli("show", ref)
        assert shown.exit_code == 0, shown.output
        assert expected in shown.stdout
        assert f"description {LINK} [bold]b[/bold]" in shown.stdout

    datasources = cli("datasources", "list")
    assert datasources.exit_code == 0 and "W [bold]house" in datasources.stdout

    dry = cli("evaluate", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert MARKUP_NAME in dry.stdout and EMOJI_SHOWN in dry.stdout

    evaluated = cli("evaluate")
    assert evaluated.exit_code == 0, evaluated.output
    assert MARKUP_NAME in evaluated.stdout and EMOJI_SHOWN in evaluated.stdout
    assert "firing" in evaluated.stdout

    # A later run after it (the reported bug: every run exited 1 after its work).
    again = cli("evaluate", "--all")
    assert again.exit_code == 0, again.output

    history = cli("history")
    assert history.exit_code == 0, history.output
    assert MARKUP_NAME in history.stdout and EMOJI_SHOWN in history.stdout

    episode = cli("history", "--json").json()[0]["id"]
    detail = cli("history", "show", str(episode))
    assert detail.exit_code == 0, detail.output
    assert LINK in detail.stdout
    assert "\\u001b]0;pwned\\u0007\\u001b[2Jcleared" in detail.stdout  # details as JSON

    chart = cli("history", "--alert", "1", "--chart")
    assert chart.exit_code == 0, chart.output
    assert f"{MARKUP_NAME}: triggers per day" in chart.stdout

    status = cli("status")
    assert status.exit_code == 0, status.output

    _no_raw_escapes(
        created.output,
        emoji.output,
        listed.output,
        dry.output,
        evaluated.output,
        history.output,
        detail.output,
        chart.output,
    )


def test_payloads_carry_the_text_escaped(cli: Cli, sink: Sink, warehouse: str) -> None:
    assert cli("datasources", "add", "wh", "--name", "W", "--url", warehouse).exit_code == 0
    assert _create(cli, f"orders {LINK}", sink, "a").exit_code == 0
    result = cli("evaluate")
    assert result.exit_code == 0, result.output

    (card,) = [b["attachments"][0]["content"] for b in sink.bodies("teams-a")]
    # fallbackText is plain text (notifications), not markdown: as written there.
    assert card.pop("fallbackText").startswith(f"[FIRING] WARNING: orders {LINK}")
    card_json = json.dumps(card, ensure_ascii=False)
    assert "orders \\\\[link\\\\]\\\\(https://evil.example\\\\)" in card_json
    assert LINK not in card_json  # neither in the name nor in the rows
    _no_raw_escapes(card_json)

    (slack,) = sink.bodies("slack-a")
    sections = [
        block["text"]["text"]
        for block in slack["attachments"][0]["blocks"]
        if block["type"] == "section" and "text" in block
    ]
    code = [text for text in sections if text.startswith("```")]
    assert code, sections
    for text in code:
        assert "``" not in text[3:-3]  # the fence in the rows does not close the block
    assert "&lt;!here&gt;" in "".join(code) and "<!here>" not in json.dumps(slack)
    _no_raw_escapes(json.dumps(slack, ensure_ascii=False))


def test_json_output_escapes_what_json_leaves_raw(cli: Cli, warehouse: str) -> None:
    """C1 controls (8-bit CSI) and bidi overrides are valid raw in JSON: printed as \\u escapes."""
    assert cli("datasources", "add", "wh", "--name", "W", "--url", warehouse).exit_code == 0
    name = "csi \x9b2J rlo \u202eexe.txt del \x7f"  # C0 (ESC) is refused at input
    created = cli(
        "create", "--name", name, "--type", "sql", "--config", "datasource_id=wh",
        "--config", "query=select 1", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    for result in (created, cli("list", "--json"), cli("show", "1", "--json")):
        assert result.exit_code == 0, result.output
        for raw in ("\x9b", "\u202e", "\x7f"):
            assert raw not in result.stdout
        assert "\\u009b2J" in result.stdout and "\\u202eexe.txt" in result.stdout
        data = result.json()
        names = [a["name"] for a in data] if isinstance(data, list) else [data["name"]]
        assert names == [name]  # the same data, only written safely
