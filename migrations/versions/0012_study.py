"""study: flashcards, their reviews, idempotency keys; study settings; exam dates

Revision ID: 0012_study
Revises: 0011_exact_core
Create Date: 2026-12-07

- cards: a subject's flashcards with their FSRS schedule, in the subject by
  (owner_id, subject_id) → subjects (owner_id, id) (cascade), the note they came from
  (SET NULL), a generated ``search_vector`` (PostgreSQL: the weighted tsvector and a GIN
  index; SQLite: NULL), indexes for the list's sort keys, the review queue and the
  stats' suspended cards;
- reviews: each review with the card's schedule before and after it (cascade with the
  card), indexed by card and by (owner_id, reviewed_at) for the stats;
- idempotency_keys: the answers kept for requests sent with an Idempotency-Key;
- users: study settings (server defaults: old rows and old clients keep working);
  subjects: exam_date.
Plain add_column (no batch): on SQLite a batch would rebuild users and subjects. The
settings' CHECK constraints are PostgreSQL's only here (SQLite cannot add one to an
existing table without rebuilding it). The vector expression is a frozen copy of
eleva.data.models at this revision.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_study"
down_revision = "0011_exact_core"
branch_labels = None
depends_on = None

VECTOR = (
    "setweight(to_tsvector('eleva_search'::regconfig, front), 'A') || "
    "setweight(to_tsvector('eleva_search'::regconfig, back), 'B') || "
    "array_to_tsvector(ARRAY[chr(1) || owner_id::text])"
)
STATES = "IN ('new', 'learning', 'review', 'relearning')"
USER_CHECKS = {
    "study_day_starts_at_hour": "study_day_starts_at_hour BETWEEN 0 AND 23",
    "study_new_cards_per_day": "study_new_cards_per_day BETWEEN 0 AND 1000",
    "study_desired_retention": "study_desired_retention BETWEEN 0.7 AND 0.99",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "users", sa.Column("study_timezone", sa.String(64), server_default="UTC", nullable=False)
    )
    op.add_column(
        "users",
        sa.Column(
            "study_day_starts_at_hour", sa.SmallInteger(), server_default="4", nullable=False
        ),
    )
    op.add_column(
        "users",
        sa.Column("study_new_cards_per_day", sa.Integer(), server_default="20", nullable=False),
    )
    op.add_column(
        "users",
        sa.Column("study_desired_retention", sa.Float(), server_default="0.9", nullable=False),
    )
    if postgres:
        for name, check in USER_CHECKS.items():
            op.create_check_constraint(name, "users", check)
    op.add_column("subjects", sa.Column("exam_date", sa.Date(), nullable=True))

    op.create_table(
        "cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=True),
        sa.Column("front", sa.Text(), nullable=False),
        sa.Column("back", sa.Text(), server_default="", nullable=False),
        sa.Column("state", sa.String(10), server_default="new", nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=True),
        sa.Column("stability", sa.Float(), nullable=True),
        sa.Column("difficulty", sa.Float(), nullable=True),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reps", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lapses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("suspended", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR() if postgres else sa.Text(),
            sa.Computed(sa.text(VECTOR if postgres else "NULL"), persisted=True),
            nullable=True,
        ),
        sa.CheckConstraint(f"state {STATES}", name=op.f("ck_cards_state")),
        sa.CheckConstraint("reps >= 0 AND lapses >= 0", name=op.f("ck_cards_counts")),
        sa.ForeignKeyConstraint(
            ["note_id"], ["notes.id"], name=op.f("fk_cards_note_id_notes"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id", "subject_id"],
            ["subjects.owner_id", "subjects.id"],
            name="fk_cards_subject_subjects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_cards_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
    )
    op.create_index("ix_cards_owner_subject_due", "cards", ["owner_id", "subject_id", "due", "id"])
    op.create_index(
        "ix_cards_owner_subject_created", "cards", ["owner_id", "subject_id", "created_at", "id"]
    )
    op.create_index(
        "ix_cards_queue",
        "cards",
        ["owner_id", "state", "due", "id"],
        postgresql_where=sa.text("NOT suspended"),
        sqlite_where=sa.text("NOT suspended"),
    )
    op.create_index(
        "ix_cards_suspended",
        "cards",
        ["owner_id", "subject_id"],
        postgresql_where=sa.text("suspended"),
        sqlite_where=sa.text("suspended"),
    )
    op.create_index(
        "ix_cards_note_id",
        "cards",
        ["note_id"],
        postgresql_where=sa.text("note_id IS NOT NULL"),
        sqlite_where=sa.text("note_id IS NOT NULL"),
    )
    if postgres:
        op.execute("CREATE INDEX ix_cards_search ON cards USING gin (owner_id, search_vector)")

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("before_state", sa.String(10), nullable=False),
        sa.Column("before_step", sa.SmallInteger(), nullable=True),
        sa.Column("before_stability", sa.Float(), nullable=True),
        sa.Column("before_difficulty", sa.Float(), nullable=True),
        sa.Column("before_due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before_last_review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("before_reps", sa.Integer(), nullable=False),
        sa.Column("before_lapses", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=True),
        sa.Column("stability", sa.Float(), nullable=False),
        sa.Column("difficulty", sa.Float(), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"before_state {STATES}", name=op.f("ck_reviews_before_state")),
        sa.CheckConstraint(f"state {STATES}", name=op.f("ck_reviews_state")),
        sa.CheckConstraint(
            "duration_ms BETWEEN 0 AND 3600000", name=op.f("ck_reviews_duration_ms")
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 4", name=op.f("ck_reviews_rating")),
        sa.ForeignKeyConstraint(
            ["card_id"], ["cards.id"], name=op.f("fk_reviews_card_id_cards"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_reviews_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index("ix_reviews_card_id", "reviews", ["card_id", "id"])
    op.create_index(
        "ix_reviews_owner_reviewed",
        "reviews",
        ["owner_id", "reviewed_at"],
        postgresql_include=["rating", "duration_ms", "before_state"],
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "uq_idempotency_keys_user_key", "idempotency_keys", ["user_id", "key"], unique=True
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_table("idempotency_keys")
    op.drop_table("reviews")
    op.drop_table("cards")
    op.drop_column("subjects", "exam_date")
    if postgres:
        for name in USER_CHECKS:
            op.drop_constraint(op.f(f"ck_users_{name}"), "users", type_="check")
    for column in (
        "study_desired_retention",
        "study_new_cards_per_day",
        "study_day_starts_at_hour",
        "study_timezone",
    ):
        op.drop_column("users", column)
