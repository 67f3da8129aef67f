"""episodes keep the tracker key their incident was opened with

Releases before this one sent PagerDuty `datamantri-alerts/<alert id>/<episode id>`; this one
adds the episode's trigger time (`.../<epoch>`, ids are reused by SQLite after a purge). An
episode already open when the store is upgraded has its incident open under the old key: every
existing episode is given that key, so its RESOLVED and acknowledgements still reach it. New
episodes leave the column empty and use the derived key.

Revision ID: incident_key
Revises: nospam2_acknowledgement
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "incident_key"
down_revision = "nospam2_acknowledgement"
branch_labels = None
depends_on = None

#: The key of `channels.pagerduty.dedup_key` before the epoch was added.
LEGACY_PREFIX = "datamantri-alerts/"


def upgrade() -> None:
    with op.batch_alter_table("alert_history") as batch:
        batch.add_column(sa.Column("incident_key", sa.String(length=255), nullable=True))
    history = sa.table(
        "alert_history",
        sa.column("id", sa.Integer),
        sa.column("alert_id", sa.Integer),
        sa.column("incident_key", sa.String),
    )
    # String `+` renders `||` on SQLite/PostgreSQL and CONCAT() on MySQL/MariaDB. An episode
    # whose alert was deleted (alert_id NULL) had no incident to reach again.
    op.execute(
        history.update()
        .where(history.c.alert_id.is_not(None))
        .values(
            incident_key=sa.literal(LEGACY_PREFIX, sa.String)
            + sa.cast(history.c.alert_id, sa.String)
            + sa.literal("/", sa.String)
            + sa.cast(history.c.id, sa.String)
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("alert_history") as batch:
        batch.drop_column("incident_key")
