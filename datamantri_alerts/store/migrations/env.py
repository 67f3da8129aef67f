"""Alembic environment: runs against the engine the caller passes in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from datamantri_alerts.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"), hide_parameters=True)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table to change it (copy, DROP, rename). With
            # foreign keys on, that DROP sets every referencing row's key to NULL (history and
            # outbox rows lost their alert). SQLite's own procedure for such changes
            # (https://www.sqlite.org/lang_altertable.html#otheralter): keys off outside the
            # transaction, foreign_key_check before commit, keys on again.
            _sqlite_foreign_keys(connection, on=False)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        try:
            with context.begin_transaction():
                # Rows already broken before (a store written with keys off) are not ours to
                # refuse; only rows this migration would break stop it.
                before = _broken_references(connection) if sqlite else 0
                context.run_migrations()
                after = _broken_references(connection) if sqlite else 0
                if after > before:
                    raise RuntimeError(
                        f"the migration would leave {after - before} rows referencing missing "
                        "rows; nothing was changed"
                    )
            connection.commit()
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)


def _broken_references(connection: Connection) -> int:
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").all())


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Set SQLite's foreign_keys on the driver connection, outside any transaction (inside one,
    the pragma does nothing)."""
    driver = connection.connection.driver_connection
    driver.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")


run_migrations_online()
