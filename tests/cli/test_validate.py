"""`alerts validate FILE...`: every problem, one line each with its field path, no store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamantri_alerts.checks import check_types
from tests.conftest import REPO_ROOT, Cli, CliResult, dump_store

EXAMPLE = str(REPO_ROOT / "alerts.yaml.example")

BAD_FILE = """\
datasources:
  - id: db1
    name: DB
    url: ${DB_URL}
  - id: db1
    name: ""
    url: sqlite:///x.db
pipelines:
  - id: p1
    name: P
    runs: {source: sql, datasource_id: missing-ds, query: "select 1"}
alerts:
  - name: fine
    condition_type: pipeline_failure
    condition_config: {pipeline_id: p1}
    channels: [email]
    recipients: {email: [ops@example.com]}
  - name: bad
    condition_type: pipeline_failure
    condition_config: {pipeline_id: p1, check_last_n_runs: 0}
    channels: [email, pager]
    recipients: {email: [a@example.com, not-an-email, also bad]}
    severity: huge
  - name: fine
    condition_type: nope
  - name: dangling
    condition_type: dashboard_failure
    condition_config: {dashboard_id: nowhere}
    pending_evaluations: 0
    channels: [email]
    recipients: {email: [ops@example.com]}
"""

EXPECTED_ERRORS = [
    "datasources[1].name: String should have at least 1 character",
    "datasources[1]: duplicate data source id 'db1'",
    "alerts[1].severity: Input should be 'info', 'warning' or 'critical'",
    "alerts[1].condition_config.check_last_n_runs: Input should be greater than or equal to 1 "
    "(got 0)",
    "alerts[1].channels[1]: unknown channel 'pager' "
    "(known: apprise, email, pagerduty, slack, teams, webhook, whatsapp)",
    "alerts[1].recipients.email[1]: 'not-an-email' is not a valid email address: "
    "An email address must have an @-sign.",
    "alerts[1].recipients.email[2]: 'also bad' is not a valid email address: "
    "An email address must have an @-sign.",
    f"alerts[2].condition_type: unknown alert type 'nope' (known: {', '.join(check_types())})",
    "alerts[2]: duplicate alert name 'fine'",
    "pipelines[0].runs.datasource_id: data source 'missing-ds' does not exist "
    "(add it with `alerts datasources add` or in the YAML file)",
    # A wrong field elsewhere in the alert does not hide its dangling reference.
    "alerts[3].pending_evaluations: Input should be greater than or equal to 1 (got 0)",
    "alerts[3].condition_config.dashboard_id: dashboard 'nowhere' does not exist "
    "(add it with `alerts dashboards add` or in the YAML file)",
]


def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """`alerts ARGS` without the fixture's --db: validate must need no store."""
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exception)


def write(path: Path, data: Any) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return str(path)


def lines(text: str, prefix: str) -> list[str]:
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


def test_every_problem_of_one_file_one_line_each_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path / "alerts.yaml", BAD_FILE)
    result = run("validate", path)
    assert result.exit_code == 2, result.output
    assert result.exception is None
    assert sorted(lines(result.stderr, f"error: {path}: ")) == sorted(EXPECTED_ERRORS)
    assert "Traceback" not in result.output
    assert f"1 file: {len(EXPECTED_ERRORS)} errors" in result.stdout
    # No store was opened, so none was created.
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert not data_home.exists() or not any(data_home.rglob("*.db"))

    as_json = run("validate", path, "--json")
    assert as_json.exit_code == 2
    report = as_json.json()
    assert report["valid"] is False
    assert sorted(f"{e['field']}: {e['message']}" for e in report["errors"]) == sorted(
        EXPECTED_ERRORS
    )
    assert {e["file"] for e in report["errors"]} == {path}


def test_sync_and_create_name_fields_the_way_validate_does(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "alerts.yaml", BAD_FILE)
    synced = cli("sync", path)
    assert synced.exit_code == 2
    # One line, as all bad input, with the same path; validate lists the rest.
    assert synced.stderr.splitlines() == [
        f"error: {EXPECTED_ERRORS[0]} (and 9 more problems); `alerts validate` lists all"
    ]
    assert cli("list", "--json").json() == []

    one = {
        "name": "x",
        "condition_type": "pipeline_failure",
        "condition_config": {"pipeline_id": "p1"},
        "channels": ["email"],
        "recipients": {"email": ["a@example.com", "broken"]},
    }
    created = cli("create", "--from-file", write(tmp_path / "one.yaml", one))
    assert created.exit_code == 2
    assert created.stderr.startswith("error: recipients.email[1]: 'broken' is not a valid email")


