"""Pathway files stored once by content: a file table keyed by content hash per council

Every deployment is a snapshot of every file of its council, and used to store every file again: a
council's 200th deploy of one changed form held 200 copies of each diagram. Now ``pathway_files`` holds
each content once per council (unique by SHA-256) and ``deployment_files`` names it. Existing rows are
moved: identical contents of one council become one row.

Revision ID: 7c0f11e5a1b2
Revises: b7d4e1a9c2f0
Create Date: 2026-11-30 15:00:00
"""
from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "7c0f11e5a1b2"
down_revision = "b7d4e1a9c2f0"
branch_labels = None
depends_on = None

RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:  # row-level security is forced on the tables' owner too: read every council's rows
        op.execute("SELECT set_config('app.all_councils', 'on', true)")
    op.create_table(
        "pathway_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("council_id", "sha256", name="uq_pathway_files_council_sha256"),
    )
    with op.batch_alter_table("deployment_files") as batch:
        batch.add_column(sa.Column("file_id", sa.Integer(), nullable=True))
    _store_once(bind)
    with op.batch_alter_table("deployment_files") as batch:
        batch.alter_column("file_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_deployment_files_file_id", "pathway_files", ["file_id"], ["id"])
        batch.create_index("ix_deployment_files_file_id", ["file_id"])
        batch.drop_column("content")
    if postgres:
        op.execute("ALTER TABLE pathway_files ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE pathway_files FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON pathway_files USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def _store_once(bind) -> None:
    stored: dict[tuple[int, str], int] = {}
    rows = bind.execute(sa.text("SELECT id, council_id, content FROM deployment_files ORDER BY id")).all()
    for row in rows:
        key = (row.council_id, hashlib.sha256(row.content).hexdigest())
        if key not in stored:
            stored[key] = bind.execute(sa.text(
                "INSERT INTO pathway_files (council_id, sha256, content) VALUES (:c, :h, :b) RETURNING id"),
                {"c": key[0], "h": key[1], "b": row.content}).scalar_one()
        bind.execute(sa.text("UPDATE deployment_files SET file_id = :f WHERE id = :i"), {"f": stored[key], "i": row.id})


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SELECT set_config('app.all_councils', 'on', true)")
        op.execute("DROP POLICY IF EXISTS council_isolation ON pathway_files")
    with op.batch_alter_table("deployment_files") as batch:
        batch.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    bind.execute(sa.text("UPDATE deployment_files SET content = "
                         "(SELECT content FROM pathway_files p WHERE p.id = deployment_files.file_id)"))
    with op.batch_alter_table("deployment_files") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_index("ix_deployment_files_file_id")
        batch.drop_constraint("fk_deployment_files_file_id", type_="foreignkey")
        batch.drop_column("file_id")
    op.drop_table("pathway_files")
