"""alerts.key: an optional stable identity that survives renames in `alerts sync`

Revision ID: synccli_alert_key
Revises: 0001_initial
Create Date: 2026-11-30 03:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "synccli_alert_key"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("key", sa.String(length=200), nullable=True))
        batch.create_unique_constraint("uq_alerts_key", ["key"])


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alerts_key", type_="unique")
        batch.drop_column("key")
