"""Tables fit the terminal: at 80 and 200 columns no line is longer than the terminal, no word
or URL is broken, names are whole, and headers are never split."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamantri_alerts.cli.table import Column, render_table, wrap_words
from tests.conftest import Cli

LONG_NAME = "Warehouse nightly orders load finished late for the finance dashboards"
URL = "https://airflow.example.com/dags/nightly_orders/grid?dag_run_id=scheduled__2026-11-30"
assert len(URL) > 80
ERROR = f"task load_orders failed: upstream file missing, see {URL} for the log of the run"


@pytest.fixture(autouse=True)
def _one_delivery_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliveries here fail (no SMTP, no reachable webhook) and only the tables matter: one
    attempt, not the default three with 1-2 s of backoff (about 4 s per `evaluate`)."""
    monkeypatch.setenv("ALERTS_RETRY_ATTEMPTS", "1")


def _setup(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "pipelines:\n"
        "  - {id: orders, name: Orders}\n"
        "  - {id: short, name: Short}\n"
        "alerts:\n"
        f"  - name: {LONG_NAME}\n"
        f"    description: 'Runbook: {URL} (ask #data-oncall)'\n"
        "    condition_type: pipeline_failure\n"
        "    condition_config: {pipeline_id: orders}\n"
        "    channels: [email, slack, teams]\n"
        "    recipients: {email: [a@example.com], slack: 'https://hooks.slack.com/services/X'}\n"
        "  - name: short one\n"
        "    condition_type: pipeline_failure\n"
        "    condition_config: {pipeline_id: short}\n"
    )
    synced = cli("sync", str(path))
    assert synced.exit_code == 0, synced.output
    recorded = cli("runs", "record", "orders", "--status", "failed", "--error", ERROR)
    assert recorded.exit_code == 0, recorded.output
    assert cli("runs", "record", "short", "--status", "success").exit_code == 0


def _check_fits(text: str, width: int, *texts: str) -> None:
    for line in text.splitlines():
        # Only a single word longer than the terminal (a long URL) may exceed it: whole.
        assert len(line) <= width or len(line.split()) == 1, (width, line)
    tokens = set(text.split())
    for whole in texts:
        for word in whole.split():
            assert word in tokens, (word, text)
    # Nothing cut short with an ellipsis (a lone `…` is history's "pending" mark).
    assert not [token for token in tokens if token.endswith("…") and token != "…"]


