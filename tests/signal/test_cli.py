"""The terminal side: `alerts windows`, `alerts silence`, `--label`, and the YAML round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Cli
from tests.evaluator.conftest import Flags


def create(cli: Cli, flags: Flags, name: str, *extra: str) -> None:
    result = cli(
        "create", "--name", name, "--type", "flag", "--config", f"file={flags.path}",
        "--channel", "slack", "--slack", "${SLACK_URL}", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_labels_on_create_list_show_and_edit(store_cli: Cli, flags: Flags) -> None:
    cli = store_cli
    create(cli, flags, "prod-etl", "--label", "team=data", "--label", "env=prod")
    create(cli, flags, "dev-etl", "--label", "team=data", "--label", "env=dev")
    create(cli, flags, "web", "--label", "team=web")
    listed = cli("list", "--label", "team=data", "--json")
    assert [a["name"] for a in listed.json()] == ["prod-etl", "dev-etl"]
    listed = cli("list", "--label", "team=data", "--label", "env!=prod", "--json")
    assert [a["name"] for a in listed.json()] == ["dev-etl"]
    table = cli("list", "--label", "env=~pr.*")
    assert "prod-etl" in table.stdout and "dev-etl" not in table.stdout
    assert cli("show", "web", "--json").json()["labels"] == {"team": "web"}
    edited = cli("edit", "web", "--label", "env=prod", "--unset-label", "team")
    assert edited.exit_code == 0, edited.output
    assert cli("show", "web", "--json").json()["labels"] == {"env": "prod"}


def test_bad_labels_and_matchers_exit_2_with_one_line(cli: Cli, flags: Flags) -> None:
    bad = cli(
        "create", "--name", "x", "--type", "flag", "--config", f"file={flags.path}",
        "--channel", "slack", "--slack", "${SLACK_URL}", "--label", "no-equals",
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "--label" in bad.stderr and "Traceback" not in bad.output
    assert cli("list", "--json").json() == []
    bad = cli("silence", "add", "--match", "team=~(", "--for", "1h")
    assert bad.exit_code == 2 and "invalid regular expression" in bad.stderr
    assert cli("silence", "list", "--json").json() == []


def test_silence_add_list_expire(store_cli: Cli, flags: Flags) -> None:
    cli = store_cli
    create(cli, flags, "prod-etl", "--label", "team=data", "--label", "env=prod")
    added = cli(
        "silence", "add", "--match", "team=data", "--match", "env=prod", "--for", "2h",
        "--reason", "warehouse upgrade", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    data = added.json()
    assert data["matchers"] == ["team=data", "env=prod"]
    assert data["alerts"] == ["prod-etl"]
    listed = cli("silence", "list", "--json").json()
    assert [s["id"] for s in listed] == [data["id"]]
    assert "warehouse upgrade" in cli("silence", "list").stdout
    assert cli("silence", "expire", str(data["id"])).exit_code == 0
    assert cli("silence", "list", "--json").json() == []
    assert len(cli("silence", "list", "--expired", "--json").json()) == 1
    missing = cli("silence", "expire", "999")
    assert missing.exit_code == 2 and "no silence with id 999" in missing.stderr


def test_windows_add_list_remove(store_cli: Cli, flags: Flags) -> None:
    cli = store_cli
    added = cli(
        "windows", "add", "migration",
        "--start", "2030-05-01T08:00:00+00:00", "--end", "2030-05-01T10:00:00+00:00",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    added = cli(
        "windows", "add", "nightly-batch", "--times", "02:00-03:00",
        "--weekdays", "monday:friday", "--location", "Europe/Berlin",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    create(cli, flags, "etl")
    assert cli("edit", "etl", "--config", "key=etl").exit_code == 0
    listed = {w["name"]: w for w in cli("windows", "list", "--json").json()}
    assert listed["migration"]["next_start"] == "2030-05-01T08:00:00+00:00"
    assert listed["migration"]["next_end"] == "2030-05-01T10:00:00+00:00"
    assert listed["nightly-batch"]["next_end"] is not None
    table = cli("windows", "list").stdout
    assert "2030-05-01 08:00 UTC" in table and "nightly-batch" in table
    bad = cli("windows", "add", "x", "--times", "02:00-03:00", "--location", "Mars/Base")
    assert bad.exit_code == 2 and "unknown time zone" in bad.stderr
    assert cli("windows", "remove", "migration").exit_code == 0
    assert [w["name"] for w in cli("windows", "list", "--json").json()] == ["nightly-batch"]


def test_yaml_round_trip_and_unknown_window(store_cli: Cli, flags: Flags, tmp_path: Path) -> None:
    cli = store_cli
    document: dict[str, Any] = {
        "maintenance_windows": [
            {
                "name": "nightly-batch",
                "times": ["01:00-03:00"],
                "weekdays": ["monday:friday"],
                "days_of_month": ["1:7", "-1"],
                "months": ["january:march"],
                "location": "Europe/Berlin",
            }
        ],
        "alerts": [
            {
                "name": "etl",
                "condition_type": "flag",
                "condition_config": {"file": str(flags.path)},
                "channels": ["slack"],
                "recipients": {"slack": "${SLACK_URL}"},
                "labels": {"team": "data"},
                "mute_during": ["nightly-batch"],
                "flap_detection": {"high": 30, "low": 10},
            }
        ],
    }
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(document))
    synced = cli("sync", str(path))
    assert synced.exit_code == 0, synced.output
    exported = cli("export")
    assert exported.exit_code == 0, exported.output
    again = yaml.safe_load(exported.stdout)
    assert again["maintenance_windows"] == document["maintenance_windows"]
    alert = again["alerts"][0]
    assert alert["labels"] == {"team": "data"} and alert["mute_during"] == ["nightly-batch"]
    assert alert["flap_detection"] == {"high": 30.0, "low": 10.0}
    path.write_text(exported.stdout)
    resynced = cli("sync", str(path), "--json")
    assert resynced.exit_code == 0, resynced.output
    assert "create" not in resynced.stdout and "update" not in resynced.stdout
    # An alert naming a window that does not exist is refused, nothing written.
    document["alerts"][0]["mute_during"] = ["nope"]
    document["alerts"][0]["name"] = "other"
    path.write_text(yaml.safe_dump(document))
    refused = cli("sync", str(path))
    assert refused.exit_code == 2
    assert "mute_during" in refused.stderr and "nope" in refused.stderr
    assert [a["name"] for a in cli("list", "--json").json()] == ["etl"]
