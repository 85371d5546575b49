"""Councils, each alone in the service: a council on every row, roles held per council, row-level security

Existing rows move into a council: the one named on the command line (``flask db upgrade -x
council=halton``), or else the council inferred from each pathway's key prefix (``halton_step_up`` is
Halton's). A deployment that held several councils' files is split, each council keeping its own files
(and any file no council's prefix names). A user's roles become roles in each council they acted in
(started a case, held or closed a task); with a single council, in that council. Anyone else keeps no
role: give it with ``flask users create NAME --council KEY --role ROLE``.

On PostgreSQL every council table gets a row-level security policy keyed by ``app.council_id``, which
the service sets in every transaction (``service.tenancy``): a query without it sees nothing.

Revision ID: 5a1e0c0c1110
Revises: 3c7e1901bb86
Create Date: 2026-11-30 14:20:00
"""
from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import context, op

revision = "5a1e0c0c1110"
down_revision = "3c7e1901bb86"
branch_labels = None
depends_on = None

#: Tables whose rows belong to one council (``service.models.CouncilOwned``).
COUNCIL_TABLES = ("deployments", "deployment_files", "process_versions", "cases", "tasks", "task_roles",
                  "pending_timers", "audit_events", "notifications")
#: The reference councils, by the key prefix of their pathways: (name, country).
KNOWN_COUNCILS = {
    "carmarthenshire": ("Carmarthenshire County Council", "wales"),
    "somerset": ("Somerset Council", "england"),
    "halton": ("Halton Borough Council", "england"),
    "afc": ("Achieving for Children (Kingston and Richmond)", "england"),
    "rochdale": ("Rochdale Borough Council", "england"),
}
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")


