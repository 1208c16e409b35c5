"""subjects

Revision ID: 0002_subjects
Revises: 0001_users
Create Date: 2026-11-26

One index per sort key of the list query (owner, archive state, key, id), and a
case-insensitive unique name per owner. Deleting a user deletes their subjects in the
database itself (ON DELETE CASCADE), not only through the ORM.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_subjects"
down_revision = "0001_users"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("color", sa.String(length=7), nullable=True),
        sa.Column("is_archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_subjects_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
    )
    with op.batch_alter_table("subjects") as batch_op:
        batch_op.create_index(
            "uq_subjects_owner_name_lower", ["owner_id", sa.literal_column("lower(name)")], unique=True
        )
        batch_op.create_index(
            "ix_subjects_owner_updated", ["owner_id", "is_archived", "updated_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_subjects_owner_created", ["owner_id", "is_archived", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_subjects_owner_name",
            ["owner_id", "is_archived", sa.literal_column("lower(name)"), "id"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("subjects") as batch_op:
        batch_op.drop_index("ix_subjects_owner_name")
        batch_op.drop_index("ix_subjects_owner_created")
        batch_op.drop_index("ix_subjects_owner_updated")
        batch_op.drop_index("uq_subjects_owner_name_lower")
    op.drop_table("subjects")
