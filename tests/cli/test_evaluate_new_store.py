"""`alerts evaluate` on a store that was not there: a mistyped `--db` or ALERTS_DATABASE_URL in
a crontab would otherwise create an empty store and evaluate it every minute, quietly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli


def test_evaluate_says_when_it_created_the_store(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "alerts.db"
    cli = Cli(f"sqlite:///{path}")
    first = cli("evaluate", "--quiet")
    assert first.exit_code == 0, first.output
    assert first.stdout == ""
    lines = first.stderr.splitlines()
    assert len(lines) == 1, first.stderr
    assert lines[0].startswith(f"warning: there was no store at {path}: this run created")
    assert lines[0].endswith("with no alerts (check --db)")
    # The store exists now: the next run has nothing to say.
    second = cli("evaluate", "--quiet")
    assert (second.exit_code, second.stdout, second.stderr) == (0, "", "")


def test_json_stays_json_and_the_warning_goes_to_stderr(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'alerts.db'}")
    result = cli("evaluate", "--json")
    assert result.exit_code == 0, result.output
    assert result.json()["results"] == []
    assert "there was no store at" in result.stderr


def test_an_existing_store_says_nothing(cli: Cli) -> None:
    assert cli("list").exit_code == 0  # creates it, as any command does
    result = cli("evaluate", "--quiet")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_a_relative_path_is_named_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = Cli("sqlite:///rel.db")("evaluate", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"there was no store at {tmp_path / 'rel.db'}:" in result.stderr


def test_the_environment_variable_is_named_when_the_url_came_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    monkeypatch.setenv("ALERTS_DATABASE_URL", f"sqlite:///{tmp_path / 'typo.db'}")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr.rstrip().endswith("with no alerts (check ALERTS_DATABASE_URL)")


def test_the_default_store_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from datamantri_alerts.cli import app

    monkeypatch.delenv("ALERTS_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--quiet"])
    assert result.exit_code == 0, result.output
    default = tmp_path / "datamantri-alerts" / "alerts.db"
    assert f"there was no store at {default}:" in result.stderr
    assert "(the default store; give --db or ALERTS_DATABASE_URL for another)" in result.stderr
