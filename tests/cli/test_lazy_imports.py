"""`alerts --help` and `alerts list` do not import what they do not use.

Heavy modules (channel SDKs, HTTP clients, templates, database drivers other than the store's,
migrations, validation) are imported where they are used, so the commands typed many times a day
start fast. Checked in a child interpreter: its `sys.modules` after the command ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "twilio",
    "requests",
    "jinja2",
    "psycopg",
    "pymysql",
    "alembic",
    "urllib3",
    "apprise",
    "prometheus_client",
)

RUN_AND_REPORT = """
import json, sys
from datamantri_alerts.cli import app
try:
    app(sys.argv[1:], prog_name="alerts")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def modules_after(args: list[str], env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def heavy_in(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


@pytest.fixture
def child_env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    from tests.conftest import Cli

    config = tmp_path / "alerts.yaml"
    config.write_text(
        "datasources:\n"
        "  - {id: wh, name: Warehouse, url: 'sqlite:///wh.db'}\n"
        "alerts:\n"
        "  - name: warehouse down\n"
        "    condition_type: datasource_failure\n"
        "    condition_config: {datasource_id: wh}\n"
        "    channels: [slack, email]\n"
        "    recipients: {slack: '${SLACK_WEBHOOK_URL}', email: [data@example.com]}\n"
    )
    synced = Cli(sqlite_url)("sync", str(config))
    assert synced.exit_code == 0, synced.output
    return {**os.environ, "ALERTS_DATABASE_URL": sqlite_url}


def test_help_imports_nothing_heavy(child_env: dict[str, str]) -> None:
    modules = modules_after(["--help"], child_env)
    assert "datamantri_alerts.cli" in modules
    assert heavy_in(modules, (*HEAVY, "sqlalchemy", "rich", "pydantic")) == []


def test_list_imports_nothing_heavy(child_env: dict[str, str]) -> None:
    modules = modules_after(["list"], child_env)
    assert "datamantri_alerts.services.alerts" in modules  # the command ran
    assert heavy_in(modules) == []
    # Neither the definition schema (validation) nor the alert types nor rich are needed to
    # print the table.
    assert "datamantri_alerts.schema" not in modules
    assert not [m for m in modules if m.startswith(("datamantri_alerts.checks", "rich"))]
    # Option values that need no conversion skip typer's pydantic adapters (`cli.coercion`).
    assert heavy_in(modules, ("pydantic", "pydantic_core", "annotated_types")) == []


def test_list_with_options_imports_no_pydantic(child_env: dict[str, str]) -> None:
    # Text options, a repeated option, a count and a flag: none needs converting.
    args = ["-v", "list", "--state", "ok", "--label", "team=data", "--active", "--muted"]
    modules = modules_after(args, child_env)
    assert "datamantri_alerts.services.alerts" in modules
    assert heavy_in(modules, ("pydantic", "pydantic_core", "annotated_types")) == []


def test_list_json_imports_nothing_heavy(child_env: dict[str, str]) -> None:
    modules = modules_after(["list", "--json"], child_env)
    assert "datamantri_alerts.services.alerts" in modules
    assert heavy_in(modules) == []


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["status"]])
def test_sqlite_store_never_loads_the_postgresql_dialect(
    child_env: dict[str, str], args: list[str]
) -> None:
    # JSONB is the JSON columns' type on PostgreSQL only; on a SQLite store its dialect
    # (≈ 40 ms of imports) is never loaded.
    modules = modules_after(args, child_env)
    assert "datamantri_alerts.store.models" in modules  # the store was read
    assert not [m for m in modules if m.startswith("sqlalchemy.dialects.postgresql")]
