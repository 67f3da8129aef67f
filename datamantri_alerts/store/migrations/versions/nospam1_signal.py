"""labels, maintenance windows, silences, flap detection and flips in episodes

Revision ID: nospam1_signal
Revises: synccli_alert_key
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import datamantri_alerts.store.types

revision = "nospam1_signal"
down_revision = "synccli_alert_key"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _instant() -> sa.types.TypeEngine:
    return datamantri_alerts.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", _json(), nullable=True))
        batch_op.add_column(sa.Column("mute_during", _json(), nullable=True))
        batch_op.add_column(sa.Column("flap_detection", _json(), nullable=True))
        batch_op.add_column(sa.Column("flap_history", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("alert_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flips", _json(), nullable=True))
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
        sa.UniqueConstraint("name", name=op.f("uq_maintenance_windows_name")),
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("matchers", _json(), nullable=False),
        sa.Column("starts_at", _instant(), nullable=False),
        sa.Column("ends_at", _instant(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_table("maintenance_windows")
    with op.batch_alter_table("alert_history", schema=None) as batch_op:
        batch_op.drop_column("flips")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("flapping")
        batch_op.drop_column("flap_history")
        batch_op.drop_column("flap_detection")
        batch_op.drop_column("mute_during")
        batch_op.drop_column("labels")
