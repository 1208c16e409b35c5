"""search: stored vectors, and the text extracted from documents

Revision ID: 0009_search_vectors
Revises: 0006_accounts
Create Date: 2026-12-03

- documents.extracted_text: what the text-extraction job read from the file;
- subjects, notes, documents: ``search_vector``, a column the database generates from
  the row (PostgreSQL: the weighted tsvector, stored, so that ranking reads it instead
  of parsing every match's text again; SQLite: NULL, it has no tsvector), and on
  PostgreSQL the GIN index (owner_id, search_vector) in place of 0008's expression
  index. Each vector also holds its owner as a lexeme no text can make (chr(1) and
  the owner's id), which every search asks for; documents also get ``rank_vector`` (title, file name and the first 2,000
  characters of text: what they are ranked by), and on PostgreSQL lose the btree on
  owner_id, which the search index (leading with owner_id) replaces; the sweep's index
  on (status, created_at) becomes a partial one on uploads in progress.
The expressions are frozen copies of eleva.data.models at this revision.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_search_vectors"
down_revision = "0006_accounts"
branch_labels = None
depends_on = None

CONFIG = "eleva_search"


def vector(title: str, body: str, *, owner: bool = True) -> str:
    return (
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {title}), 'A') || "
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {body}), 'B')"
        + (" || array_to_tsvector(ARRAY[chr(1) || owner_id::text])" if owner else "")
    )


VECTORS = {
    "subjects": ("name", "coalesce(description, '')"),
    "notes": ("title", "body"),
    "documents": ("title", "filename || ' ' || extracted_text"),
}
RANKED = ("title", "filename || ' ' || left(extracted_text, 2000)")
# 0008's expression indexes, put back by the downgrade.
OLD_INDEXES = {
    "subjects": ("name", "coalesce(description, '')"),
    "notes": ("title", "body"),
    "documents": ("title", "filename"),
}


def vector_column(name: str, title: str, body: str, postgres: bool) -> sa.Column:
    return sa.Column(
        name,
        postgresql.TSVECTOR() if postgres else sa.Text(),
        # SQLite adds only virtual generated columns to a table.
        sa.Computed(sa.text(vector(title, body) if postgres else "NULL"), persisted=postgres or None),
        nullable=True,
    )


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("extracted_text", sa.Text(), server_default="", nullable=False)
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (title, body) in VECTORS.items():
        if postgres:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        op.add_column(table, vector_column("search_vector", title, body, postgres))
        if postgres:
            op.execute(
                f"CREATE INDEX ix_{table}_search ON {table} USING gin (owner_id, search_vector)"
            )
    op.add_column("documents", vector_column("rank_vector", *RANKED, postgres))
    if postgres:
        op.drop_index("ix_documents_owner_id", table_name="documents")
    # Only uploads in progress are looked up by status (the sweep).
    op.drop_index("ix_documents_status_created", table_name="documents")
    op.create_index(
        "ix_documents_uploading_created",
        "documents",
        ["created_at"],
        postgresql_where=sa.text("status = 'uploading'"),
        sqlite_where=sa.text("status = 'uploading'"),
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_documents_uploading_created", table_name="documents")
    op.create_index("ix_documents_status_created", "documents", ["status", "created_at"])
    if postgres:
        op.create_index("ix_documents_owner_id", "documents", ["owner_id"])
    op.drop_column("documents", "rank_vector")
    for table in VECTORS:
        if postgres:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        op.drop_column(table, "search_vector")
        if postgres:
            title, body = OLD_INDEXES[table]
            op.execute(
                f"CREATE INDEX ix_{table}_search ON {table} "
                f"USING gin (owner_id, ({vector(title, body, owner=False)}))"
            )
    op.drop_column("documents", "extracted_text")