def test_a_valid_file_exits_0_and_strict_fails_on_warnings(tmp_path: Path) -> None:
    good = {
        "pipelines": [{"id": "p1", "name": "P"}],
        "alerts": [
            {
                "name": "ok",
                "condition_type": "pipeline_failure",
                "condition_config": {"pipeline_id": "p1"},
                "channels": ["email"],
                "recipients": {"email": ["ops@example.com"]},
            }
        ],
    }
    path = write(tmp_path / "good.yaml", good)
    result = run("validate", path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "1 file: 0 errors, 0 warnings (valid)" in result.stdout
    assert run("validate", path, "--strict").exit_code == 0

    good["alerts"][0]["channels"] = []
    warned = run("validate", write(tmp_path / "warned.yaml", good))
    assert warned.exit_code == 0
    assert run("validate", str(tmp_path / "warned.yaml"), "--strict").exit_code == 1


def test_can_never_notify_warnings(tmp_path: Path) -> None:
    def alert(name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "condition_type": "pipeline_failure",
            "condition_config": {"pipeline_id": "p1"},
            **fields,
        }

    doc = {
        "pipelines": [{"id": "p1", "name": "P"}],
        "alerts": [
            alert("no channel"),
            alert("slack without a webhook", channels=["slack"]),
            alert(
                "email not selected",
                channels=["teams"],
                recipients={"teams": "${TEAMS_HOOK}", "email": ["a@example.com"]},
            ),
            alert(
                "list var",
                channels=["whatsapp"],
                recipients={"whatsapp": ["+14155550100", "${ONCALL_PHONE}"]},
            ),
            alert("fine", channels=["email"], recipients={"email": ["a@example.com"]}),
        ],
    }
    path = write(tmp_path / "w.yaml", doc)
    result = run("validate", path)
    assert result.exit_code == 0, result.output
    assert lines(result.stderr, f"warning: {path}: ") == [
        "alerts[0].channels: no channel is selected: this alert can never notify",
        "alerts[1].recipients.slack: channel slack has no recipients and SLACK_WEBHOOK_URL "
        "is not set",
        "alerts[2].recipients.email: recipients given but channel email is not selected "
        "(add it to channels)",
        "alerts[2].recipients.teams: ${TEAMS_HOOK} is not set in this environment",
        "alerts[3].recipients.whatsapp[1]: ${ONCALL_PHONE} is not set in this environment",
    ]
    assert result.stdout.strip() == "1 file: 0 errors, 5 warnings"
    assert run("validate", path, "--strict").exit_code == 1

    # With the environment set, only the structural warnings stay; no value is printed.
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/sekrit-value",
        "TEAMS_HOOK": "https://example.org/hook-sekrit",
        "ONCALL_PHONE": "+14155550101",
    }
    set_env = run("validate", path, "--json", env=env)
    assert set_env.exit_code == 0
    report = set_env.json()
    assert [(w["field"], w["message"]) for w in report["warnings"]] == [
        ("alerts[0].channels", "no channel is selected: this alert can never notify"),
        (
            "alerts[2].recipients.email",
            "recipients given but channel email is not selected (add it to channels)",
        ),
    ]
    assert "sekrit" not in set_env.output


