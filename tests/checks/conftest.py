"""Fixtures for checks: a store holding the watched entities, loopback servers, scratch DBs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from datamantri_alerts.clock import FrozenClock, SystemClock
from tests.checks import servers
from tests.conftest import MARIADB_URL, require_service


class Harness:
    """Declares data sources and jobs in a real store and runs checks against it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.clock: Any = SystemClock()
        self._next_id = 1

    def freeze(self, at: datetime) -> FrozenClock:
        self.clock = FrozenClock(at)
        return self.clock

    def add_datasource(
        self, entity_id: str, url: str, freshness: dict[str, str] | None = None
    ) -> None:
        from datamantri_alerts.schema import DataSourceSpec
        from datamantri_alerts.services.entities import add_entity

        spec = DataSourceSpec(
            id=entity_id, name=f"source {entity_id}", url=url, freshness=freshness
        )
        with self.store.transaction() as session:
            add_entity(session, "datasource", spec, SystemClock())

    def add_job(self, kind: str, entity_id: str, runs: dict[str, Any] | None = None) -> None:
        from datamantri_alerts.schema import DashboardSpec, PipelineSpec
        from datamantri_alerts.services.entities import add_entity

        model = PipelineSpec if kind == "pipeline" else DashboardSpec
        spec = model.model_validate(
            {"id": entity_id, "name": f"{kind} {entity_id}", "runs": runs or {"source": "recorded"}}
        )
        with self.store.transaction() as session:
            add_entity(session, kind, spec, SystemClock())

    def record(
        self,
        job_id: str,
        status: str,
        finished_at: datetime,
        error: str | None = None,
        kind: str | None = None,
    ) -> None:
        from datamantri_alerts.services.runs import record_run

        with self.store.transaction() as session:
            record_run(
                session,
                job_id,
                status,
                SystemClock(),
                kind=kind,
                started_at=finished_at,
                finished_at=finished_at,
                error=error,
            )

    def run(
        self,
        condition_type: str,
        config: dict[str, Any],
        *,
        check_state: dict[str, Any] | None = None,
        severity: str | None = None,
    ) -> Any:
        """Evaluate one alert through the real runner; returns its CheckResult."""
        return self.run_many(
            [(condition_type, config)], check_state=check_state, severity=severity
        )[0]

    def run_many(
        self,
        alerts: list[tuple[str, dict[str, Any]]],
        *,
        concurrency: int = 16,
        check_state: dict[str, Any] | None = None,
        severity: str | None = None,
        sources: Any = None,
    ) -> list[Any]:
        from datamantri_alerts.services.checking import (
            AlertSnapshot,
            run_checks,
            store_context_factory,
        )

        snapshots = []
        for condition_type, config in alerts:
            snapshots.append(
                AlertSnapshot(
                    id=self._next_id,
                    name=f"alert {self._next_id}",
                    condition_type=condition_type,
                    condition_config=config,
                    severity=severity,
                    check_state=dict(check_state or {}),
                )
            )
            self._next_id += 1
        return run_checks(
            snapshots,
            store_context_factory(self.store, self.clock),
            concurrency=concurrency,
            sources=sources,
        )


@pytest.fixture
def harness(sqlite_store: Any) -> Harness:
    return Harness(sqlite_store)


@pytest.fixture
def http_base() -> Iterator[str]:
    with servers.http_server() as base:
        yield base


@pytest.fixture
def black_hole_port() -> Iterator[int]:
    with servers.black_hole() as port:
        yield port


@pytest.fixture
def refused_port() -> int:
    return servers.closed_port()


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A scratch MariaDB database for this session (the shared `test` db stays untouched)."""
    require_service("MariaDB", "127.0.0.1", 3306)
    with servers.mariadb_scratch_database(MARIADB_URL) as url:
        yield url


@pytest.fixture
def mariadb_server_zone(
    mariadb_database: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], None]]:
    """Sets the server's default session time zone (`SET GLOBAL time_zone`), as a DBA would.

    Checks must not depend on it (a data source URL cannot carry `init_command`: check sessions
    are read-only). The previous default is restored afterwards. The setting is the server's,
    seen by every new session of every test, so a test using it must be marked `serial`
    (tests/conftest.py marks those that name it; one asking for it through
    `request.getfixturevalue` carries the mark itself).
    """
    from sqlalchemy import create_engine, text

    if request.node.get_closest_marker("serial") is None:
        pytest.fail("a test that sets MariaDB's global time zone must be marked serial")

    engine = create_engine(mariadb_database)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT @@global.time_zone")).scalar()

    def set_zone(zone: str) -> None:
        with engine.connect() as conn:
            conn.execute(text("SET GLOBAL time_zone = :zone"), {"zone": zone})

    try:
        yield set_zone
    finally:
        set_zone(str(before))
        engine.dispose()


def _clear_check_registry() -> None:
    from datamantri_alerts import checks

    checks._entry_points.cache_clear()
    checks.get_check.cache_clear()


@pytest.fixture
def third_party_checks(tmp_path: Path) -> Iterator[Path]:
    """A third-party distribution providing `file_exists`, `hang` and `crash` check types."""
    import importlib
    import sys

    from tests.checks import thirdparty

    site = str(thirdparty.install(tmp_path / "site"))
    sys.path.insert(0, site)
    importlib.invalidate_caches()
    _clear_check_registry()
    try:
        yield Path(site)
    finally:
        sys.path.remove(site)
        sys.modules.pop(thirdparty.MODULE, None)
        _clear_check_registry()
