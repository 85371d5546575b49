"""Data protection: case data, state, audit details, drafts and notification bodies encrypted; the audit log
chained per council and never deleted with its case; an access log; retention per pathway

Existing values are encrypted with the current key of ``DATA_ENCRYPTION_KEYS`` (run ``flask db upgrade`` with
the service's keys set), and existing audit events are chained per council in the order they happened.
On PostgreSQL the new council tables get the row-level security policy of migration ``5a1e0c0c1110``.

Revision ID: d7a3b9c4e215
Revises: 7c0f11e5a1b2
Create Date: 2026-11-30 14:40:00
"""
from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from service import audit, encryption
from service.models import UTCDateTime

revision = "d7a3b9c4e215"
down_revision = "7c0f11e5a1b2"
branch_labels = None
depends_on = None

#: Columns that held JSON and now hold a Fernet token of it.
JSON_COLUMNS = (("cases", "data"), ("cases", "error"), ("tasks", "draft"), ("audit_events", "detail"))
NEW_COUNCIL_TABLES = ("audit_chains", "access_events")
RLS_PREDICATE = ("current_setting('app.all_councils', true) = 'on' "
                 "OR council_id = NULLIF(current_setting('app.council_id', true), '')::integer")
FK_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the tables' owner is under row-level security too (FORCE): the migration sees every council
        op.execute("SELECT set_config('app.all_councils', 'on', true)")
    with op.batch_alter_table("councils") as batch:
        batch.add_column(sa.Column("retention_by_pathway", sa.JSON()))
    with op.batch_alter_table("audit_events", naming_convention=FK_NAMING) as batch:
        batch.add_column(sa.Column("seq", sa.Integer()))
        for name in ("detail_hash", "prev_hash", "hash"):
            batch.add_column(sa.Column(name, sa.String(64)))
        batch.drop_constraint("audit_events_case_id_fkey" if postgres else "fk_audit_events_case_id_cases",
                              type_="foreignkey")
        batch.create_foreign_key("fk_audit_events_case_id_cases", "cases", ["case_id"], ["id"], ondelete="RESTRICT")
        batch.create_unique_constraint("uq_audit_events_council_id_seq", ["council_id", "seq"])
    op.create_table(
        "audit_chains",
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "access_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("council_id", sa.Integer(), sa.ForeignKey("councils.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("actor", sa.String(80), nullable=False, index=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="RESTRICT"), nullable=False,
                  index=True),
        sa.Column("task_id", sa.String(36)),
        sa.Column("purpose", sa.String(40), nullable=False),
    )
    _chain_existing_events(op.get_bind())
    for table, column in JSON_COLUMNS:  # after the chain: its hashes are of the details as they were
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.Text(), existing_type=sa.JSON(), postgresql_using=f"{column}::text")
    _encrypt_existing_values(op.get_bind(), encryption.encrypt)
    if postgres:
        for table in NEW_COUNCIL_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY council_isolation ON {table} USING ({RLS_PREDICATE}) "
                       f"WITH CHECK ({RLS_PREDICATE})")


def _chain_existing_events(bind) -> None:
    """Chain every council's existing events in the order they happened (their details still plain)."""
    events = sa.table("audit_events", sa.column("id"), sa.column("council_id"), sa.column("case_id"),
                      sa.column("at", UTCDateTime()), sa.column("actor"), sa.column("event"), sa.column("task"),
                      sa.column("detail", sa.JSON()), sa.column("seq"), sa.column("detail_hash"),
                      sa.column("prev_hash"), sa.column("hash"))
    chains = sa.table("audit_chains", sa.column("council_id"), sa.column("seq"), sa.column("last_hash"))
    for (council_id,) in bind.execute(sa.text("SELECT id FROM councils ORDER BY id")).all():
        seq, last = 0, ""
        rows = bind.execute(sa.select(events).where(events.c.council_id == council_id)
                            .order_by(events.c.at, events.c.id)).all()
        for row in rows:
            seq += 1
            link = SimpleNamespace(**{**row._mapping, "seq": seq, "prev_hash": last,
                                      "detail_hash": audit.detail_hash(row.detail)})
            last = audit.event_hash(link)
            bind.execute(sa.update(events).where(events.c.id == row.id)
                         .values(seq=seq, prev_hash=link.prev_hash, detail_hash=link.detail_hash, hash=last))
        bind.execute(sa.insert(chains).values(council_id=council_id, seq=seq, last_hash=last))


def _encrypt_existing_values(bind, transform) -> None:
    for table_name, key, column in encryption.ENCRYPTED_COLUMNS:
        table = sa.table(table_name, sa.column(key), sa.column(column, sa.Text()))
        for row_key, value in bind.execute(sa.select(table.c[key], table.c[column])
                                           .where(table.c[column].is_not(None))).all():
            bind.execute(sa.update(table).where(table.c[key] == row_key).values({column: transform(value)}))


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("SELECT set_config('app.all_councils', 'on', true)")
    _encrypt_existing_values(op.get_bind(), encryption.decrypt)
    op.drop_table("access_events")
    op.drop_table("audit_chains")
    with op.batch_alter_table("audit_events", naming_convention=FK_NAMING) as batch:
        batch.drop_constraint("uq_audit_events_council_id_seq", type_="unique")
        batch.drop_constraint("fk_audit_events_case_id_cases", type_="foreignkey")
        batch.create_foreign_key("audit_events_case_id_fkey" if postgres else "fk_audit_events_case_id_cases",
                                 "cases", ["case_id"], ["id"], ondelete="CASCADE")
        for name in ("hash", "prev_hash", "detail_hash", "seq"):
            batch.drop_column(name)
    for table, column in JSON_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.JSON(), existing_type=sa.Text(), postgresql_using=f"{column}::json")
    with op.batch_alter_table("councils") as batch:
        batch.drop_column("retention_by_pathway")
