"""Reference search served by an index under row-level security: the suffixes of each case's reference

Searching cases by part of a reference (``q=``, ``reference=``, "Find a case") was
``lower(reference) LIKE '%...%'``. Under row-level security PostgreSQL uses an index only through operators
marked ``LEAKPROOF``, and neither ``LIKE`` nor ``lower()`` is: the trigram index of migration ``a9d3e5f7b1c2``
was never used, and every search read the whole cases table (issue 16). ``reference_suffixes`` holds each
suffix of the case's lower-cased reference as bytes; a reference holds ``text`` when one of its suffixes starts
with it, a range scan by ``bytea`` comparisons, which are leakproof. The table is council-owned, with the
row-level security policy of migration ``5a1e0c0c1110``; the existing cases' suffixes are written here, and the
unusable trigram index is dropped.

Revision ID: b7e2c4d6f8a1
Revises: a9d3e5f7b1c2
Create Date: 2026-11-30 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7e2c4d6f8a1"
down_revision = "a9d3e5f7b1c2"
branch_labels = None
depends_on = None

RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")
BATCH = 2_000


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    table = op.create_table(
        "reference_suffixes",
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("suffix", sa.LargeBinary(), primary_key=True),
    )
    if postgres:  # every council's cases: row-level security would hide them from this session
        op.execute("SELECT set_config('app.all_councils', 'on', false)")
    # The suffixes are Python's lower-casing of the reference, as the service writes and searches them.
    last = 0
    while True:
        cases = bind.execute(sa.text("SELECT id, council_id, reference FROM cases WHERE id > :last ORDER BY id "
                                     "LIMIT :batch"), {"last": last, "batch": BATCH}).all()
        if not cases:
            break
        rows = [{"case_id": id_, "council_id": council_id, "suffix": key[start:].encode("utf-8")}
                for id_, council_id, reference in cases
                for key in [(reference or "").lower()] for start in range(len(key))]
        if rows:
            bind.execute(table.insert(), rows)
        last = cases[-1][0]
    op.create_index("ix_reference_suffixes_council_suffix", "reference_suffixes", ["council_id", "suffix", "case_id"])
    if postgres:
        op.execute("ALTER TABLE reference_suffixes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE reference_suffixes FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON reference_suffixes USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")
        op.execute("DROP INDEX IF EXISTS ix_cases_reference_trgm")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        available = bind.execute(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
        if available:
            op.execute("CREATE INDEX ix_cases_reference_trgm ON cases USING gin (lower(reference) gin_trgm_ops)")
    op.drop_index("ix_reference_suffixes_council_suffix", table_name="reference_suffixes")
    op.drop_table("reference_suffixes")