@pytest.mark.parametrize("width", [80, 200])
def test_list_fits(cli: Cli, tmp_path: Path, width: int) -> None:
    _setup(cli, tmp_path)
    assert cli("mute", "short one", "--for", "2h").exit_code == 0
    result = cli("list", env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    _check_fits(result.stdout, width, LONG_NAME, URL, "short one")
    header = result.stdout.splitlines()[1].split()
    assert header[:2] == ["ID", "Alert"]
    assert "Status" in header and "State" in header
    if width == 200:
        assert "Type" in header and "Channels" in header and "Triggers" in header
        assert f"{LONG_NAME}  pipeline_failure" in result.stdout  # the name on one line
    else:
        assert "Channels" not in header
    muted = next(line for line in result.stdout.splitlines() if "short one" in line)
    assert "muted until" in muted


@pytest.mark.parametrize("width", [80, 200])
def test_evaluate_fits(cli: Cli, tmp_path: Path, width: int) -> None:
    _setup(cli, tmp_path)
    env = {"COLUMNS": str(width), "SMTP_HOST": "", "SLACK_WEBHOOK_URL": ""}
    dry = cli("evaluate", "--dry-run", "--all", env=env)
    assert dry.exit_code == 0, dry.output
    _check_fits(dry.stdout, width, LONG_NAME, ERROR)
    result = cli("evaluate", "--all", env=env)
    # The deliveries fail (no SMTP, no reachable webhook): exit 1; the table is still shown.
    assert "Outcome" in result.stdout, result.output
    _check_fits(result.stdout, width, LONG_NAME, ERROR)


@pytest.mark.parametrize("width", [80, 200])
def test_status_fits(cli: Cli, tmp_path: Path, width: int) -> None:
    _setup(cli, tmp_path)
    cli("evaluate", "--all", env={"SMTP_HOST": ""})
    result = cli("status", env={"COLUMNS": str(width)})
    _check_fits(result.stdout, width)
    lines = result.stdout.splitlines()
    runs_header = lines[lines.index("recent runs") + 1].split()
    assert runs_header[0] == "Started" and "Duration" in runs_header and "Outcome" in runs_header
    channels_header = lines[lines.index("channels") + 1]
    assert channels_header.split()[0] == "Channel" and "Configuration" in channels_header
    problems = "SMTP_HOST is not set"
    assert problems in " ".join(result.stdout.split())


def test_render_table_wraps_at_spaces_only() -> None:
    columns = [
        Column("ID", align="right"),
        Column("Name", flexible=True),
        Column("Wide", drop=1),
        Column("Note", detail=True),
    ]
    rows = [("1", "alpha beta gamma delta epsilon zeta eta theta", "x" * 30, URL)]
    text = render_table(columns, rows, width=40)
    assert "Wide" not in text  # dropped before the name is squeezed
    # The detail on its own line; a URL too long for the indent starts at the margin, whole.
    assert f"\n{URL}\n" in text
    note = "see the runbook for what to do when this fires"
    short = render_table(columns, [("2", "n", "w", note)], width=40)
    assert short.splitlines()[3:] == ["    see the runbook for what to do when", "    this fires"]
    assert [line.split()[-1] for line in text.splitlines()[2:4]] == ["zeta", "theta"]
    assert wrap_words(URL, 10) == [URL]
    assert wrap_words("a b c", 3) == ["a b", "c"]


@pytest.mark.parametrize("width", [80, 200])
def test_history_and_entity_lists_fit(cli: Cli, tmp_path: Path, width: int) -> None:
    _setup(cli, tmp_path)
    source_url = f"{URL}&token=${{AIRFLOW_TOKEN}}"
    added = cli("datasources", "add", "af", "--name", "Airflow API health", "--url", source_url)
    assert added.exit_code == 0, added.output
    cli("evaluate", "--all", env={"SMTP_HOST": ""})
    env = {"COLUMNS": str(width)}
    history = cli("history", env=env)
    assert history.exit_code == 0, history.output
    _check_fits(history.stdout, width, LONG_NAME)
    episode = history.stdout.splitlines()[2].split()[0]
    shown = cli("history", "show", episode, env=env)
    _check_fits(shown.stdout.split("deliveries")[1], width)
    sources = cli("datasources", "list", env=env)
    # The URL is shown masked (it may carry a token), whole.
    _check_fits(sources.stdout, width, "Airflow API health", "https://airflow.example.com/***")
    pipelines = cli("pipelines", "list", env=env)
    _check_fits(pipelines.stdout, width, "Orders", "Short")
    runs = cli("runs", "list", env=env)
    assert runs.exit_code == 0, runs.output
    _check_fits(runs.stdout, width, "pipeline orders", "task load_orders failed: upstream file")


@pytest.mark.parametrize("width", [80, 200])
def test_sync_plan_fits(cli: Cli, tmp_path: Path, width: int) -> None:
    _setup(cli, tmp_path)
    path = tmp_path / "alerts.yaml"
    changed = path.read_text().replace("(ask #data-oncall)", "(ask #data-platform-oncall)")
    path.write_text(
        changed.replace("{pipeline_id: short}", "{pipeline_id: short, check_last_n_runs: 3}")
    )
    plan = cli("sync", str(path), "--dry-run", env={"COLUMNS": str(width)})
    assert plan.exit_code == 0, plan.output
    _check_fits(
        plan.stdout, width, LONG_NAME, "short one", "condition_config.check_last_n_runs: - -> 3"
    )
    # Each changed field on its own line, under its row.
    assert any(line.strip().startswith("description:") for line in plan.stdout.splitlines())
