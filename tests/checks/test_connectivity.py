"""`alerts datasources check ID`: one connection test now, with the check's exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.checks import servers
from tests.conftest import Cli, dump_store


def test_datasources_check(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    create_engine(f"sqlite:///{source}").connect().close()
    refused = servers.closed_port()
    for entity_id, url in (
        ("lite", f"sqlite:///{source}"),
        ("down", f"mysql://root:pa55word-x@127.0.0.1:{refused}/x"),
        ("env", "${UNSET_CHECK_URL_Y}"),
    ):
        added = cli("datasources", "add", entity_id, "--name", entity_id, "--url", url)
        assert added.exit_code == 0, added.output
    before = dump_store(sqlite_url)

    ok = cli("datasources", "check", "lite", "--json")
    assert ok.exit_code == 0, ok.output
    assert ok.json()["reachable"] is True

    down = cli("datasources", "check", "down", "--timeout", "2")
    assert down.exit_code == 1
    assert "FAILED" in down.stdout
    assert "refused" in down.stdout.lower()
    assert "pa55word-x" not in down.output

    env = cli("datasources", "check", "env")
    assert env.exit_code == 1
    assert "UNSET_CHECK_URL_Y" in env.stdout

    missing = cli("datasources", "check", "ghost")
    assert missing.exit_code == 2
    assert "ghost" in missing.stderr
    assert dump_store(sqlite_url) == before


@pytest.mark.postgres
def test_datasources_check_postgres(cli: Cli, pg_database: str) -> None:
    assert cli("datasources", "add", "pg", "--name", "PG", "--url", pg_database).exit_code == 0
    result = cli("datasources", "check", "pg")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")
