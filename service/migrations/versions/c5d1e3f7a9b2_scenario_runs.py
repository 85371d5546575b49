"""Scenario runs: each run of a pathway version's scenario tests (on deploy, on publish, on demand), with the
result of each step

The table belongs to a council: on PostgreSQL it gets the row-level security policy of migration
``5a1e0c0c1110``.

Revision ID: c5d1e3f7a9b2
Revises: b7e2c4d6f8a1
Create Date: 2026-12-01 00:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c5d1e3f7a9b2"
down_revision = "b7e2c4d6f8a1"
branch_labels = None
depends_on = None

RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")


def upgrade():
    op.create_table(
        "scenario_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True),
        sa.Column("process_version_id", sa.Integer(), sa.ForeignKey("process_versions.id"), nullable=False,
                  index=True),
        sa.Column("scenario", sa.String(255), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("milliseconds", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("ran_by", sa.String(80)),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE scenario_runs ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE scenario_runs FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON scenario_runs USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    op.drop_table("scenario_runs")
