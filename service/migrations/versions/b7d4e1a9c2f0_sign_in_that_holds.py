"""Sign-in that holds: API tokens that expire and can be revoked, sign-in locks and attempts, session versions

Each user's single ``users.token_hash`` becomes a row of ``api_tokens`` (several per user, each with an
expiry, a revocation time and when it was last used): an existing token keeps working until it expires,
90 days after this upgrade, so that no token lives for ever. Failed sign-ins are no longer counted on the
user (``failed_sign_ins``, ``locked_until``) but per user name and address (``sign_in_locks``), with a log
of attempts for the rate limits (``sign_in_attempts``). ``users.session_version`` ends every session of a
user when it is raised (sign-out, a new password, new roles).

Downgrading puts back each user's most recently issued token that is still valid.

Revision ID: b7d4e1a9c2f0
Revises: 6b2f1d2e3a40
Create Date: 2026-11-30 14:30:00
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = "b7d4e1a9c2f0"
down_revision = "6b2f1d2e3a40"
branch_labels = None
depends_on = None

#: How long a token moved from ``users.token_hash`` stays valid (the service's default for new tokens).
MOVED_TOKENS_LAST = timedelta(days=90)
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade():
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "sign_in_locks",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("address", sa.String(45), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("address", sa.String(45), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sign_in_attempts_name_at", "sign_in_attempts", ["name", "at"])
    op.create_index("ix_sign_in_attempts_address_at", "sign_in_attempts", ["address", "at"])
    op.create_index("ix_sign_in_attempts_at", "sign_in_attempts", ["at"])

    now = datetime.now(timezone.utc)
    op.get_bind().execute(
        sa.text("INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at) "
                "SELECT id, token_hash, 'moved from users.token_hash', :now, :expires FROM users "
                "WHERE token_hash IS NOT NULL"), {"now": now, "expires": now + MOVED_TOKENS_LAST})
    with op.batch_alter_table("users", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint(_token_constraint(), type_="unique")
        batch.drop_column("token_hash")
        batch.drop_column("failed_sign_ins")
        batch.drop_column("locked_until")


def downgrade():
    with op.batch_alter_table("users", naming_convention=NAMING) as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64)))
        batch.add_column(sa.Column("failed_sign_ins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True)))
        batch.create_unique_constraint(_token_constraint(), ["token_hash"])
        batch.drop_column("session_version")
    op.get_bind().execute(
        sa.text("UPDATE users SET token_hash = (SELECT t.token_hash FROM api_tokens t WHERE t.user_id = users.id "
                "AND t.revoked_at IS NULL AND t.expires_at > :now ORDER BY t.created_at DESC, t.id DESC LIMIT 1)"),
        {"now": datetime.now(timezone.utc)})
    op.drop_index("ix_sign_in_attempts_at", table_name="sign_in_attempts")
    op.drop_index("ix_sign_in_attempts_address_at", table_name="sign_in_attempts")
    op.drop_index("ix_sign_in_attempts_name_at", table_name="sign_in_attempts")
    op.drop_table("sign_in_attempts")
    op.drop_table("sign_in_locks")
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")


def _token_constraint() -> str:
    """The initial schema's unnamed UNIQUE (token_hash): PostgreSQL's name for it, or the batch name on SQLite."""
    return "users_token_hash_key" if op.get_bind().dialect.name == "postgresql" else "uq_users_token_hash"
