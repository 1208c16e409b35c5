"""search: stored vectors, and the text extracted from documents

Revision ID: 0009_search_vectors
Revises: 0006_accounts
Create Date: 2026-12-03

- documents.extracted_text: what the text-extraction job read from the file;
- subjects, notes, documents: ``search_vector``, a column the database generates from
  the row (PostgreSQL: the weighted tsvector, stored, so that ranking reads it instead
  of parsing every match's text again; SQLite: NULL, it has no tsvector), and on
  PostgreSQL the GIN index (owner_id, search_vector) in place of 0008's expression
  index. The expressions are frozen copies of eleva.data.models at this revision.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_search_vectors"
down_revision = "0006_accounts"
branch_labels = None
depends_on = None

CONFIG = "eleva_search"


def vector(title: str, body: str) -> str:
    return (
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {title}), 'A') || "
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {body}), 'B')"
    )


VECTORS = {
    "subjects": ("name", "coalesce(description, '')"),
    "notes": ("title", "body"),
    "documents": ("title", "filename || ' ' || extracted_text"),
}
# 0008's expression indexes, put back by the downgrade.
OLD_INDEXES = {
    "subjects": ("name", "coalesce(description, '')"),
    "notes": ("title", "body"),
    "documents": ("title", "filename"),
}


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("extracted_text", sa.Text(), server_default="", nullable=False)
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (title, body) in VECTORS.items():
        if postgres:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        op.add_column(
            table,
            sa.Column(
                "search_vector",
                postgresql.TSVECTOR() if postgres else sa.Text(),
                # SQLite adds only virtual generated columns to a table.
                sa.Computed(
                    sa.text(vector(title, body) if postgres else "NULL"), persisted=postgres or None
                ),
                nullable=True,
            ),
        )
        if postgres:
            op.execute(
                f"CREATE INDEX ix_{table}_search ON {table} USING gin (owner_id, search_vector)"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in VECTORS:
        if postgres:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        op.drop_column(table, "search_vector")
        if postgres:
            title, body = OLD_INDEXES[table]
            op.execute(
                f"CREATE INDEX ix_{table}_search ON {table} "
                f"USING gin (owner_id, ({vector(title, body)}))"
            )
    op.drop_column("documents", "extracted_text")
