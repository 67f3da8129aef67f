"""`alerts datasources check ID`: reach one data source now, as datasource_failure would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datamantri_alerts.errors import NotFoundError

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass
class ConnectivityResult:
    datasource_id: str
    reachable: bool
    summary: str
    duration_ms: int
    #: "could not evaluate" (e.g. an unset ${VAR}) as opposed to "unreachable".
    error: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "datasource_id": self.datasource_id,
            "reachable": self.reachable,
            "summary": self.summary,
            "duration_ms": self.duration_ms,
        }


def check_datasource(
    store: Any,
    datasource_id: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    follow_redirects: bool = False,
) -> ConnectivityResult:
    """Connect and run `SELECT 1` (HTTP: GET → 2xx, a redirect followed only when asked),
    bounded by timeout; writes nothing."""
    from datamantri_alerts.checks.base import CannotEvaluate
    from datamantri_alerts.checks.sources import SourceInfo, probe
    from datamantri_alerts.store.models import DataSource

    with store.session() as session:
        row = session.get(DataSource, datasource_id)
        if row is None:
            raise NotFoundError(f"no data source with id {datasource_id!r}", field="ID")
        source = SourceInfo(id=row.id, name=row.name, url=row.url, freshness=row.freshness)
    try:
        result = probe(source, timeout, follow_redirects=follow_redirects, pool=None)
    except CannotEvaluate as exc:
        return ConnectivityResult(source.id, False, str(exc), 0, error=True)
    return ConnectivityResult(source.id, result.reachable, result.summary, result.duration_ms)
