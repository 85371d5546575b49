"""Reminders fired ahead of the engine are noted on the case, not written into its state

A one-off reminder that only notifies (and a repeating one's last firing) was marked fired in the case's encrypted
state by the timer sweep, which read, decrypted, parsed, re-encrypted and rewrote the whole state (about 9 kB,
stored out of line on PostgreSQL) to change one flag. ``cases.fired_ahead`` holds those marks instead (timer id
-> element, when it fired, the cycle its last firing left): the sweep writes this small column, not the state,
and the engine's next load of the case marks them fired in the state it loads (``service.reminders.state_of``);
its next write of the state empties the column. Not indexed, so the sweep's write of the case stays a HOT update
on PostgreSQL.

Revision ID: e8d2f5a1c7b3
Revises: c3f7a1d9e2b5
Create Date: 2026-12-01 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e8d2f5a1c7b3"
down_revision = "c3f7a1d9e2b5"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("cases", sa.Column("fired_ahead", sa.JSON(), nullable=True))


def downgrade():
    # The reminders noted here would fire again when the engine next steps their cases: refused while any case
    # holds one (each goes once its case has taken a step).
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM cases WHERE fired_ahead IS NOT NULL")).scalar()
    if held:
        raise RuntimeError(f"{held} case(s) hold reminders fired ahead of their state (cases.fired_ahead): "
                           "downgrading would send each again; downgrade once each has taken a step")
    # Not a batch (SQLite's copy of the table would lose its descending list index): SQLite drops the column.
    op.drop_column("cases", "fired_ahead")
