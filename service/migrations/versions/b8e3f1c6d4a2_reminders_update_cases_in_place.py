"""A reminder's write to its case touches no indexed column: PostgreSQL can update the row in place (HOT)

A reminder that only notifies (``service.reminders``) writes the case's version, next timer and failure count,
and no longer its ``updated_at`` (in ``ix_cases_list_order``). ``cases.next_timer_at`` is read by no query of the
service (the sweep and its alarm read ``pending_timers.due_at``), so its index goes. With no indexed column
changed, and room on the row's page, PostgreSQL writes the new row version on the same page without a new entry
in each of the table's indexes (a heap-only tuple). ``fillfactor`` 90 leaves that room on the pages written from
now on (existing pages keep theirs until the table is rewritten; a page's dead versions are pruned as it is
used, which frees room there too).

Revision ID: b8e3f1c6d4a2
Revises: d2b6f4a8c1e3
Create Date: 2026-12-01 06:30:00
"""
from __future__ import annotations

from alembic import op

revision = "b8e3f1c6d4a2"
down_revision = "d2b6f4a8c1e3"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_cases_next_timer_at", table_name="cases")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE cases SET (fillfactor = 90)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE cases RESET (fillfactor)")
    op.create_index("ix_cases_next_timer_at", "cases", ["next_timer_at"])
