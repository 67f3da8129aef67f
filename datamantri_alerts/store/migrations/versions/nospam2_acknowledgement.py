"""episode acknowledgement: who, when, note and until

Revision ID: nospam2_acknowledgement
Revises: nospam1_signal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import datamantri_alerts.store.types

revision = "nospam2_acknowledgement"
down_revision = "nospam1_signal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_history") as batch:
        batch.add_column(
            sa.Column(
                "acknowledged_at",
                datamantri_alerts.store.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("acknowledged_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("ack_note", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "ack_until", datamantri_alerts.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_history") as batch:
        batch.drop_column("ack_until")
        batch.drop_column("ack_note")
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
