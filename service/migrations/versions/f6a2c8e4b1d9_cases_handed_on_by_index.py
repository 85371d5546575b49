"""The cases a case handed over to, found by an index

A case's page and its answers list the cases it was handed over to (``service.case_view``), and a significant-harm
answer checks whether any of them already has an urgent step open before the service raises immediate risk on the
case (``service.cases``): both look cases up by ``started_from_case_id``, which no index served, so each read
every case of the council (115 ms at 1,000,000 open cases on PostgreSQL; on SQLite 50 ms at 100,000). Most cases
were handed over from none: the index holds only those that were.

Revision ID: f6a2c8e4b1d9
Revises: a4c9e1f3b7d2
Create Date: 2026-12-02 06:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f6a2c8e4b1d9"
down_revision = "a4c9e1f3b7d2"
branch_labels = None
depends_on = None

INDEX = "ix_cases_started_from"
HANDED_OVER = sa.text("started_from_case_id IS NOT NULL")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: every start and completion writes cases, and a plain build would hold those writes for as
        # long as it reads the table. It runs outside a transaction; a build that failed leaves an invalid index of
        # this name, dropped first so that a rerun builds it.
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="cases", postgresql_concurrently=True, if_exists=True)
            op.create_index(INDEX, "cases", ["started_from_case_id"], postgresql_where=HANDED_OVER,
                            postgresql_concurrently=True)
    else:
        op.create_index(INDEX, "cases", ["started_from_case_id"], sqlite_where=HANDED_OVER)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="cases", postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(INDEX, table_name="cases")
