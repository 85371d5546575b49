"""The council wall's settings read once per statement, not once per row

Row-level security's policy on each council's table compared every row a scan reads with
``current_setting('app.council_id', true)`` and ``current_setting('app.all_councils', true)``: function calls
PostgreSQL makes for each row, about half the time of counting a list's 10,001 cases at a million open cases.
Each setting is now a scalar subquery, which PostgreSQL runs once per statement (an InitPlan) and compares each
row with its value. The rule is the same: a row of the council the transaction acts for, or every council's
when it acts across them; a user's own memberships before they choose a council.

Revision ID: a4c9e1f3b7d2
Revises: e8d2f5a1c7b3
Create Date: 2026-12-02 00:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a4c9e1f3b7d2"
down_revision = "e8d2f5a1c7b3"
branch_labels = None
depends_on = None

PER_ROW = ("current_setting('app.all_councils', true) = 'on' "
           "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")
ONCE = ("(SELECT current_setting('app.all_councils', true)) = 'on' "
        "OR council_id = (SELECT NULLIF(current_setting('app.council_id', true), '')::integer)")
USER_PER_ROW = "user_id = NULLIF(current_setting('app.user_id', true), '')::integer"
USER_ONCE = "user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::integer)"


def _walled_tables() -> list[str]:
    """Every table with the council wall's policy (memberships apart: a user also sees their own)."""
    return list(op.get_bind().execute(sa.text(
        "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() AND policyname = 'council_isolation' "
        "AND tablename <> 'memberships' ORDER BY tablename")).scalars())


def _set(council: str, user: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no row-level security: the service's own wall (service.tenancy) is the only one
    for table in _walled_tables():
        op.execute(f"ALTER POLICY council_isolation ON {table} USING ({council}) WITH CHECK ({council})")
    op.execute(f"ALTER POLICY council_isolation ON memberships USING ({council} OR {user}) WITH CHECK (true)")


def upgrade():
    _set(ONCE, USER_ONCE)


def downgrade():
    _set(PER_ROW, USER_PER_ROW)
