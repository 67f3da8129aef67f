"""The registry: built-in types, and a third-party type through its entry point, end to end."""

from __future__ import annotations

from pathlib import Path

from datamantri_alerts.checks import BUILTIN_CHECKS, check_types, get_check
from datamantri_alerts.checks.base import Check
from tests.conftest import Cli


def test_every_builtin_type_implements_the_protocol() -> None:
    for name in BUILTIN_CHECKS:
        check = get_check(name)
        assert isinstance(check, Check)
        assert check.type_name == name
        assert check.default_severity in ("info", "warning", "critical")


def test_third_party_type_registered_by_entry_point_works_end_to_end(
    third_party_checks: Path, cli: Cli, tmp_path: Path
) -> None:
    assert "file_exists" in check_types()
    marker = tmp_path / "marker"
    definition = tmp_path / "alert.yaml"
    definition.write_text(
        "name: Marker file\n"
        "condition_type: file_exists\n"
        f"condition_config: {{path: '{marker}', check_interval_minutes: 1}}\n"
    )
    created = cli("create", "--from-file", str(definition))
    assert created.exit_code == 0, created.output

    quiet = cli("evaluate", "--dry-run", "--json").json()
    assert [r["outcome"] for r in quiet["results"]] == ["ok"]

    marker.write_text("")
    report = cli("evaluate", "--dry-run", "--json")
    assert report.exit_code == 0, report.output
    [result] = report.json()["results"]
    assert result["condition_type"] == "file_exists"
    assert result["outcome"] == "firing"
    assert result["severity"] == "info"
    assert result["summary"] == f"{marker} exists"


def test_unknown_type_is_refused_when_creating(cli: Cli, tmp_path: Path) -> None:
    definition = tmp_path / "alert.yaml"
    definition.write_text("name: x\ncondition_type: file_exists\ncondition_config: {path: /}\n")
    result = cli("create", "--from-file", str(definition))
    assert result.exit_code == 2
    assert "file_exists" in result.stderr
