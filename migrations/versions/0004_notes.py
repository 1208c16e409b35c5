"""notes

Revision ID: 0004_notes
Revises: 0003_subject_counts
Create Date: 2026-12-02

Notes in subjects. A note's foreign key to its subject is (owner_id, subject_id) →
subjects (owner_id, id), so the database refuses a note in another user's subject; the
unique index it refers to is added to subjects first. One index per sort key of the
list (owner, subject, key, id), which also serves the cascades. Each subject carries the
number of its notes, kept by triggers: a frozen copy of eleva.data.models
NOTE_COUNT_TRIGGERS at this revision.

Plain (not batch) operations throughout: on SQLite a batch would rebuild `subjects`
and lose the subject-count triggers of 0003 (SQLite ≥ 3.35 drops columns in place).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_notes"
down_revision = "0003_subject_counts"
branch_labels = None
depends_on = None

POSTGRESQL = [
    # Statement-level on transition tables, as SUBJECT_COUNT_TRIGGERS and for the
    # same reason. (PostgreSQL allows no column list with transition tables: an
    # UPDATE that moves no note changes nothing, through the HAVING.)
    """
    CREATE OR REPLACE FUNCTION notes_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE subjects s SET note_count = s.note_count + d.n
              FROM (SELECT subject_id, count(*) AS n FROM new_rows GROUP BY subject_id) d
             WHERE s.id = d.subject_id;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE subjects s SET note_count = s.note_count - d.n
              FROM (SELECT subject_id, count(*) AS n FROM old_rows GROUP BY subject_id) d
             WHERE s.id = d.subject_id;
        ELSE
            UPDATE subjects s SET note_count = s.note_count + d.n
              FROM (SELECT subject_id, sum(n) AS n
                      FROM (SELECT subject_id, -1 AS n FROM old_rows
                            UNION ALL
                            SELECT subject_id, 1 FROM new_rows) changes
                     GROUP BY subject_id
                    HAVING sum(n) <> 0) d
             WHERE s.id = d.subject_id;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER notes_count_insert AFTER INSERT ON notes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
    """,
    """
    CREATE TRIGGER notes_count_delete AFTER DELETE ON notes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
    """,
    """
    CREATE TRIGGER notes_count_update AFTER UPDATE ON notes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
    """,
]

SQLITE = [
    """
    CREATE TRIGGER notes_count_insert AFTER INSERT ON notes BEGIN
        UPDATE subjects SET note_count = note_count + 1 WHERE id = NEW.subject_id;
    END
    """,
    """
    CREATE TRIGGER notes_count_delete AFTER DELETE ON notes BEGIN
        UPDATE subjects SET note_count = note_count - 1 WHERE id = OLD.subject_id;
    END
    """,
    """
    CREATE TRIGGER notes_count_update AFTER UPDATE OF subject_id ON notes
    WHEN OLD.subject_id IS NOT NEW.subject_id BEGIN
        UPDATE subjects SET note_count = note_count - 1 WHERE id = OLD.subject_id;
        UPDATE subjects SET note_count = note_count + 1 WHERE id = NEW.subject_id;
    END
    """,
]

TRIGGERS = ("notes_count_update", "notes_count_delete", "notes_count_insert")


def upgrade():
    op.add_column(
        "subjects", sa.Column("note_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_index("uq_subjects_owner_id_id", "subjects", ["owner_id", "id"], unique=True)
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("excerpt", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id", "subject_id"],
            ["subjects.owner_id", "subjects.id"],
            name="fk_notes_subject_subjects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_notes_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index(
        "ix_notes_owner_subject_updated", "notes", ["owner_id", "subject_id", "updated_at", "id"]
    )
    op.create_index(
        "ix_notes_owner_subject_created", "notes", ["owner_id", "subject_id", "created_at", "id"]
    )
    op.create_index(
        "ix_notes_owner_subject_title",
        "notes",
        ["owner_id", "subject_id", sa.literal_column("lower(title)"), "id"],
    )
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(
            f"DROP TRIGGER IF EXISTS {name} ON notes"
            if postgres
            else f"DROP TRIGGER IF EXISTS {name}"
        )
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS notes_count()")
    op.drop_table("notes")  # its indexes go with it
    op.drop_index("uq_subjects_owner_id_id", table_name="subjects")
    op.drop_column("subjects", "note_count")
