"""accounts: email verification, reset and verification tokens, login session details

Revision ID: 0006_accounts
Revises: 0008_search
Create Date: 2026-12-02

- users.email_verified (false for every existing account: none has confirmed one yet);
- account_tokens: the hashes of the single-use secrets sent by email;
- login_sessions: the device and address of the login, when it was last used (login or
  refresh; backfilled from what is known), and the refresh token it last replaced (the
  refresh grace period).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_accounts"
down_revision = "0008_search"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE, not batch mode: on SQLite batch mode rebuilds the table and
    # would lose the expression indexes (lower(email), lower(username)) it cannot reflect.
    op.add_column(
        "users", sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    for column in (
        sa.Column("previous_jti", sa.String(length=36), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("device", sa.String(length=100), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
    ):
        op.add_column("login_sessions", column)
    op.execute("UPDATE login_sessions SET last_used_at = COALESCE(refreshed_at, created_at)")

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('reset', 'verify')", name=op.f("ck_account_tokens_purpose")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
    )
    op.create_index(op.f("ix_account_tokens_user_id"), "account_tokens", ["user_id"], unique=False)
    op.create_index("uq_account_tokens_digest", "account_tokens", ["digest"], unique=True)


def downgrade():
    op.drop_index("uq_account_tokens_digest", table_name="account_tokens")
    op.drop_index(op.f("ix_account_tokens_user_id"), table_name="account_tokens")
    op.drop_table("account_tokens")
    # SQLite ≥ 3.35 drops columns in place.
    for name in ("ip", "device", "last_used_at", "previous_jti"):
        op.drop_column("login_sessions", name)
    op.drop_column("users", "email_verified")
