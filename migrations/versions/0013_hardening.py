"""hardening (issue 32): linear search vectors, email revert links, a job outbox, notes in
the storage quota, a bounded extraction queue per user

Revision ID: 0013_hardening
Revises: 0012_study
Create Date: 2026-12-10

- subjects, notes, documents, cards: ``search_vector`` (and documents' ``rank_vector``) parse
  their text with its ASCII punctuation made spaces, so that PostgreSQL's default parser
  meets only words and blanks and parses any text in linear time (it rescanned to the end
  of the text after every unterminated comment, tag, email or path). A generated
  column's expression cannot be altered (before PostgreSQL 17): each is dropped and added
  again, which recomputes it for every row, and its GIN index is built again. SQLite has
  no vectors: nothing to do there.
- account_tokens: a third purpose, ``revert`` (the "this wasn't me" link of an email
  change), and a partial index on the addresses revert tokens keep.
- job_outbox: jobs written in the transaction of the change they report (a job about a
  user goes with the user's row).
- notes.size: the UTF-8 bytes of title and body, which users.storage_used now counts.
- documents.text_queued_at: when the text extraction was queued (NULL: waiting for one
  of the owner's places in the queue); documents pending now count as queued.
- notes.excerpt: made again where it holds a "<" (an excerpt could turn escaped text back
  into a tag), by eleva.core.markdown.excerpt, the rule the app writes them with.

The expressions are frozen copies of eleva.data.models at this revision.
"""

import string

import sqlalchemy as sa
from alembic import op

revision = "0013_hardening"
down_revision = "0012_study"
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
    ("cards", "search_vector", "front", "back", True),
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
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # first: the backfill of notes.size below recomputes every vector
        _rebuild_vectors(linear=True)

    _token_purposes("'reset', 'verify', 'revert'")
    op.create_index(
        "ix_account_tokens_revert_email",
        "account_tokens",
        ["email"],
        postgresql_where=sa.text("purpose = 'revert'"),
        sqlite_where=sa.text("purpose = 'revert'"),
    )

    op.create_table(
        "job_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_job_outbox_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_outbox")),
    )
    op.create_index("ix_job_outbox_user_id", "job_outbox", ["user_id"])
    op.create_index(
        "ix_job_outbox_queued_created", "job_outbox", ["queued_at", "created_at"], unique=False
    )

    # Plain ALTER TABLE, not batch mode: on SQLite batch mode would rebuild notes and lose
    # its expression indexes.
    op.add_column("notes", sa.Column("size", sa.BigInteger(), server_default="0", nullable=False))
    octets = "octet_length({})" if postgres else "length(CAST({} AS BLOB))"
    op.execute(
        f"UPDATE notes SET size = {octets.format('title')} + {octets.format('body')}"
    )
    op.execute(
        "UPDATE users SET storage_used = storage_used + "
        "(SELECT sum(size) FROM notes WHERE notes.owner_id = users.id) "
        "WHERE EXISTS (SELECT 1 FROM notes WHERE notes.owner_id = users.id)"
    )

    _refresh_excerpts()

    op.add_column(
        "documents", sa.Column("text_queued_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute("UPDATE documents SET text_queued_at = updated_at WHERE text_status = 'pending'")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_column("documents", "text_queued_at")
    op.execute(
        "UPDATE users SET storage_used = storage_used - "
        "(SELECT sum(size) FROM notes WHERE notes.owner_id = users.id) "
        "WHERE EXISTS (SELECT 1 FROM notes WHERE notes.owner_id = users.id)"
    )
    op.drop_column("notes", "size")
    op.drop_index("ix_job_outbox_user_id", table_name="job_outbox")
    op.drop_index("ix_job_outbox_queued_created", table_name="job_outbox")
    op.drop_table("job_outbox")
    op.drop_index("ix_account_tokens_revert_email", table_name="account_tokens")
    op.execute("DELETE FROM account_tokens WHERE purpose = 'revert'")
    _token_purposes("'reset', 'verify'")
    if postgres:
        _rebuild_vectors(linear=False)


def _refresh_excerpts() -> None:
    from eleva.core.markdown import excerpt

    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, body FROM notes WHERE excerpt LIKE :tag"), {"tag": "%<%"}
    ).all()
    fresh = [{"id": row.id, "excerpt": excerpt(row.body)} for row in rows]
    if fresh:
        conn.execute(sa.text("UPDATE notes SET excerpt = :excerpt WHERE id = :id"), fresh)


def _token_purposes(purposes: str) -> None:
    # Batch mode: SQLite alters no constraint in place (account_tokens has no triggers).
    with op.batch_alter_table("account_tokens") as batch:
        batch.drop_constraint(op.f("ck_account_tokens_purpose"), type_="check")
        batch.create_check_constraint(
            op.f("ck_account_tokens_purpose"), f"purpose IN ({purposes})"
        )
