"""The messages and signals each case waits for, found by an index under row-level security

A signal reaches every active case of the council that waits for it, and a message with a correlation key every
case waiting for its name (``service.cases``): both found their cases by ``LIKE`` on the JSON lists
``waiting_for`` and ``waiting_signals``, which no index serves and which, not being leakproof, PostgreSQL applies
under row-level security only after reading the row. Every such signal or message read every case of the council:
a step that threw one, in a worker's request, at a million cases.

``case_waits`` holds one row per name, with the case's version (a keyed message is for the versions that wait for
it with a key), under the council wall's row-level security policy. Triggers on ``cases`` keep it equal to the two
lists and the version on every insert and every update of any of them, however the case is written (the step's
one statement, the ORM, COPY). The existing cases' rows are written here.

Revision ID: d4f7b2e9a6c1
Revises: c8e1a5d3f2b7
Create Date: 2026-12-02 12:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4f7b2e9a6c1"
down_revision = "c8e1a5d3f2b7"
branch_labels = None
depends_on = None

# The council wall as migration a4c9e1f3b7d2 left it: each setting read once a statement.
RLS_PREDICATE = ("(SELECT current_setting('app.all_councils', true)) = 'on' "
                 "OR council_id = (SELECT NULLIF(current_setting('app.council_id', true), '')::integer)")

KINDS = (("message", "waiting_for"), ("signal", "waiting_signals"))


def _inserts(postgres: bool, row: str) -> list[str]:
    """The statements writing the rows of the case ``row`` (``NEW`` in a trigger; ``cases``: every case), one per
    kind: a list that is not an array counts as empty, a name is written once."""
    each, of_type, empty, named = (("json_array_elements_text", "json_typeof", "'[]'::json", "j(value)") if postgres
                                   else ("json_each", "json_type", "'[]'", "j"))
    every = "cases, " if row == "cases" else ""  # a function in FROM may read the tables before it
    return [
        f"INSERT INTO case_waits (council_id, case_id, process_version_id, kind, name) "
        f"SELECT DISTINCT {row}.council_id, {row}.id, {row}.process_version_id, '{kind}', j.value FROM {every}{each}("
        f"CASE WHEN {of_type}({row}.{column}) = 'array' THEN {row}.{column} ELSE {empty} END) AS {named} "
        f"WHERE j.value IS NOT NULL" for kind, column in KINDS]


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "case_waits",
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("process_version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.Text(), primary_key=True),
    )
    if postgres:
        op.execute(f"""
            CREATE FUNCTION case_waits_written() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    DELETE FROM case_waits WHERE case_id = NEW.id;
                END IF;
                {"; ".join(_inserts(True, "NEW"))};
                RETURN NULL;
            END $$""")
        op.execute("CREATE TRIGGER case_waits_written AFTER INSERT OR UPDATE OF waiting_for, waiting_signals, "
                   "process_version_id ON cases FOR EACH ROW EXECUTE FUNCTION case_waits_written()")
        op.execute("SELECT set_config('app.all_councils', 'on', false)")  # every council's cases
        for statement in _inserts(True, "cases"):
            op.execute(statement)
    else:
        written = "; ".join(_inserts(False, "NEW"))
        op.execute(f"CREATE TRIGGER case_waits_inserted AFTER INSERT ON cases BEGIN {written}; END")
        op.execute(f"CREATE TRIGGER case_waits_updated AFTER UPDATE OF waiting_for, waiting_signals, "
                   f"process_version_id ON cases BEGIN DELETE FROM case_waits WHERE case_id = NEW.id; {written}; END")
        for statement in _inserts(False, "cases"):
            op.execute(statement)
    op.create_index("ix_case_waits_council_kind_name", "case_waits",
                    ["council_id", "kind", "name", "process_version_id", "case_id"])
    if postgres:
        op.execute("ALTER TABLE case_waits ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE case_waits FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY council_isolation ON case_waits USING ({RLS_PREDICATE}) "
                   f"WITH CHECK ({RLS_PREDICATE})")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER case_waits_written ON cases")
        op.execute("DROP FUNCTION case_waits_written()")
    else:
        op.execute("DROP TRIGGER case_waits_inserted")
        op.execute("DROP TRIGGER case_waits_updated")
    op.drop_index("ix_case_waits_council_kind_name", table_name="case_waits")
    op.drop_table("case_waits")
