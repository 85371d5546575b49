"""Rehearsals: an analyst's sandbox run of a pathway version, kept apart from real cases, encrypted at rest

A rehearsal is a sandbox case (``service.sandbox``) stored whole as its JSON in ``state`` (encrypted like a
case's state). It is never a row of ``cases``, ``tasks``, ``pending_timers`` or ``notifications``. The table is
council-owned, with the row-level security policy of migration ``5a1e0c0c1110``.

Revision ID: c4d8e2f6a9b3
Revises: c5d1e3f7a9b2
Create Date: 2026-12-01 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c4d8e2f6a9b3"
down_revision = "c5d1e3f7a9b2"  # after the sandbox branch's scenario_runs (both were b7e2c4d6f8a1: one head)
branch_labels = None
depends_on = None

RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")


def upgrade():
    op.create_table(
        "rehearsals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True),
        sa.Column("process_version_id", sa.Integer(), sa.ForeignKey("process_versions.id"), nullable=False,
                  index=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lock_version", sa.Integer(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rehearsals ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE rehearsals FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON rehearsals USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    op.drop_table("rehearsals")
