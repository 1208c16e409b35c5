"""privacy: exports of a user's data, and erasures with a grace period

Revision ID: 0014_privacy
Revises: 0013_hardening
Create Date: 2026-12-08

- exports: each archive a user asked for (pending → ready | failed, then expired), its
  object in private storage;
- erasures: an account to erase at erase_at, the digest of the token that cancels it,
  and when the erasure began (from then on it only goes forward).

Both refer to users ON DELETE CASCADE, as every table does: erasing a user is deleting
their row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_privacy"
down_revision = "0013_hardening"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'failed', 'expired')", name=op.f("ck_exports_status")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_exports_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index(
        "ix_exports_user_requested", "exports", ["user_id", "requested_at", "id"], unique=False
    )
    op.create_index(
        "ix_exports_status_requested", "exports", ["status", "requested_at"], unique=False
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel_digest", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_erasures_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index("uq_erasures_user_id", "erasures", ["user_id"], unique=True)
    op.create_index("uq_erasures_cancel_digest", "erasures", ["cancel_digest"], unique=True)
    op.create_index("ix_erasures_erase_at", "erasures", ["erase_at"], unique=False)


def downgrade():
    op.drop_index("ix_erasures_erase_at", table_name="erasures")
    op.drop_index("uq_erasures_cancel_digest", table_name="erasures")
    op.drop_index("uq_erasures_user_id", table_name="erasures")
    op.drop_table("erasures")
    op.drop_index("ix_exports_status_requested", table_name="exports")
    op.drop_index("ix_exports_user_requested", table_name="exports")
    op.drop_table("exports")