def test_references_to_a_store_only_with_db(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    doc = {
        "alerts": [
            {
                "name": "uses a stored pipeline",
                "condition_type": "pipeline_failure",
                "condition_config": {"pipeline_id": "stored-p"},
                "channels": ["email"],
                "recipients": {"email": ["a@example.com"]},
            }
        ]
    }
    path = write(tmp_path / "a.yaml", doc)
    alone = run("validate", path)
    assert alone.exit_code == 2
    assert lines(alone.stderr, f"error: {path}: ") == [
        "alerts[0].condition_config.pipeline_id: pipeline 'stored-p' does not exist "
        "(add it with `alerts pipelines add` or in the YAML file)"
    ]
    assert cli("pipelines", "add", "stored-p", "--name", "Stored").exit_code == 0
    before = dump_store(sqlite_url)
    assert run("validate", path, "--db", sqlite_url).exit_code == 0
    assert run("--db", sqlite_url, "validate", path).exit_code == 0
    assert dump_store(sqlite_url) == before


def test_references_across_the_files_given(tmp_path: Path) -> None:
    entities = write(tmp_path / "entities.yaml", {"pipelines": [{"id": "p1", "name": "P"}]})
    alerts = write(
        tmp_path / "alerts.yaml",
        {
            "alerts": [
                {
                    "name": "a",
                    "condition_type": "pipeline_failure",
                    "condition_config": {"pipeline_id": "p1"},
                    "channels": ["email"],
                    "recipients": {"email": ["a@example.com"]},
                }
            ]
        },
    )
    result = run("validate", entities, alerts)
    assert result.exit_code == 0, result.output
    assert "2 files: 0 errors, 0 warnings (valid)" in result.stdout
    assert run("validate", alerts).exit_code == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("alerts: [\n", "malformed YAML at line 2 column 1"),
        ("- just\n- a list\n", "the file must be a mapping"),
        ("alerts: {}\nextra: 1\n", "extra: unknown field"),
    ],
)
def test_unreadable_files_are_one_line_each(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path / "f.yaml", content)
    missing = str(tmp_path / "missing.yaml")
    result = run("validate", path, missing)
    assert result.exit_code == 2
    errors = lines(result.stderr, "error: ")
    assert len(errors) in (2, 3)
    assert any(e.startswith(f"{path}: ") and expected in e for e in errors)
    assert any(e.startswith(f"{missing}: ") and "file not found" in e for e in errors)


def test_renamed_from_must_not_name_another_alert_of_the_file(tmp_path: Path) -> None:
    def alert(name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "condition_type": "pipeline_failure",
            "condition_config": {"pipeline_id": "p1"},
            "channels": ["email"],
            "recipients": {"email": ["a@example.com"]},
            **fields,
        }

    doc = {
        "pipelines": [{"id": "p1", "name": "P"}],
        "alerts": [
            alert("new", renamed_from=["old", "other"]),
            alert("other"),
            alert("third", renamed_from=["old"]),
        ],
    }
    path = write(tmp_path / "r.yaml", doc)
    result = run("validate", path)
    assert result.exit_code == 2
    assert sorted(lines(result.stderr, f"error: {path}: ")) == [
        "alerts[0].renamed_from[1]: 'other' is also an alert of this file",
        "alerts[2].renamed_from[0]: 'old' is named by two alerts",
    ]


def test_the_shipped_example_is_valid() -> None:
    result = run("validate", EXAMPLE, env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"})
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.stdout


def test_db_that_names_no_store_is_refused_and_not_created(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.yaml", {})
    missing = tmp_path / "nowhere.db"
    result = run("validate", path, "--db", f"sqlite:///{missing}")
    assert result.exit_code == 2
    assert result.stderr == f"error: --db: no store at {missing}\n"
    assert not missing.exists()


def test_a_single_alert_file_as_create_takes_it(tmp_path: Path) -> None:
    one = {
        "name": "one",
        "condition_type": "pipeline_failure",
        "condition_config": {"pipeline_id": "p1"},
        "channels": ["email"],
        "recipients": {"email": ["ok@example.com", "broken"]},
    }
    path = write(tmp_path / "one.yaml", one)
    result = run("validate", path)
    assert result.exit_code == 2
    assert lines(result.stderr, f"error: {path}: ") == [
        "recipients.email[1]: 'broken' is not a valid email address: "
        "An email address must have an @-sign.",
        "condition_config.pipeline_id: pipeline 'p1' does not exist "
        "(add it with `alerts pipelines add` or in the YAML file)",
    ]
    one["recipients"]["email"] = ["ok@example.com"]
    entities = write(tmp_path / "entities.yaml", {"pipelines": [{"id": "p1", "name": "P"}]})
    assert run("validate", entities, write(tmp_path / "one.yaml", one)).exit_code == 0
