"""Families and children: a person record for each child, a family grouping them, and the blind index that
finds them by name or date of birth without decrypting every record (``service.families``)

Cases gain ``family_id`` and ``child_id`` (empty for cases started before: they keep working as they were).
On PostgreSQL the new council tables get the row-level security policy of migration ``5a1e0c0c1110``.

Revision ID: e5f1a7c3b920
Revises: d7a3b9c4e215
Create Date: 2026-11-30 16:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e5f1a7c3b920"
down_revision = "d7a3b9c4e215"
branch_labels = None
depends_on = None

NEW_COUNCIL_TABLES = ("families", "people", "search_tokens")
RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _council_id() -> sa.Column:
    return sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True)


def upgrade():
    op.create_table(
        "families",
        sa.Column("id", sa.Integer(), primary_key=True),
        _council_id(),
        sa.Column("name", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(80)),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), primary_key=True),
        _council_id(),
        sa.Column("family_id", sa.Integer(), sa.ForeignKey("families.id"), nullable=False, index=True),
        sa.Column("given_name", sa.Text(), nullable=False),
        sa.Column("family_name", sa.Text(), nullable=False),
        sa.Column("date_of_birth", sa.Text()),
        sa.Column("council_number", sa.Text()),
        sa.Column("nhs_number", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(80)),
    )
    op.create_table(
        "search_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        _council_id(),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
    )
    op.create_index("ix_search_tokens_council_kind_digest", "search_tokens", ["council_id", "kind", "digest"])
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("family_id", sa.Integer()))
        batch.add_column(sa.Column("child_id", sa.Integer()))
        batch.create_foreign_key("fk_cases_family_id_families", "families", ["family_id"], ["id"])
        batch.create_foreign_key("fk_cases_child_id_people", "people", ["child_id"], ["id"])
        batch.create_index("ix_cases_family_id", ["family_id"])
        batch.create_index("ix_cases_child_id", ["child_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_COUNCIL_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY council_isolation ON {table} USING ({RLS_PREDICATE}) "
                       f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.drop_index("ix_cases_child_id")
        batch.drop_index("ix_cases_family_id")
        batch.drop_constraint("fk_cases_child_id_people", type_="foreignkey")
        batch.drop_constraint("fk_cases_family_id_families", type_="foreignkey")
        batch.drop_column("child_id")
        batch.drop_column("family_id")
    op.drop_index("ix_search_tokens_council_kind_digest", table_name="search_tokens")
    op.drop_table("search_tokens")
    op.drop_table("people")
    op.drop_table("families")
