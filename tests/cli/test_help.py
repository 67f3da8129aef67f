"""Every command and subcommand has working help text."""

from __future__ import annotations

from typing import Any

from typer.main import get_command

from datamantri_alerts.cli import app
from tests.conftest import Cli


def _walk(command: Any, path: list[str]) -> list[list[str]]:
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths.extend(_walk(sub, [*path, name]))
    return paths


def test_every_command_has_help(cli: Cli) -> None:
    root = get_command(app)
    paths = _walk(root, [])
    assert len(paths) > 15, paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.stdout, path
        command: Any = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), f"{' '.join(path) or 'alerts'} has no help text"


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("datamantri-alerts ")
