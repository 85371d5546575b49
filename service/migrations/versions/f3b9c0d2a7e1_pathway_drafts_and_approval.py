"""Pathway drafts and approval: a status for each deployment and pathway version, and who changed it and why

Every deployment and version that exists is published (it was live the moment it was uploaded). From now on
an upload is a draft until a second person publishes it (``service.pathway_versions``). ``pathway_events``
belongs to a council: on PostgreSQL it gets the row-level security policy of migration ``5a1e0c0c1110``.

Revision ID: f3b9c0d2a7e1
Revises: e4c2a8d1f907
Create Date: 2026-11-30 20:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f3b9c0d2a7e1"
down_revision = "e4c2a8d1f907"
branch_labels = None
depends_on = None

RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")


def upgrade():
    with op.batch_alter_table("deployments") as batch:
        # Going back to an earlier set of files (a file removed, then put back) is a new deployment.
        batch.drop_constraint("uq_deployments_council_id", type_="unique")
        batch.create_index("ix_deployments_council_content_hash", ["council_id", "content_hash"])
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="published"))
        batch.add_column(sa.Column("name", sa.String(255)))
        batch.add_column(sa.Column("source", sa.String(80)))
        batch.add_column(sa.Column("submitted_by", sa.String(80)))
        batch.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("decided_by", sa.String(80)))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("process_versions") as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="published"))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("published_by", sa.String(80)))
    op.execute("UPDATE process_versions SET published_at = created_at")
    op.execute("UPDATE deployments SET decided_at = created_at, decided_by = created_by")
    op.create_table(
        "pathway_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("deployment_id", sa.Integer(), sa.ForeignKey("deployments.id"), index=True),
        sa.Column("process_version_id", sa.Integer(), sa.ForeignKey("process_versions.id"), index=True),
        sa.Column("key", sa.String(120)),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20)),
        sa.Column("reason", sa.String(2000)),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pathway_events ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE pathway_events FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON pathway_events USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    op.drop_table("pathway_events")
    with op.batch_alter_table("process_versions") as batch:
        for column in ("published_by", "published_at", "status"):
            batch.drop_column(column)
    with op.batch_alter_table("deployments") as batch:
        for column in ("decided_at", "decided_by", "submitted_at", "submitted_by", "source", "name", "status"):
            batch.drop_column(column)
        batch.drop_index("ix_deployments_council_content_hash")
        batch.create_unique_constraint("uq_deployments_council_id", ["council_id", "content_hash"])
