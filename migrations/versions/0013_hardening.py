"""hardening (issue 32): linear search vectors

Revision ID: 0013_hardening
Revises: 0010_user_changes
Create Date: 2026-12-10

- subjects, notes, documents: ``search_vector`` (and documents' ``rank_vector``) parse
  their text with its ASCII punctuation made spaces, so that PostgreSQL's default parser
  meets only words and blanks and parses any text in linear time (it rescanned to the end
  of the text after every unterminated comment, tag, email or path). A generated
  column's expression cannot be altered (before PostgreSQL 17): each is dropped and added
  again, which recomputes it for every row, and its GIN index is built again. SQLite has
  no vectors: nothing to do there.

The expressions are frozen copies of eleva.data.models at this revision.
"""

import string

from alembic import op

revision = "0013_hardening"
down_revision = "0010_user_changes"
branch_labels = None
depends_on = None

CONFIG = "eleva_search"
SEPARATORS = string.punctuation


def searchable(text: str) -> str:
    for char in SEPARATORS:
        literal = "chr(37)" if char == "%" else "'" + char.replace("'", "''") + "'"
        text = f"replace({text}, {literal}, ' ')"
    return text


def vector(title: str, body: str, *, linear: bool) -> str:
    wrap = searchable if linear else (lambda text: text)
    return (
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {wrap(title)}), 'A') || "
        f"setweight(to_tsvector('{CONFIG}'::regconfig, {wrap(body)}), 'B') || "
        "array_to_tsvector(ARRAY[chr(1) || owner_id::text])"
    )


# (table, column, title SQL, body SQL, indexed)
VECTORS = [
    ("subjects", "search_vector", "name", "coalesce(description, '')", True),
    ("notes", "search_vector", "title", "body", True),
    ("documents", "search_vector", "title", "filename || ' ' || extracted_text", True),
    ("documents", "rank_vector", "title", "filename || ' ' || left(extracted_text, 2000)", False),
]


def _rebuild_vectors(*, linear: bool) -> None:
    for table, column, title, body, indexed in VECTORS:
        op.execute(
            f"ALTER TABLE {table} DROP COLUMN {column}, ADD COLUMN {column} tsvector "
            f"GENERATED ALWAYS AS ({vector(title, body, linear=linear)}) STORED"
        )
        if indexed:  # the GIN index went with the column
            op.execute(
                f"CREATE INDEX ix_{table}_search ON {table} USING gin (owner_id, {column})"
            )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild_vectors(linear=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild_vectors(linear=False)
