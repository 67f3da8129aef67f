"""Registry of alert types: the built-in modules plus the `datamantri_alerts.checks` entry points.

Modules are imported on first use, so listing alerts does not import database drivers.
"""

from __future__ import annotations

import importlib
from functools import cache

from datamantri_alerts.checks.base import Check, CheckConfig, CheckContext, Outcome

__all__ = ["Check", "CheckConfig", "CheckContext", "Outcome", "check_types", "get_check"]

ENTRY_POINT_GROUP = "datamantri_alerts.checks"

BUILTIN_CHECKS: dict[str, str] = {
    "datasource_failure": "datamantri_alerts.checks.datasource_failure",
    "pipeline_failure": "datamantri_alerts.checks.pipeline_failure",
    "query_slow": "datamantri_alerts.checks.query_slow",
    "dashboard_failure": "datamantri_alerts.checks.dashboard_failure",
    "sla_breach": "datamantri_alerts.checks.sla_breach",
    "sql": "datamantri_alerts.checks.sql",
    "freshness": "datamantri_alerts.checks.freshness",
}


@cache
def _entry_points() -> dict[str, object]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_types() -> list[str]:
    """Every known type name: built-in first, then third-party ones."""
    extra = sorted(name for name in _entry_points() if name not in BUILTIN_CHECKS)
    return [*BUILTIN_CHECKS, *extra]


@cache
def get_check(type_name: str) -> Check:
    """The check for a type; KeyError when no module or entry point provides it."""
    if type_name in BUILTIN_CHECKS:
        return importlib.import_module(BUILTIN_CHECKS[type_name]).CHECK
    ep = _entry_points().get(type_name)
    if ep is None:
        raise KeyError(type_name)
    loaded = ep.load()  # type: ignore[attr-defined]
    return loaded() if isinstance(loaded, type) else loaded
