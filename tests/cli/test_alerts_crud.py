"""Managing alerts from the terminal: create, list, show, edit, enable/disable, delete."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Cli

ORIGINAL = REPO_ROOT / "tests" / "fixtures" / "original"


def add_entities(cli: Cli) -> None:
    assert (
        cli("datasources", "add", "abc-123", "--name", "Prod", "--url", "${PROD_DB_URL}").exit_code
        == 0
    )
    result = cli(
        "datasources",
        "add",
        "def-456",
        "--name",
        "Warehouse",
        "--url",
        "sqlite:///warehouse.db",
        "--freshness-table",
        "orders",
        "--freshness-column",
        "loaded_at",
    )
    assert result.exit_code == 0, result.output
    assert cli("pipelines", "add", "xyz-789", "--name", "Nightly ETL").exit_code == 0


def test_original_examples_accepted_verbatim(store_cli: Cli, tmp_path: Path) -> None:
    add_entities(store_cli)
    one = store_cli("create", "--from-file", str(ORIGINAL / "example1.json"))
    assert one.exit_code == 0, one.output
    three = store_cli("create", "--from-file", str(ORIGINAL / "example3.json"))
    assert three.exit_code == 0, three.output

    two = store_cli("create", "--from-file", str(ORIGINAL / "example2.json"))
    assert two.exit_code == 2
    assert "+0987654321" in two.stderr and "recipients.whatsapp" in two.stderr
    assert len(two.stderr.strip().splitlines()) == 1
    assert "Traceback" not in two.output

    fixed = json.loads((ORIGINAL / "example2.json").read_text())
    fixed["recipients"]["whatsapp"][1] = "+14155550100"
    path = tmp_path / "example2-fixed.json"
    path.write_text(json.dumps(fixed))
    two_fixed = store_cli("create", "--from-file", str(path))
    assert two_fixed.exit_code == 0, two_fixed.output
    assert "retired" in two_fixed.stderr.lower() or "workflows" in two_fixed.stderr.lower()

    listed = store_cli("list", "--json").json()
    assert [a["name"] for a in listed] == [
        "Production DB Connection Check",
        "Daily Data Load SLA",
        "ETL Pipeline Failure",
    ]
    by_name = {a["name"]: a for a in listed}
    sla = by_name["Daily Data Load SLA"]
    assert sla["condition_config"] == {
        "datasource_id": "def-456",
        "expected_load_time": "09:00",
        "tolerance_minutes": 30,
    }
    assert sla["severity"] == "critical"
    assert sla["state"] == "ok" and sla["trigger_count"] == 0 and sla["is_active"] is True
    assert by_name["ETL Pipeline Failure"]["recipients"]["whatsapp"] == [
        "+1234567890",
        "+14155550100",
    ]


def test_create_from_flags_then_manage(cli: Cli) -> None:
    add_entities(cli)
    created = cli(
        "create",
        "--name",
        "Nightly ETL failed",
        "--description",
        "ETL must not fail",
        "--type",
        "pipeline_failure",
        "--config",
        "pipeline_id=xyz-789",
        "--config",
        "check_last_n_runs=3",
        "--channel",
        "email",
        "--channel",
        "slack",
        "--email",
        "a@example.com,b@example.com",
        "--slack",
        "${SLACK_WEBHOOK_URL}",
        "--severity",
        "warning",
        "--json",
    )
    assert created.exit_code == 0, created.output
    alert = created.json()
    assert alert["condition_config"] == {"pipeline_id": "xyz-789", "check_last_n_runs": 3}
    assert alert["recipients"] == {
        "email": ["a@example.com", "b@example.com"],
        "slack": "${SLACK_WEBHOOK_URL}",
    }
    assert alert["severity"] == "warning"

    shown = cli("show", str(alert["id"]), "--json").json()
    assert shown["name"] == "Nightly ETL failed"
    assert cli("show", "Nightly ETL failed", "--json").json()["id"] == alert["id"]
    text = cli("show", "Nightly ETL failed").stdout
    assert "pipeline_failure" in text and "xyz-789" in text

    edited = cli(
        "edit", "Nightly ETL failed", "--config", "check_last_n_runs=5", "--repeat-interval", "0"
    )
    assert edited.exit_code == 0, edited.output
    shown = cli("show", str(alert["id"]), "--json").json()
    assert shown["condition_config"]["check_last_n_runs"] == 5
    assert shown["repeat_interval_minutes"] == 0

    assert cli("disable", str(alert["id"])).exit_code == 0
    assert cli("list", "--inactive", "--json").json()[0]["id"] == alert["id"]
    assert cli("list", "--active", "--json").json() == []
    assert cli("enable", str(alert["id"])).exit_code == 0
    assert cli("list", "--active", "--json").json()[0]["is_active"] is True

    assert cli("list", "--search", "must not", "--json").json()[0]["id"] == alert["id"]
    assert cli("list", "--search", "nothing like it", "--json").json() == []
    assert len(cli("list", "--type", "pipeline_failure", "--json").json()) == 1
    assert cli("list", "--type", "sql", "--json").json() == []
    assert len(cli("list", "--channel", "slack", "--json").json()) == 1
    assert cli("list", "--channel", "teams", "--json").json() == []
    assert cli("list", "--state", "ok", "--json").json()[0]["state"] == "ok"
    table = cli("list").stdout
    assert "Nightly ETL failed" in table and "pipeline_failure" in table

    refused = cli("delete", str(alert["id"]))
    assert refused.exit_code == 2  # not a terminal and no --yes
    assert cli("delete", str(alert["id"]), "--yes").exit_code == 0
    assert cli("list", "--json").json() == []


def test_edit_in_editor_validates_before_saving(cli: Cli, tmp_path: Path) -> None:
    add_entities(cli)
    assert cli("create", "--from-file", str(ORIGINAL / "example1.json")).exit_code == 0
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1]); text = p.read_text()\n"
        "assert 'hooks.slack.com/services/YOUR' not in text\n"
        "p.write_text(text.replace('check_interval_minutes: 5', 'check_interval_minutes: 15'))\n"
    )
    editor = f"{sys.executable} {script}"
    result = cli("edit", "Production DB Connection Check", env={"EDITOR": editor})
    assert result.exit_code == 0, result.output
    shown = cli("show", "Production DB Connection Check", "--json").json()
    assert shown["condition_config"]["check_interval_minutes"] == 15
    # The <redacted> webhook in the editor kept the stored value.
    export = cli("export", "--show-secrets").stdout
    assert "https://hooks.slack.com/services/YOUR/WEBHOOK/URL" in export

    bad = tmp_path / "bad_editor.py"
    bad.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('datasource_failure', 'no_such_type'))\n"
    )
    result = cli(
        "edit", "Production DB Connection Check", env={"EDITOR": f"{sys.executable} {bad}"}
    )
    assert result.exit_code == 2
    assert "condition_type" in result.stderr and "no_such_type" in result.stderr
    shown = cli("show", "Production DB Connection Check", "--json").json()
    assert shown["condition_type"] == "datasource_failure"


def test_delete_keeps_or_purges_history(cli: Cli, sqlite_url: str) -> None:
    from datetime import UTC, datetime

    from datamantri_alerts.store.engine import open_store
    from datamantri_alerts.store.models import AlertHistory

    add_entities(cli)
    for path in ("example1.json", "example3.json"):
        assert cli("create", "--from-file", str(ORIGINAL / path)).exit_code == 0
    store = open_store(sqlite_url)
    with store.transaction() as session:
        for alert_id, name in ((1, "Production DB Connection Check"), (2, "Daily Data Load SLA")):
            session.add(
                AlertHistory(
                    alert_id=alert_id,
                    alert_name=name,
                    triggered_at=datetime.now(UTC),
                    severity="critical",
                    notifications_sent=[],
                    notification_errors=[],
                )
            )
    assert cli("delete", "1", "--yes", "--keep-history").exit_code == 0
    assert cli("delete", "2", "--yes", "--purge-history").exit_code == 0
    with store.session() as session:
        rows = session.query(AlertHistory).all()
        assert [(r.alert_id, r.alert_name) for r in rows] == [
            (None, "Production DB Connection Check")
        ]
    store.dispose()


def test_interactive_create(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts fill what the flags left out (driven through the runner's stdin)."""
    from datamantri_alerts.cli import alerts as alert_cli

    add_entities(cli)
    answers = "\n".join(
        [
            "Prompted alert",
            "made by prompts",
            "pipeline_failure",
            "xyz-789",
            "",
            "",
            "",
            "",
            "email",
            "ops@example.com",
            "",
        ]
    )
    monkeypatch.setattr(alert_cli, "stdin_is_terminal", lambda: True)  # the runner has no tty
    result = cli("create", input=answers)
    assert result.exit_code == 0, result.output
    alert = cli("show", "Prompted alert", "--json").json()
    assert alert["condition_config"] == {"pipeline_id": "xyz-789"}
    assert alert["recipients"] == {"email": ["ops@example.com"]}


def test_default_store_is_private_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    db = tmp_path / "xdg" / "datamantri-alerts" / "alerts.db"
    assert db.is_file()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
