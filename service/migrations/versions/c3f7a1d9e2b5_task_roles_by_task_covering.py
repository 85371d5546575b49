"""The roles of a listed task read from an index alone: task roles by task, with the role and council in the index

Each task list (the inbox, the team's and overdue tasks) shows every listed task's roles, aggregated in the list's
statement by task id. The primary key (task_id, role) finds them, but row-level security's filter needs the row's
``council_id``, so each listed task cost a read of the table as well (a page of 100: about 100 of a role inbox's
1,300 buffers at 1,000,000 open cases, and a third of its execution time). With ``role`` and ``council_id`` in
this index PostgreSQL answers from the index alone (an index-only scan, the policy checked on the index's own
columns). PostgreSQL only: SQLite has no INCLUDE, and its lists have no row-level security to feed.

Revision ID: c3f7a1d9e2b5
Revises: b8e3f1c6d4a2
Create Date: 2026-12-01 09:05:00
"""
from __future__ import annotations

from alembic import op

revision = "c3f7a1d9e2b5"
down_revision = "b8e3f1c6d4a2"
branch_labels = None
depends_on = None

INDEX = "ix_task_roles_task_covering"


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: every start and completion writes task_roles, and a plain build would hold those writes
        # for as long as it reads the table (millions of rows in a large service). It runs outside a transaction;
        # a build that failed leaves an invalid index of this name, dropped first so that a rerun builds it.
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="task_roles", postgresql_concurrently=True, if_exists=True)
            op.create_index(INDEX, "task_roles", ["task_id"], postgresql_include=["role", "council_id"],
                            postgresql_concurrently=True)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="task_roles", postgresql_concurrently=True, if_exists=True)
