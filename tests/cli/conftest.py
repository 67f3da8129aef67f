"""Shared pieces of the CLI tests."""

from __future__ import annotations

import os
from pathlib import Path


def synced_store_env(tmp_path: Path, sqlite_url: str, alerts: int) -> dict[str, str]:
    """The environment of an `alerts` child process on a SQLite store holding `alerts`
    `datasource_failure` alerts on one unreachable warehouse (synced from YAML)."""
    from tests.conftest import Cli

    config = tmp_path / "alerts.yaml"
    config.write_text(
        "datasources:\n"
        "  - {id: wh, name: Warehouse, url: 'sqlite:///wh.db'}\n"
        "alerts:\n"
        + "".join(
            f"  - name: warehouse down {i}\n"
            "    condition_type: datasource_failure\n"
            "    condition_config: {datasource_id: wh}\n"
            for i in range(alerts)
        )
    )
    synced = Cli(sqlite_url)("sync", str(config))
    assert synced.exit_code == 0, synced.output
    return {**os.environ, "ALERTS_DATABASE_URL": sqlite_url}
