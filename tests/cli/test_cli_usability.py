"""Filters, muted display, help text, shell completion, `types`, `render` and progress."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from datamantri_alerts import escaping
from datamantri_alerts.cli import app
from datamantri_alerts.cli.helptext import readable_params
from tests.channels.conftest import SLACK_PATH, LoopbackHTTPServer, Reply, start_slack
from tests.conftest import Cli


@pytest.fixture
def slack() -> Any:
    server = start_slack()
    yield server
    server.stop()


def _alerts(
    cli: Cli, tmp_path: Path, slack: str = "https://hooks.slack.com/services/T/B/X"
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "pipelines:\n"
        "  - {id: etl, name: ETL}\n"
        "alerts:\n"
        "  - name: etl failed\n"
        "    description: the nightly load\n"
        "    condition_type: pipeline_failure\n"
        "    condition_config: {pipeline_id: etl}\n"
        "    channels: [slack, email]\n"
        f"    recipients: {{slack: '{slack}', email: [data@example.com]}}\n"
        "  - name: quiet one\n"
        "    condition_type: pipeline_failure\n"
        "    condition_config: {pipeline_id: etl}\n"
    )
    synced = cli("sync", str(path))
    assert synced.exit_code == 0, synced.output


# --------------------------------------------------------------------------- filters, muted


@pytest.mark.parametrize(
    ("option", "value", "valid"),
    [
        ("--state", "bogus", "ok, pending, firing, error"),
        ("--type", "nope", "datasource_failure, pipeline_failure, query_slow"),
        ("--channel", "pager", "apprise, email, pagerduty, slack, teams, webhook, whatsapp"),
    ],
)
def test_unknown_filter_values_are_usage_errors(
    cli: Cli, tmp_path: Path, option: str, value: str, valid: str
) -> None:
    _alerts(cli, tmp_path)
    for extra in ([], ["--json"]):
        result = cli("list", option, value, *extra)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            f"error: {option}: {value!r} is not one of: " + result.stderr.split(": ", 3)[3].strip()
        ]
        assert valid in result.stderr
    # Known values still filter.
    assert [a["name"] for a in cli("list", "--channel", "slack", "--json").json()] == ["etl failed"]


def test_muted_shown_and_filtered(cli: Cli, tmp_path: Path) -> None:
    _alerts(cli, tmp_path)
    assert cli("list", "--muted", "--json").json() == []
    assert cli("mute", "quiet one", "--for", "2h", "--reason", "maintenance").exit_code == 0
    muted = cli("list", "--muted", "--json").json()
    assert [(a["name"], a["muted"]) for a in muted] == [("quiet one", True)]
    table = cli("list", "--muted").stdout
    assert "quiet one" in table and "etl failed" not in table
    assert "muted until" in table
    shown = cli("show", "quiet one")
    assert "muted until" in shown.stdout and "maintenance" in shown.stdout
    as_json = cli("show", "quiet one", "--json").json()
    assert as_json["muted"] is True and as_json["mute_reason"] == "maintenance"
    assert cli("show", "etl failed", "--json").json()["muted"] is False
    # An alert that is inactive says so, muted or not.
    assert cli("disable", "quiet one").exit_code == 0
    assert "inactive" in cli("show", "quiet one").stdout
    assert cli("unmute", "quiet one").exit_code == 0
    assert cli("list", "--muted", "--json").json() == []


# --------------------------------------------------------------------------- help


def _walk(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found.extend(_walk(sub, [*path, name]))
    return found


def test_every_option_has_help_and_a_readable_value_name(cli: Cli) -> None:
    root = get_command(app)
    commands = _walk(root, [])
    for path, command in commands:
        readable_params(command, showing_help=True)
        for param in command.params:
            where = f"alerts {' '.join(path)} {param.name}"
            assert (param.help or "").strip(), f"{where} has no help text"
        text = cli(*path, "--help", env={"COLUMNS": "200"}).stdout
        assert "<" not in text.replace("<redacted>", "").replace("<=", ""), (path, text)
        assert "list[" not in text, path
    create_help = cli("create", "--help", env={"COLUMNS": "200"}).stdout
    assert "pipeline_failure" in create_help and "sla_breach" in create_help  # --type lists
    assert "--config KEY=VALUE" in create_help


def _complete(words: str, env: dict[str, str]) -> list[str]:
    argv = words.split(" ")
    done = subprocess.run(
        [sys.executable, "-c", "from datamantri_alerts.cli import main; main()"],
        env={
            **env,
            "_ALERTS_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(argv) - 1),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


def test_shell_completion(cli: Cli, tmp_path: Path, sqlite_url: str) -> None:
    _alerts(cli, tmp_path)
    assert cli("datasources", "add", "wh", "--name", "W", "--url", "sqlite:///w.db").exit_code == 0
    env = {**os.environ, "ALERTS_DATABASE_URL": sqlite_url}
    assert _complete("alerts show et", env) == ["etl failed"]
    assert _complete("alerts edit ", env) == ["etl failed", "quiet one"]
    assert _complete("alerts test 2", env) == ["2"]  # a number completes ids
    for words in ("alerts mute q", "alerts evaluate --alert q", "alerts history --alert q"):
        assert _complete(words, env) == ["quiet one"], words
    assert _complete("alerts list --state f", env) == ["firing"]
    assert _complete("alerts list --type pipe", env) == ["pipeline_failure"]
    assert _complete("alerts list --channel s", env) == ["slack"]
    assert _complete("alerts pipelines edit ", env) == ["etl"]
    assert _complete("alerts datasources check ", env) == ["wh"]
    assert _complete("alerts render etl --event re", env) == ["repeat", "resolved"]
    # With --db given on the line, that store is the one completed from.
    other = {**os.environ, "ALERTS_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}
    assert _complete(f"alerts --db {sqlite_url} pipelines show ", other) == ["etl"]
    # A store that cannot be opened completes nothing, silently.
    assert _complete("alerts show ", other) == []


# --------------------------------------------------------------------------- types, render


def test_types_from_the_config_models(cli: Cli) -> None:
    result = cli("types", "--json")
    assert result.exit_code == 0, result.output
    by_name = {entry["name"]: entry for entry in result.json()}
    assert {"datasource_failure", "pipeline_failure", "sql", "sla_breach"} <= set(by_name)
    sql = {key["name"]: key for key in by_name["sql"]["config"]}
    assert sql["query"]["required"] is True and sql["query"]["type"] == "string"
    assert sql["max_rows"] == {
        "name": "max_rows",
        "type": "integer",
        "required": False,
        "default": 20,
        "bounds": [">= 1", "<= 1000"],
        "description": "",
    }
    assert by_name["sql"]["default_severity"] in ("info", "warning", "critical")
    assert by_name["sql"]["description"]
    text = cli("types", env={"COLUMNS": "80"}).stdout
    assert "sql: " in text and "max_rows" in text and "default 20" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_types_include_plugins(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    dist = plugin / "marker_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: marker-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[datamantri_alerts.checks]\nmarker_file = marker_checks:MarkerFileCheck\n"
    )
    (plugin / "marker_checks.py").write_text(
        "from typing import ClassVar\n"
        "from pydantic import Field\n"
        "from datamantri_alerts.checks.base import CheckConfig, Outcome\n"
        "class MarkerFileConfig(CheckConfig):\n"
        "    path: str = Field(description='The marker file to look for')\n"
        "class MarkerFileCheck:\n"
        "    type_name: ClassVar[str] = 'marker_file'\n"
        "    config_model: ClassVar[type] = MarkerFileConfig\n"
        "    default_severity: ClassVar[str] = 'warning'\n"
        "    description: ClassVar[str] = 'A marker file says a job is stuck'\n"
        "    def evaluate(self, config, ctx):\n"
        "        return Outcome.ok('absent')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", "--db", f"sqlite:///{tmp_path}/a.db",
         "types", "--json"],
        env={**os.environ, "PYTHONPATH": str(plugin)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    marker = next(e for e in json.loads(done.stdout) if e["name"] == "marker_file")
    assert marker["description"] == "A marker file says a job is stuck"
    path_key = next(k for k in marker["config"] if k["name"] == "path")
    assert path_key["required"] and path_key["description"] == "The marker file to look for"


def test_render_prints_what_a_send_would_send(
    cli: Cli, tmp_path: Path, slack: LoopbackHTTPServer
) -> None:
    _alerts(cli, tmp_path, slack=slack.url(SLACK_PATH))
    rendered = cli("render", "etl failed", "--channel", "slack", "--json")
    assert rendered.exit_code == 0, rendered.output
    [preview] = rendered.json()
    assert preview["channel"] == "slack"
    assert "hooks" not in json.dumps(preview["recipients"]) or "***" in preview["recipients"][0]
    payload = preview["content"]["payload"]
    # Exactly what `alerts test` posts is built by the same code: compare shapes.
    assert cli("test", "etl failed", "--channel", "slack").exit_code == 0
    [posted] = [request.json() for request in slack.requests]
    assert (
        set(payload) == set(posted)
        and payload["attachments"][0]["blocks"][0]["type"]
        == (posted["attachments"][0]["blocks"][0]["type"])
    )
    assert "etl failed" in payload["text"]
    assert len(slack.requests) == 1  # render itself sent nothing

    resolved = cli("render", "etl failed", "--event", "resolved", "--channel", "email")
    assert resolved.exit_code == 0, resolved.output
    assert "--- subject" in resolved.stdout and "[RESOLVED]" in resolved.stdout
    assert "SMTP_HOST is not set" in resolved.stdout  # said, and rendered anyway
    bad = cli("render", "etl failed", "--event", "exploded")
    assert (
        bad.exit_code == 2
        and "--event" in bad.stderr
        and "firing, repeat, resolved" in (bad.stderr)
    )
    assert cli("render", "etl failed", "--channel", "teams").exit_code == 2
    assert cli("render", "quiet one").exit_code == 2  # no channels


# --------------------------------------------------------------------------- progress


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run alerts with stderr on a pseudo-terminal (stdout piped); (code, stdout, stderr)."""
    leader, follower = pty.openpty()
    done = subprocess.Popen(
        [sys.executable, "-m", "datamantri_alerts", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env={**env, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = done.stdout.read().decode() if done.stdout else ""
    code = done.wait(timeout=120)
    os.close(leader)
    return code, stdout, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_only(
    cli: Cli, tmp_path: Path, sqlite_url: str, slack: LoopbackHTTPServer
) -> None:
    _alerts(cli, tmp_path, slack=slack.url(SLACK_PATH))
    env = {**os.environ, "ALERTS_DATABASE_URL": sqlite_url, "ALERTS_RETRY_INITIAL_DELAY": "0.01"}
    slack.script(Reply(503, "busy"))
    code, stdout, stderr = _on_a_terminal(["test", "etl failed", "--channel", "slack"], env)
    assert code == 0, (stdout, stderr)
    assert "waiting on slack" in stderr
    assert "attempt 1/3 failed" in stderr and "retrying in" in stderr
    assert "delivered" in stdout
    code, stdout, stderr = _on_a_terminal(
        ["test", "etl failed", "--channel", "slack", "--json"], env
    )
    assert "waiting on" not in stderr and json.loads(stdout)[0]["status"] == "delivered"

    assert cli("runs", "record", "etl", "--status", "success").exit_code == 0
    code, stdout, stderr = _on_a_terminal(["evaluate", "--all"], env)
    assert "checking" in stderr or "delivering" in stderr, stderr
    code, stdout, stderr = _on_a_terminal(["evaluate", "--all", "--quiet"], env)
    assert "checking" not in stderr and "delivering" not in stderr
    code, stdout, stderr = _on_a_terminal(["evaluate", "--all", "--json"], env)
    assert "checking" not in stderr and json.loads(stdout)


def test_render_teams_and_whatsapp(cli: Cli, tmp_path: Path) -> None:
    assert cli("pipelines", "add", "etl", "--name", "ETL").exit_code == 0
    created = cli(
        "create", "--name", "etl *late*", "--type", "pipeline_failure",
        "--config", "pipeline_id=etl", "--channel", "teams", "--channel", "whatsapp",
        "--teams", "https://example.webhook.office.com/workflows/abc?sig=s3cr3t",
        "--whatsapp", "+14155550100",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    rendered = cli("render", "etl *late*", "--event", "repeat", "--json")
    assert rendered.exit_code == 0, rendered.output
    by_channel = {p["channel"]: p for p in rendered.json()}
    teams = by_channel["teams"]
    assert "s3cr3t" not in json.dumps(teams)  # the webhook is shown masked
    card = teams["content"]["payload"]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    whatsapp = by_channel["whatsapp"]
    assert whatsapp["recipients"] == ["+14155550100"]
    body = whatsapp["content"]["body"]
    # The name is data: its `*` cannot make WhatsApp bold (escaped as a send escapes it).
    assert escaping.whatsapp("etl *late*") in body and "etl *late*" not in body
    assert "TWILIO_ACCOUNT_SID is not set" in whatsapp["note"]
    text = cli("render", "etl *late*", "--channel", "whatsapp").stdout
    assert text.startswith("=== whatsapp to +14155550100") and "--- body" in text


def test_sync_of_a_large_file_says_what_it_is_doing_on_a_terminal_only(
    tmp_path: Path, sqlite_url: str
) -> None:
    alerts = "\n".join(
        f"  - {{name: a{i}, condition_type: pipeline_failure,"
        f" condition_config: {{pipeline_id: p}}, channels: []}}"
        for i in range(60)
    )
    doc = tmp_path / "big.yaml"
    doc.write_text("pipelines:\n  - {id: p, name: P}\nalerts:\n" + alerts + "\n")
    env = {**os.environ, "ALERTS_DATABASE_URL": sqlite_url}
    code, stdout, stderr = _on_a_terminal(["sync", str(doc)], env)
    assert code == 0, (stdout, stderr)
    assert "planning 61 items from big.yaml" in stderr and "applying 61 changes" in stderr
    assert "applied: 61 create" in stdout
    code, stdout, stderr = _on_a_terminal(["sync", str(doc), "--json"], env)
    assert code == 0 and "planning" not in stderr and json.loads(stdout)
    piped = subprocess.run(
        [sys.executable, "-m", "datamantri_alerts", "sync", str(doc)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert piped.returncode == 0 and "planning" not in piped.stderr
