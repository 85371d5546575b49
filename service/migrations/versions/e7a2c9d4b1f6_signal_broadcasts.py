"""A signal on its way to many cases: the rest of its cases reached a batch at a time by the timer service

A signal reached every case waiting for it in the sender's request, one engine step each (5 to 10 ms): a signal
10,000 cases wait for took the request past the worker's timeout, and its transaction, rolled back, reached none.
The sender's request now reaches the first cases, and keeps the rest here (``service.broadcasts``).

Revision ID: e7a2c9d4b1f6
Revises: d4f7b2e9a6c1
Create Date: 2026-12-02 16:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e7a2c9d4b1f6"
down_revision = "d4f7b2e9a6c1"
branch_labels = None
depends_on = None

# The council wall as migration a4c9e1f3b7d2 left it: each setting read once a statement.
RLS_PREDICATE = ("(SELECT current_setting('app.all_councils', true)) = 'on' "
                 "OR council_id = (SELECT NULLIF(current_setting('app.council_id', true), '')::integer)")


def upgrade():
    op.create_table(
        "signal_broadcasts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),  # encrypted JSON (service.encryption)
        sa.Column("sent_by", sa.String(80), nullable=False),
        sa.Column("sent_by_id", sa.Integer(), nullable=True),
        sa.Column("thrower_case_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("up_to_case_id", sa.Integer(), nullable=False),
        sa.Column("after_case_id", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_signal_broadcasts_council_id", "signal_broadcasts", ["council_id"])
    # The timer service's question, after every sweep: is a broadcast on its way, and when is its next batch due?
    op.create_index("ix_signal_broadcasts_on_the_way", "signal_broadcasts", ["finished_at", "due_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE signal_broadcasts ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE signal_broadcasts FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON signal_broadcasts USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    op.drop_index("ix_signal_broadcasts_on_the_way", table_name="signal_broadcasts")
    op.drop_index("ix_signal_broadcasts_council_id", table_name="signal_broadcasts")
    op.drop_table("signal_broadcasts")
