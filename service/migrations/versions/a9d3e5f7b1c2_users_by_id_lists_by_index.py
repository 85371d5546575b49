"""Users by id, not by name; lists served by indexes

Who holds a task, who closed it, who started a case and who deployed a pathway were kept as user names, so
a new user given a deleted user's name inherited their cases (issue 11). They become user ids (foreign keys
to ``users.id``, set to NULL when the user is deleted): a name becomes the id of the user of that name who
holds a role in the row's council, else NULL. A deployment keeps its ``created_by`` name as a label of
what was true then, next to ``created_by_id``.

The lists (inbox, team and overdue tasks, case lists and search, notifications) are served by indexes
(issue 16): partial indexes on open tasks (by assignee, unassigned, by due date), cases in the order the
lists show them, notifications by addressee, and, on PostgreSQL, a trigram index for searching references
by part (``pg_trgm``, when the server has it).

Revision ID: a9d3e5f7b1c2
Revises: e4c2a8d1f907
Create Date: 2026-11-30 20:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a9d3e5f7b1c2"
down_revision = "f3b9c0d2a7e1"
branch_labels = None
depends_on = None

NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s", "ix": "ix_%(table_name)s_%(column_0_name)s"}
OPEN = "closed_at IS NULL"


def _user_of(table: str, column: str) -> str:
    """The id of the user named by ``table.column`` who holds a role in the row's council (NULL if none)."""
    return (f"(SELECT u.id FROM users u WHERE u.name = {table}.{column} AND EXISTS (SELECT 1 FROM memberships m "
            f"WHERE m.user_id = u.id AND m.council_id = {table}.council_id))")


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:  # the data moves across every council: row-level security would hide it from this session
        op.execute("SELECT set_config('app.all_councils', 'on', false)")
    with op.batch_alter_table("tasks", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("closed_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_tasks_assignee_id", "users", ["assignee_id"], ["id"], ondelete="SET NULL")
        batch.create_foreign_key("fk_tasks_closed_by_id", "users", ["closed_by_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("started_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_cases_started_by_id", "users", ["started_by_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("deployments", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("created_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_deployments_created_by_id", "users", ["created_by_id"], ["id"],
                                 ondelete="SET NULL")

    op.execute(f"UPDATE tasks SET assignee_id = {_user_of('tasks', 'assignee')} WHERE assignee IS NOT NULL")
    op.execute(f"UPDATE tasks SET closed_by_id = {_user_of('tasks', 'closed_by')} WHERE closed_by IS NOT NULL")
    op.execute(f"UPDATE cases SET started_by_id = {_user_of('cases', 'started_by')} WHERE started_by IS NOT NULL")
    op.execute(f"UPDATE deployments SET created_by_id = {_user_of('deployments', 'created_by')} "
               f"WHERE created_by IS NOT NULL")

    with op.batch_alter_table("tasks", naming_convention=NAMING) as batch:
        batch.drop_index("ix_tasks_assignee")
        batch.drop_column("assignee")
        batch.drop_column("closed_by")
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.drop_column("started_by")
    _create_indexes(postgres)


def _create_indexes(postgres: bool) -> None:
    where = {"postgresql_where": sa.text(OPEN), "sqlite_where": sa.text(OPEN)}
    order = [sa.text("due_at"), sa.text("created_at DESC"), sa.text("id DESC")]
    # An inbox's "assigned to me", in its order; the role tasks nobody has taken, in the same order; every
    # open task by due date (a manager's team and overdue views, the admin's inbox).
    op.create_index("ix_tasks_open_assignee", "tasks", [sa.text("council_id"), sa.text("assignee_id"), *order],
                    postgresql_where=sa.text(f"{OPEN} AND assignee_id IS NOT NULL"),
                    sqlite_where=sa.text(f"{OPEN} AND assignee_id IS NOT NULL"))
    op.create_index("ix_tasks_open_unassigned", "tasks", [sa.text("council_id"), *order],
                    postgresql_where=sa.text(f"{OPEN} AND assignee_id IS NULL"),
                    sqlite_where=sa.text(f"{OPEN} AND assignee_id IS NULL"))
    op.create_index("ix_tasks_open_due", "tasks", [sa.text("council_id"), *order], **where)
    # "My cases": the tasks someone holds or held, open or closed.
    op.create_index("ix_tasks_assignee_id", "tasks", ["assignee_id"])
    op.create_index("ix_tasks_closed_by_id", "tasks", ["closed_by_id"])
    # Who holds a role: the task's rows by role (with the task id, so the index alone answers).
    op.create_index("ix_task_roles_council_role_task", "task_roles", ["council_id", "role", "task_id"])
    # Cases as the lists show them: errors first, then the newest; a starter's own cases.
    op.create_index("ix_cases_list_order", "cases", [sa.text("council_id"), sa.text("(status <> 'error')"),
                                                    sa.text("updated_at DESC"), sa.text("id DESC")])
    op.create_index("ix_cases_started_by_id", "cases", ["started_by_id"])
    op.create_index("ix_cases_council_version_status", "cases",
                    ["council_id", "process_version_id", "status", "outcome"])
    op.create_index("ix_notifications_user_created", "notifications",
                    [sa.text("user_id"), sa.text("created_at DESC"), sa.text("id DESC")])
    if postgres:
        bind = op.get_bind()
        available = bind.execute(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")
                                 ).scalar()
        if available:
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            op.execute("CREATE INDEX ix_cases_reference_trgm ON cases USING gin (lower(reference) gin_trgm_ops)")


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("SELECT set_config('app.all_councils', 'on', false)")
        op.execute("DROP INDEX IF EXISTS ix_cases_reference_trgm")
    for name, table in (("ix_notifications_user_created", "notifications"),
                        ("ix_cases_council_version_status", "cases"), ("ix_cases_started_by_id", "cases"),
                        ("ix_cases_list_order", "cases"), ("ix_task_roles_council_role_task", "task_roles"),
                        ("ix_tasks_closed_by_id", "tasks"), ("ix_tasks_assignee_id", "tasks"), ("ix_tasks_open_due", "tasks"),
                        ("ix_tasks_open_unassigned", "tasks"), ("ix_tasks_open_assignee", "tasks")):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("tasks", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("assignee", sa.String(80), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(80), nullable=True))
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("started_by", sa.String(80), nullable=True))
    op.execute("UPDATE tasks SET assignee = (SELECT name FROM users WHERE users.id = tasks.assignee_id)")
    op.execute("UPDATE tasks SET closed_by = (SELECT name FROM users WHERE users.id = tasks.closed_by_id)")
    op.execute("UPDATE cases SET started_by = (SELECT name FROM users WHERE users.id = cases.started_by_id)")
    with op.batch_alter_table("tasks", naming_convention=NAMING) as batch:
        batch.drop_constraint("fk_tasks_assignee_id", type_="foreignkey")
        batch.drop_constraint("fk_tasks_closed_by_id", type_="foreignkey")
        batch.drop_column("assignee_id")
        batch.drop_column("closed_by_id")
        batch.create_index("ix_tasks_assignee", ["assignee"])
    with op.batch_alter_table("cases", naming_convention=NAMING) as batch:
        batch.drop_constraint("fk_cases_started_by_id", type_="foreignkey")
        batch.drop_column("started_by_id")
    with op.batch_alter_table("deployments", naming_convention=NAMING) as batch:
        batch.drop_constraint("fk_deployments_created_by_id", type_="foreignkey")
        batch.drop_column("created_by_id")
