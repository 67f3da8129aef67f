"""`alerts sync` as plan and apply: field diffs, prune confirmation, --exit-code, renames."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamantri_alerts.cli import alerts as alert_cli
from tests.conftest import Cli, dump_store

SLACK_OLD = "https://hooks.slack.com/services/T1/B1/old-token-canary"
SLACK_NEW = "https://hooks.slack.com/services/T1/B1/new-token-canary"

BASE: dict[str, Any] = {
    "datasources": [
        {"id": "db1", "name": "DB", "url": "postgresql://mon:pw-one-canary@db.internal/prod"}
    ],
    "pipelines": [{"id": "p1", "name": "P"}],
    "alerts": [
        {
            "name": "A",
            "condition_type": "pipeline_failure",
            "condition_config": {"pipeline_id": "p1"},
            "channels": ["slack", "email"],
            "recipients": {"slack": SLACK_OLD, "email": ["a@example.com"]},
        },
        {
            "name": "Gone",
            "condition_type": "pipeline_failure",
            "condition_config": {"pipeline_id": "p1"},
            "channels": ["email"],
            "recipients": {"email": ["a@example.com"]},
        },
    ],
}


def changed() -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["datasources"][0]["url"] = "postgresql://mon:pw-two-canary@db.internal/prod"
    doc["alerts"] = [copy.deepcopy(BASE["alerts"][0])]
    alert = doc["alerts"][0]
    alert["condition_config"]["check_last_n_runs"] = 3
    alert["recipients"] = {"slack": SLACK_NEW, "email": ["a@example.com", "c@example.com"]}
    alert["description"] = "now described"
    return doc


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture
def synced(store_cli: Cli, tmp_path: Path) -> Cli:
    result = store_cli("sync", write(tmp_path / "base.yaml", BASE))
    assert result.exit_code == 0, result.output
    return store_cli


def test_plan_shows_each_changed_field_old_to_new_with_secrets_masked(
    synced: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path / "changed.yaml", changed())
    table = synced("sync", path, "--dry-run", env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    out = table.stdout
    for line in (
        "url: postgresql://mon:***@db.internal/prod -> postgresql://mon:***@db.internal/prod "
        "(changed)",
        'description: "" -> now described',
        "condition_config.check_last_n_runs: - -> 3",
        "recipients.slack: https://hooks.slack.com/*** -> https://hooks.slack.com/*** (changed)",
        'recipients.email: ["a@example.com"] -> ["a@example.com", "c@example.com"]',
        "not in file (kept; --prune deletes)",
        "would apply: 2 update, 1 unchanged; 1 not in file (kept)",
    ):
        assert line in out, (line, out)
    assert "canary" not in table.output

    plan = synced("sync", path, "--dry-run", "--json").json()
    assert "canary" not in str(plan)
    assert plan["applied"] is False
    by_name = {(c["kind"], c["name"]): c for c in plan["changes"]}
    assert set(by_name[("alert", "A")]) >= {"kind", "name", "action"}  # the SPEC keys stay
    assert by_name[("alert", "A")]["action"] == "update"
    assert by_name[("alert", "A")]["fields"] == ["description", "condition_config", "recipients"]
    assert by_name[("alert", "A")]["diff"] == [
        {"field": "description", "old": "", "new": "now described", "secret": False},
        {"field": "condition_config.check_last_n_runs", "old": None, "new": 3, "secret": False},
        {
            "field": "recipients.slack",
            "old": "https://hooks.slack.com/***",
            "new": "https://hooks.slack.com/***",
            "secret": True,
        },
        {
            "field": "recipients.email",
            "old": ["a@example.com"],
            "new": ["a@example.com", "c@example.com"],
            "secret": False,
        },
    ]
    assert by_name[("datasource", "db1")]["diff"] == [
        {
            "field": "url",
            "old": "postgresql://mon:***@db.internal/prod",
            "new": "postgresql://mon:***@db.internal/prod",
            "secret": True,
        }
    ]
    assert by_name[("pipeline", "p1")] == {
        "kind": "pipeline",
        "name": "p1",
        "action": "unchanged",
        "fields": [],
        "diff": [],
    }
    assert plan["not_in_file"] == [
        {"kind": "alert", "name": "Gone", "note": "not in file (kept; --prune deletes)"}
    ]


def test_an_env_reference_is_shown_as_written(synced: Cli, tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["alerts"][0]["recipients"]["slack"] = "${TEAM_SLACK}"
    plan = synced("sync", write(tmp_path / "env.yaml", doc), "--dry-run", "--json").json()
    diff = next(c for c in plan["changes"] if c["name"] == "A")["diff"]
    assert diff == [
        {
            "field": "recipients.slack",
            "old": "https://hooks.slack.com/***",
            "new": "${TEAM_SLACK}",
            "secret": True,
        }
    ]


def test_prune_needs_yes_off_a_terminal_and_asks_on_one(
    synced: Cli, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = write(tmp_path / "empty.yaml", {})
    before = dump_store(store_url)
    refused = synced("sync", empty, "--prune")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "error: --prune: would delete 4 items; confirm on a terminal or pass --yes "
        "(nothing was changed)"
    ]
    assert dump_store(store_url) == before
    # A dry run shows the deletions without asking.
    dry = synced("sync", empty, "--prune", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.count("delete") >= 4

    monkeypatch.setattr(alert_cli, "stdin_is_terminal", lambda: True)  # the runner has no tty
    declined = synced("sync", empty, "--prune", input="n\n")
    assert declined.exit_code == 1
    assert "Delete alert A, alert Gone, pipeline p1, datasource db1?" in declined.stdout
    assert "nothing changed" in declined.stderr
    assert dump_store(store_url) == before

    # --json prints JSON only, so it never asks: deletions need --yes.
    as_json = synced("sync", empty, "--prune", "--json", input="y\n")
    assert as_json.exit_code == 2 and as_json.stdout == ""
    assert "pass --yes with --json" in as_json.stderr
    assert dump_store(store_url) == before

    accepted = synced("sync", empty, "--prune", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "applied: 4 delete" in accepted.stdout
    assert synced("list", "--json").json() == []


def test_prune_with_yes_does_not_ask(synced: Cli, tmp_path: Path) -> None:
    result = synced("sync", write(tmp_path / "empty.yaml", {}), "--prune", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert [c["action"] for c in result.json()["changes"]] == ["delete"] * 4


def test_exit_code_tells_ci_about_drift(synced: Cli, tmp_path: Path, store_url: str) -> None:
    same = write(tmp_path / "same.yaml", BASE)
    assert synced("sync", same, "--dry-run", "--exit-code").exit_code == 0
    drift = write(tmp_path / "drift.yaml", changed())
    before = dump_store(store_url)
    assert synced("sync", drift, "--dry-run").exit_code == 0
    result = synced("sync", drift, "--dry-run", "--exit-code", "--json")
    assert result.exit_code == 3
    assert result.json()["applied"] is False
    assert dump_store(store_url) == before
    # Store items the file lacks are not drift the file can fix without --prune.
    only_a = copy.deepcopy(BASE)
    only_a["alerts"] = only_a["alerts"][:1]
    assert (
        synced("sync", write(tmp_path / "a.yaml", only_a), "--dry-run", "--exit-code").exit_code
        == 0
    )
    # Bad input is still 2, not 3.
    bad = copy.deepcopy(BASE)
    bad["alerts"][0]["severity"] = "huge"
    assert (
        synced("sync", write(tmp_path / "bad.yaml", bad), "--dry-run", "--exit-code").exit_code == 2
    )


def test_rename_keeps_the_stored_alert_and_its_history(
    synced: Cli, tmp_path: Path, store_url: str
) -> None:
    doc = copy.deepcopy(BASE)
    for alert in doc["alerts"]:  # no delivery in this test: nothing leaves the machine
        alert["channels"], alert["recipients"] = [], {}
    assert synced("sync", write(tmp_path / "quiet.yaml", doc)).exit_code == 0
    assert synced("runs", "record", "p1", "--status", "failed").exit_code == 0
    assert synced("evaluate", "--all", "--quiet").exit_code in (0, 1)
    before = {a["name"]: a for a in synced("list", "--json").json()}
    assert before["A"]["state"] == "firing"
    episodes = synced("history", "--alert", "A", "--json").json()
    assert len(episodes) == 1

    renamed = copy.deepcopy(doc)
    renamed["alerts"][0]["name"] = "A renamed"
    renamed["alerts"][0]["renamed_from"] = ["A"]
    path = write(tmp_path / "renamed.yaml", renamed)
    plan = synced("sync", path, "--dry-run", "--json").json()
    change = next(c for c in plan["changes"] if c["kind"] == "alert" and c["action"] != "unchanged")
    assert change["name"] == "A renamed" and change["renamed_from"] == "A"
    assert change["diff"] == [{"field": "name", "old": "A", "new": "A renamed", "secret": False}]
    table = synced("sync", path, "--prune", "--yes", env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "renamed from 'A' (history kept)" in table.stdout
    assert "delete" not in table.stdout

    after = {a["name"]: a for a in synced("list", "--json").json()}
    assert set(after) == {"A renamed", "Gone"}
    assert after["A renamed"]["id"] == before["A"]["id"]
    assert after["A renamed"]["state"] == "firing"
    assert after["A renamed"]["trigger_count"] == before["A"]["trigger_count"]
    kept = synced("history", "--alert", "A renamed", "--json").json()
    assert [e["id"] for e in kept] == [e["id"] for e in episodes]
    # Syncing the same file again is a no-op; renamed_from may stay in the file.
    again = synced("sync", path, "--dry-run", "--exit-code")
    assert again.exit_code == 0, again.output


def test_rename_without_renamed_from_is_create_and_names_the_old_alert(
    synced: Cli, tmp_path: Path
) -> None:
    doc = copy.deepcopy(BASE)
    doc["alerts"][0]["name"] = "A2"
    plan = synced("sync", write(tmp_path / "r.yaml", doc), "--dry-run", "--json").json()
    actions = {(c["kind"], c["name"]): c["action"] for c in plan["changes"]}
    assert actions[("alert", "A2")] == "create"
    assert {"kind": "alert", "name": "A", "note": "not in file (kept; --prune deletes)"} in plan[
        "not_in_file"
    ]


def test_sync_prints_the_warnings_with_file_paths(cli: Cli, tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["alerts"][1]["channels"] = []
    doc["alerts"][0]["channels"] = ["slack"]
    doc["alerts"][0]["recipients"] = {"slack": "${TEAM_SLACK}"}
    result = cli("sync", write(tmp_path / "w.yaml", doc))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: alerts[0].recipients.slack: ${TEAM_SLACK} is not set in this environment",
        "warning: alerts[1].channels: no channel is selected: this alert can never notify",
        "warning: alerts[1].recipients.email: recipients given but channel email is not "
        "selected (add it to channels)",
    ]
    quiet = cli("sync", str(tmp_path / "w.yaml"), env={"TEAM_SLACK": "https://example.org/x"})
    assert quiet.stderr.count("warning: ") == 2


def test_a_stable_key_survives_renames_without_renamed_from(
    synced: Cli, tmp_path: Path, store_url: str
) -> None:
    doc = copy.deepcopy(BASE)
    doc["alerts"][0]["key"] = "etl-failure"
    keyed = synced("sync", write(tmp_path / "keyed.yaml", doc), "--json").json()
    change = next(c for c in keyed["changes"] if c["name"] == "A")
    assert change["diff"] == [{"field": "key", "old": None, "new": "etl-failure", "secret": False}]
    alert_id = {a["name"]: a["id"] for a in synced("list", "--json").json()}["A"]
    assert synced("show", "A", "--json").json()["key"] == "etl-failure"
    assert "key: etl-failure" in synced("export").stdout

    for new_name in ("first rename", "second rename"):
        doc["alerts"][0]["name"] = new_name
        result = synced("sync", write(tmp_path / "r.yaml", doc), "--prune", "--yes", "--json")
        assert result.exit_code == 0, result.output
        change = next(c for c in result.json()["changes"] if c["name"] == new_name)
        assert change["action"] == "update" and "renamed_from" in change
        assert all(c["action"] != "delete" for c in result.json()["changes"])
        assert {a["name"]: a["id"] for a in synced("list", "--json").json()}[new_name] == alert_id


def test_keys_are_unique(synced: Cli, tmp_path: Path, store_url: str) -> None:
    doc = copy.deepcopy(BASE)
    doc["alerts"][0]["key"] = "same"
    doc["alerts"][1]["key"] = "same"
    dup = synced("sync", write(tmp_path / "dup.yaml", doc))
    assert dup.exit_code == 2
    assert dup.stderr.startswith("error: alerts[1]: duplicate alert key 'same'")

    doc["alerts"][1]["key"] = "gone-key"
    assert synced("sync", write(tmp_path / "ok.yaml", doc)).exit_code == 0
    before = dump_store(store_url)
    taken = synced(
        "create",
        "--from-file",
        write(
            tmp_path / "one.yaml",
            {
                "name": "third",
                "key": "same",
                "condition_type": "pipeline_failure",
                "condition_config": {"pipeline_id": "p1"},
                "channels": ["email"],
                "recipients": {"email": ["a@example.com"]},
            },
        ),
    )
    assert taken.exit_code == 2
    assert taken.stderr == "error: key: alert 'A' already has key 'same'\n"
    # Two file alerts may not both be the same stored alert (one by key, one by name).
    clash = copy.deepcopy(BASE)
    clash["alerts"][1]["key"] = "same"  # "Gone" claims A's key while A keeps its name
    result = synced("sync", write(tmp_path / "clash.yaml", clash))
    assert result.exit_code == 2
    assert "alerts[1]: is stored alert 'A', which another alert of the file already is" in (
        result.stderr
    )
    assert dump_store(store_url) == before
