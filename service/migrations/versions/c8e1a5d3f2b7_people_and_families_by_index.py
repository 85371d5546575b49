"""The council's children and families listed a page at a time from an index

``GET /people`` without a search read every child of the council (each decrypted) to show fifty, and
``GET /families`` sorted and counted every family for its page. A council has as many children as cases: at a
million, one request held them all. Both now read their page in the list's order from these indexes (newest
first) and count up to the lists' cap (``service.paging.capped_count``). SQLite's index on a council's people
(``ix_people_council_id``) holds them in order of id already (its entries end with the row's id), so there only
the families' is built.

Revision ID: c8e1a5d3f2b7
Revises: f6a2c8e4b1d9
Create Date: 2026-12-02 12:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c8e1a5d3f2b7"
down_revision = "f6a2c8e4b1d9"
branch_labels = None
depends_on = None

PEOPLE = ("ix_people_council_newest", "people", ("council_id", "id DESC"))
FAMILIES = ("ix_families_council_newest", "families", ("council_id", "created_at DESC", "id DESC"))
INDEXES = (PEOPLE, FAMILIES)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: a plain build would hold every new child's and family's write while it reads the table. It
        # runs outside a transaction; a build that failed leaves an invalid index of its name, dropped first.
        with op.get_context().autocommit_block():
            for name, table, columns in INDEXES:
                op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
                op.create_index(name, table, [sa.text(c) for c in columns], postgresql_concurrently=True)
    else:
        name, table, columns = FAMILIES
        op.create_index(name, table, [sa.text(c) for c in columns])


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, _ in INDEXES:
                op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(FAMILIES[0], table_name=FAMILIES[1])
