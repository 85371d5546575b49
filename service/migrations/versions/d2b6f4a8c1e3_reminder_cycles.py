"""A reminder's cycle on its pending-timer row: a reminder that only notifies fires without rewriting the state

``pending_timers.cycle`` holds a repeating reminder's cycle (start, period, occurrences fired and left, next due)
as the timer sweep last fired it without the engine (``service.reminders``); the case's encrypted state is not
rewritten for such a firing, and catches up from the row when the engine next loads the case. NULL (every
existing pending timer, and every timer the engine sets) means the case's state holds the cycle: the sweep
reads it there the first time. So existing pending timers need no data migration.

Revision ID: d2b6f4a8c1e3
Revises: c4d8e2f6a9b3
Create Date: 2026-12-01 03:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d2b6f4a8c1e3"
down_revision = "c4d8e2f6a9b3"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("pending_timers") as batch:
        batch.add_column(sa.Column("cycle", sa.JSON(), nullable=True))


def downgrade():
    # The cycles fired ahead of their cases' states would be lost: fold them back first (``flask timers``
    # has no command for it), or downgrade only with no reminder fired since the upgrade.
    with op.batch_alter_table("pending_timers") as batch:
        batch.drop_column("cycle")
