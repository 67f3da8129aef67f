"""Shell completion of values: alert names, alert types, states, channels and entity ids.

Typer installs the completion script (`alerts --install-completion`); these functions give the
candidates. Completion runs before the root callback, so the store is opened here from the
root's `--db` / `--env-file` (else the environment), read-only, and any failure completes
nothing rather than printing an error into the user's shell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datamantri_alerts.cli.options import ALERT_STATES


def _root_params(ctx: Any) -> dict[str, Any]:
    while ctx.parent is not None:
        ctx = ctx.parent
    return dict(ctx.params or {})


def _from_store(ctx: Any, read: Callable[[Any], list[str]]) -> list[str]:
    try:
        from datamantri_alerts.settings import build_settings
        from datamantri_alerts.store.engine import open_store

        params = _root_params(ctx)
        settings = build_settings(
            db=params.get("db"), env_file=params.get("env_file"), verbose=0, hostname=None
        )
        store = open_store(settings.database_url, migrate=False)
        try:
            with store.session() as session:
                return read(session)
        finally:
            store.dispose()
    except Exception:  # completion must never print an error into the shell
        return []


def _matching(values: list[str], incomplete: str) -> list[str]:
    return [value for value in values if value.startswith(incomplete)]


def complete_alert_ref(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    """Alert names (and ids, when what is typed so far is a number)."""

    def read(session: Any) -> list[str]:
        from sqlalchemy import select

        from datamantri_alerts.store.models import Alert

        rows = session.execute(select(Alert.id, Alert.name).order_by(Alert.name)).all()
        if incomplete.isdigit():
            return [str(row.id) for row in rows]
        return [row.name for row in rows]

    return _matching(_from_store(ctx, read), incomplete)


def entity_id_completer(kind: str) -> Callable[[Any, list[str], str], list[str]]:
    """Completion of the ids of one kind of entity (datasource, pipeline, dashboard)."""

    def complete(ctx: Any, args: list[str], incomplete: str) -> list[str]:
        def read(session: Any) -> list[str]:
            from datamantri_alerts.services.entities import list_entities

            return [row.id for row in list_entities(session, kind)]

        return _matching(_from_store(ctx, read), incomplete)

    return complete


def complete_type(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    from datamantri_alerts.checks import check_types

    return _matching(check_types(), incomplete)


def complete_state(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    return _matching(list(ALERT_STATES), incomplete)


def complete_channel(ctx: Any, args: list[str], incomplete: str) -> list[str]:
    from datamantri_alerts.channels import channel_names

    return _matching(channel_names(), incomplete)
