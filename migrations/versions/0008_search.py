"""full-text search: unaccent, a language-neutral configuration, GIN indexes

Revision ID: 0008_search
Revises: 0005_documents
Create Date: 2026-12-02

PostgreSQL only (SQLite searches without an index: eleva.services.search). The index
expressions are frozen copies of eleva.data.models.search_vector at this revision.
"""

from alembic import op

revision = "0008_search"
down_revision = "0005_documents"
branch_labels = None
depends_on = None

CONFIG = "eleva_search"


def vector(title: str, body: str) -> str:
    return (
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {title}), 'A') || "
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {body}), 'B')"
    )


INDEXES = {
    "subjects": ("name", "coalesce(description, '')"),
    "notes": ("title", "body"),
    "documents": ("title", "filename"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Both are trusted extensions (PostgreSQL 13+): a database owner may create them.
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    # "simple" splits words and lower-cases them in any language; unaccent first.
    op.execute(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = simple)")
    op.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple"
    )
    for table, (title, body) in INDEXES.items():
        op.execute(
            f"CREATE INDEX ix_{table}_search ON {table} "
            f"USING gin (owner_id, ({vector(title, body)}))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
    op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {CONFIG}")
    op.execute("DROP EXTENSION IF EXISTS btree_gin")
    op.execute("DROP EXTENSION IF EXISTS unaccent")
