"""The reliability suite reuses the evaluator's fixtures: the `flag` alert type through a real
entry point (visible to child processes), the scriptable webhook sink, and process helpers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import scratch_mariadb_database
from tests.evaluator.conftest import flag_type, flags, plugin_dir, sink, smtp_starttls, tls_material

__all__ = ["flag_type", "flags", "plugin_dir", "sink", "smtp_starttls", "tls_material"]


@pytest.fixture
def pg_url_baseline(pg_database: str) -> Iterator[str]:
    """A second fresh PostgreSQL schema, for comparing against a single-process run."""
    schema = f"b_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg_database}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def mariadb_url_baseline() -> Iterator[str]:
    """A second fresh MariaDB database, for comparing against a single-process run."""
    with scratch_mariadb_database() as url:
        yield url
