"""Every problem printed on stderr is one line at any width: `evaluate --quiet` in an 80-column
terminal (or a 160-column cron log) must not break `error: alert ...` lines, so each problem
is one log line to grep for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

LONG_NAME = "Orders warehouse reachable from the nightly loader host in region two"


@pytest.mark.parametrize("columns", ["80", "40"])
def test_evaluate_errors_are_one_line_each(cli: Cli, tmp_path: Path, columns: str) -> None:
    missing = tmp_path / "no-such-folder" / "warehouse.db"
    assert cli("datasources", "add", "wh", "--name", "W" * 60, "--url", f"sqlite:///{missing}")
    for n in range(2):
        created = cli(
            "create",
            "--name",
            f"{LONG_NAME} {n}",
            "--type",
            "sql",
            "--config",
            "datasource_id=wh",
            "--config",
            "query=select 1",
        )
        assert created.exit_code == 0, created.output
    result = cli("evaluate", "--quiet", env={"COLUMNS": columns})
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line.split(":", 1)[0] for line in errors] == ["error", "error"], errors
    for n, line in enumerate(sorted(errors)):
        assert line.startswith(f"error: alert {n + 1} {LONG_NAME} {n}: cannot connect to ")
        assert line.endswith("unable to open database file"), line
