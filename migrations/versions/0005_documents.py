"""documents, and each user's stored bytes

Revision ID: 0005_documents
Revises: 0004_notes
Create Date: 2026-12-02

A subject's files. Each user carries the bytes of their documents (`storage_used`) and
how many they have (`documents_count`): the quota is a conditional UPDATE of that row in
the same transaction as the document's insert, so two uploads at once cannot both pass
it. Deleting a user or a subject deletes their documents in the database (ON DELETE
CASCADE); the stored objects are deleted by the application.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_documents"
down_revision = "0004_notes"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE, not batch mode: on SQLite batch mode rebuilds the table and
    # would lose the expression indexes (lower(email), lower(username)) it cannot reflect.
    op.add_column(
        "users", sa.Column("storage_used", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "users", sa.Column("documents_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="ready", nullable=False),
        sa.Column("text_status", sa.String(length=10), server_default="none", nullable=False),
        sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ready', 'uploading')", name=op.f("ck_documents_status")),
        sa.CheckConstraint(
            "text_status IN ('pending', 'ready', 'failed', 'none')",
            name=op.f("ck_documents_text_status"),
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_documents_size")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_documents_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_documents_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    with op.batch_alter_table("documents") as batch_op:
        batch_op.create_index("uq_documents_storage_key", ["storage_key"], unique=True)
        batch_op.create_index(
            "ix_documents_subject_created", ["subject_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_documents_subject_title",
            ["subject_id", sa.literal_column("lower(title)"), "id"],
            unique=False,
        )
        batch_op.create_index("ix_documents_subject_size", ["subject_id", "size", "id"], unique=False)
        batch_op.create_index("ix_documents_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_documents_status_created", ["status", "created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("documents") as batch_op:
        batch_op.drop_index("ix_documents_status_created")
        batch_op.drop_index("ix_documents_owner_id")
        batch_op.drop_index("ix_documents_subject_size")
        batch_op.drop_index("ix_documents_subject_title")
        batch_op.drop_index("ix_documents_subject_created")
        batch_op.drop_index("uq_documents_storage_key")
    op.drop_table("documents")
    op.drop_column("users", "documents_count")  # SQLite ≥ 3.35 drops columns in place
    op.drop_column("users", "storage_used")
