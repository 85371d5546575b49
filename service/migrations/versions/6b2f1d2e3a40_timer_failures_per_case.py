"""Failed timer sweeps counted per case (three in a row quarantine it); the signals a case waits for

Revision ID: 6b2f1d2e3a40
Revises: 5a1e0c0c1110
Create Date: 2026-11-30 14:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "6b2f1d2e3a40"
down_revision = "5a1e0c0c1110"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("timer_failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("waiting_signals", sa.JSON(), nullable=False, server_default="[]"))


def downgrade():
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("waiting_signals")
        batch.drop_column("timer_failures")