def upgrade():
    op.create_table(
        "councils",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("country", sa.String(20), nullable=False),
        sa.Column("closure_days", sa.JSON(), nullable=False),
        sa.Column("office_opens", sa.String(5), nullable=False),
        sa.Column("office_closes", sa.String(5), nullable=False),
        sa.Column("email_sender", sa.String(254)),
        sa.Column("retention_days", sa.Integer()),
        sa.Column("brand_colour", sa.String(7)),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), primary_key=True),
        sa.Column("role", sa.String(80), primary_key=True),
    )
    op.create_index("ix_memberships_council_role", "memberships", ["council_id", "role"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_operator", sa.Boolean(), nullable=False, server_default=sa.false()))
    for table in COUNCIL_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("council_id", sa.Integer(), nullable=True))

    _move_rows_into_councils(op.get_bind(), context.get_x_argument(as_dictionary=True).get("council"))

    postgres = op.get_bind().dialect.name == "postgresql"
    for table in COUNCIL_TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.alter_column("council_id", existing_type=sa.Integer(), nullable=False)
            batch.create_foreign_key(f"fk_{table}_council_id", "councils", ["council_id"], ["id"])
            batch.create_index(f"ix_{table}_council_id", ["council_id"])
    with op.batch_alter_table("deployments", naming_convention=NAMING) as batch:
        batch.drop_constraint("deployments_content_hash_key" if postgres else "uq_deployments_content_hash",
                              type_="unique")
        batch.create_unique_constraint("uq_deployments_council_id", ["council_id", "content_hash"])
    with op.batch_alter_table("process_versions", naming_convention=NAMING) as batch:
        batch.drop_constraint("process_versions_key_version_key" if postgres else "uq_process_versions_key",
                              type_="unique")
        batch.create_unique_constraint("uq_process_versions_council_id", ["council_id", "key", "version"])
    op.drop_table("user_roles")
    if postgres:
        _row_level_security()


def _row_level_security() -> None:
    for table in COUNCIL_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")  # the tables' owner too
        op.execute(f"CREATE POLICY council_isolation ON {table} USING ({RLS_PREDICATE}) WITH CHECK ({RLS_PREDICATE})")
    # A user sees their own memberships before choosing the council they act for.
    op.execute("ALTER TABLE memberships ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE memberships FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY council_isolation ON memberships USING ({RLS_PREDICATE} "
               "OR user_id = NULLIF(current_setting('app.user_id', true), '')::integer) WITH CHECK (true)")


# -- moving existing rows into councils ------------------------------------------------------------

def _move_rows_into_councils(bind, named: str | None) -> None:
    versions = bind.execute(sa.text("SELECT id, key, deployment_id FROM process_versions")).all()
    users_with_roles = bind.execute(sa.text("SELECT user_id, role FROM user_roles")).all()
    if not versions and not users_with_roles and not bind.execute(sa.text("SELECT 1 FROM deployments")).first():
        return  # a new database: nothing to move
    if named:
        council = _council(bind, named)
        for table in COUNCIL_TABLES:
            bind.execute(sa.text(f"UPDATE {table} SET council_id = :c"), {"c": council})
        _memberships(bind, users_with_roles, {council}, {})
        return
    council_of_version = {v.id: _council(bind, _prefix(v.key)) for v in versions}
    _split_deployments(bind, versions, council_of_version)
    for version_id, council in council_of_version.items():
        bind.execute(sa.text("UPDATE process_versions SET council_id = :c WHERE id = :v"), {"c": council, "v": version_id})
    fallback = next(iter(sorted(set(council_of_version.values()))), None) or _council(bind, "default")
    _fill(bind, fallback)
    _memberships(bind, users_with_roles, set(council_of_version.values()) or {fallback}, _councils_acted_in(bind))


def _prefix(key: str) -> str:
    return key.split("_", 1)[0].lower()[:40] or "default"


def _council(bind, key: str) -> int:
    row = bind.execute(sa.text("SELECT id FROM councils WHERE key = :k"), {"k": key}).first()
    if row is not None:
        return row[0]
    name, country = KNOWN_COUNCILS.get(key, (key.replace("-", " ").title(), "england"))
    bind.execute(sa.text("INSERT INTO councils (key, name, country, closure_days, office_opens, office_closes, "
                         "requires_approval, created_at) VALUES (:k, :n, :c, '[]', '09:00', '17:00', :r, "
                         "CURRENT_TIMESTAMP)"), {"k": key, "n": name, "c": country, "r": True})
    return bind.execute(sa.text("SELECT id FROM councils WHERE key = :k"), {"k": key}).scalar_one()


def _split_deployments(bind, versions, council_of_version: dict[int, int]) -> None:
    """Each deployment goes to its processes' council; one that served several is copied per council."""
    keys = {row.id: row.key for row in bind.execute(sa.text("SELECT id, key FROM councils"))}
    by_deployment: dict[int, dict[int, list[int]]] = {}
    for v in versions:
        by_deployment.setdefault(v.deployment_id, {}).setdefault(council_of_version[v.id], []).append(v.id)
    for deployment_id, councils in by_deployment.items():
        first, *others = sorted(councils)
        bind.execute(sa.text("UPDATE deployments SET council_id = :c WHERE id = :d"), {"c": first, "d": deployment_id})
        for council in others:
            copy = _copy_deployment(bind, deployment_id, council, keys[council], set(keys.values()))
            for version_id in councils[council]:
                bind.execute(sa.text("UPDATE process_versions SET deployment_id = :d WHERE id = :v"),
                             {"d": copy, "v": version_id})
        _drop_other_councils_files(bind, deployment_id, keys[first], set(keys.values()))


def _belongs(name: str, prefix: str, prefixes: set[str]) -> bool:
    own = name.split("_", 1)[0].lower()
    return own == prefix or own not in prefixes


def _copy_deployment(bind, deployment_id: int, council: int, prefix: str, prefixes: set[str]) -> int:
    row = bind.execute(sa.text("SELECT content_hash, created_at, created_by FROM deployments WHERE id = :d"),
                       {"d": deployment_id}).one()
    marker = hashlib.sha256(f"{row.content_hash}:{prefix}".encode()).hexdigest()
    bind.execute(sa.text("INSERT INTO deployments (content_hash, created_at, created_by, council_id) "
                         "VALUES (:h, :a, :b, :c)"), {"h": marker, "a": row.created_at, "b": row.created_by, "c": council})
    copy = bind.execute(sa.text("SELECT id FROM deployments WHERE content_hash = :h AND council_id = :c"),
                        {"h": marker, "c": council}).scalar_one()
    for file in bind.execute(sa.text("SELECT name, content FROM deployment_files WHERE deployment_id = :d"),
                             {"d": deployment_id}).all():
        if _belongs(file.name, prefix, prefixes):
            bind.execute(sa.text("INSERT INTO deployment_files (deployment_id, name, content, council_id) "
                                 "VALUES (:d, :n, :c, :k)"), {"d": copy, "n": file.name, "c": file.content, "k": council})
    return copy


def _drop_other_councils_files(bind, deployment_id: int, prefix: str, prefixes: set[str]) -> None:
    for file in bind.execute(sa.text("SELECT id, name FROM deployment_files WHERE deployment_id = :d"),
                             {"d": deployment_id}).all():
        if not _belongs(file.name, prefix, prefixes):
            bind.execute(sa.text("DELETE FROM deployment_files WHERE id = :i"), {"i": file.id})


def _fill(bind, fallback: int) -> None:
    """Every other row takes the council of what it belongs to."""
    statements = [
        "UPDATE deployments SET council_id = :f WHERE council_id IS NULL",
        "UPDATE deployment_files SET council_id = (SELECT council_id FROM deployments d "
        "WHERE d.id = deployment_files.deployment_id) WHERE council_id IS NULL",
        "UPDATE cases SET council_id = (SELECT council_id FROM process_versions p WHERE p.id = cases.process_version_id)",
        "UPDATE tasks SET council_id = (SELECT council_id FROM cases c WHERE c.id = tasks.case_id)",
        "UPDATE task_roles SET council_id = (SELECT council_id FROM tasks t WHERE t.id = task_roles.task_id)",
        "UPDATE pending_timers SET council_id = (SELECT council_id FROM cases c WHERE c.id = pending_timers.case_id)",
        "UPDATE audit_events SET council_id = (SELECT council_id FROM cases c WHERE c.id = audit_events.case_id)",
        "UPDATE notifications SET council_id = (SELECT council_id FROM cases c WHERE c.id = notifications.case_id)",
    ]
    for statement in statements:
        bind.execute(sa.text(statement), {"f": fallback})
    for table in COUNCIL_TABLES:
        bind.execute(sa.text(f"UPDATE {table} SET council_id = :f WHERE council_id IS NULL"), {"f": fallback})


def _councils_acted_in(bind) -> dict[str, set[int]]:
    """User name -> the councils whose cases they started, or whose tasks they held or closed."""
    rows = bind.execute(sa.text(
        "SELECT started_by AS who, council_id FROM cases WHERE started_by IS NOT NULL "
        "UNION SELECT assignee, council_id FROM tasks WHERE assignee IS NOT NULL "
        "UNION SELECT closed_by, council_id FROM tasks WHERE closed_by IS NOT NULL")).all()
    acted: dict[str, set[int]] = {}
    for who, council in rows:
        acted.setdefault(who, set()).add(council)
    return acted


def _memberships(bind, users_with_roles, councils: set[int], acted: dict[str, set[int]]) -> None:
    names = {row.id: row.name for row in bind.execute(sa.text("SELECT id, name FROM users"))}
    for user_id, role in users_with_roles:
        targets = councils if len(councils) == 1 else acted.get(names.get(user_id), set())
        for council in targets:
            bind.execute(sa.text("INSERT INTO memberships (user_id, council_id, role) VALUES (:u, :c, :r)"),
                         {"u": user_id, "c": council, "r": role})


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in (*COUNCIL_TABLES, "memberships"):
            op.execute(f"DROP POLICY IF EXISTS council_isolation ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(80), primary_key=True),
    )
    op.create_index("ix_user_roles_role", "user_roles", ["role"])
    op.execute("INSERT INTO user_roles (user_id, role) SELECT DISTINCT user_id, role FROM memberships")
    with op.batch_alter_table("process_versions", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_process_versions_council_id", type_="unique")
        batch.create_unique_constraint("process_versions_key_version_key" if postgres else "uq_process_versions_key",
                                       ["key", "version"])
    with op.batch_alter_table("deployments", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_deployments_council_id", type_="unique")
        batch.create_unique_constraint("deployments_content_hash_key" if postgres else "uq_deployments_content_hash",
                                       ["content_hash"])
    for table in COUNCIL_TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            batch.drop_index(f"ix_{table}_council_id")
            batch.drop_constraint(f"fk_{table}_council_id", type_="foreignkey")
            batch.drop_column("council_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_operator")
    op.drop_index("ix_memberships_council_role", table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("councils")
