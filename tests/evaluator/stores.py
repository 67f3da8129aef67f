"""A migrated store on every dialect the product supports, for tests that need all three."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datamantri_alerts.store.engine import open_store
from tests.conftest import MARIADB_URL, copy_migrated_template, require_service

__all__ = ["any_store"]


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store on each dialect in turn (SQLite and MariaDB: copies of the session's
    templates)."""
    if request.param == "mariadb":
        from tests.checks import servers

        require_service("MariaDB", "127.0.0.1", 3306)
        with servers.mariadb_scratch_database(MARIADB_URL) as url:
            copy_migrated_template(request, url)
            opened = open_store(url)
            try:
                yield opened
            finally:
                opened.dispose()
        return
    url = (
        f"sqlite:///{tmp_path / 'alerts.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    copy_migrated_template(request, url)
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.dispose()
