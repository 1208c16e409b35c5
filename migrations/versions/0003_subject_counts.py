"""subject counts per user, kept by triggers

Revision ID: 0003_subject_counts
Revises: 0002_subjects
Create Date: 2026-11-26

The subject list's total must not cost a count(*) that grows with a user's subjects
(100,000 subjects made the list 3.4× slower than 100). Each user carries the number of
their active and archived subjects, kept exact by triggers on `subjects` whatever writes
them (the API, `flask seed`, plain SQL, cascades). The statements are a frozen copy of
eleva.models.SUBJECT_COUNT_TRIGGERS at this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_subject_counts"
down_revision = "0002_subjects"
branch_labels = None
depends_on = None

POSTGRESQL = [
    # Statement-level, on transition tables: a bulk INSERT or a cascade of 100,000
    # rows updates each owner once. (A row trigger would update one users row
    # 100,000 times in a transaction, each update slower than the last.)
    """
    CREATE OR REPLACE FUNCTION subjects_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE users u SET subjects_active = u.subjects_active + d.active,
                               subjects_archived = u.subjects_archived + d.archived
              FROM (SELECT owner_id, count(*) FILTER (WHERE NOT is_archived) AS active,
                           count(*) FILTER (WHERE is_archived) AS archived
                      FROM new_rows GROUP BY owner_id) d
             WHERE u.id = d.owner_id;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE users u SET subjects_active = u.subjects_active - d.active,
                               subjects_archived = u.subjects_archived - d.archived
              FROM (SELECT owner_id, count(*) FILTER (WHERE NOT is_archived) AS active,
                           count(*) FILTER (WHERE is_archived) AS archived
                      FROM old_rows GROUP BY owner_id) d
             WHERE u.id = d.owner_id;
        ELSE
            UPDATE users u SET subjects_active = u.subjects_active + d.active,
                               subjects_archived = u.subjects_archived + d.archived
              FROM (SELECT owner_id, sum(active) AS active, sum(archived) AS archived
                      FROM (SELECT owner_id, -(NOT is_archived)::int AS active,
                                   -is_archived::int AS archived FROM old_rows
                            UNION ALL
                            SELECT owner_id, (NOT is_archived)::int, is_archived::int
                              FROM new_rows) changes
                     GROUP BY owner_id
                    HAVING sum(active) <> 0 OR sum(archived) <> 0) d
             WHERE u.id = d.owner_id;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER subjects_count_insert AFTER INSERT ON subjects
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
    """,
    """
    CREATE TRIGGER subjects_count_delete AFTER DELETE ON subjects
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
    """,
    """
    CREATE TRIGGER subjects_count_update AFTER UPDATE ON subjects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
    """,
]

SQLITE = [
    """
    CREATE TRIGGER subjects_count_insert AFTER INSERT ON subjects BEGIN
        UPDATE users SET subjects_active = subjects_active + (NOT NEW.is_archived),
                         subjects_archived = subjects_archived + NEW.is_archived
         WHERE id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER subjects_count_delete AFTER DELETE ON subjects BEGIN
        UPDATE users SET subjects_active = subjects_active - (NOT OLD.is_archived),
                         subjects_archived = subjects_archived - OLD.is_archived
         WHERE id = OLD.owner_id;
    END
    """,
    """
    CREATE TRIGGER subjects_count_update AFTER UPDATE OF is_archived, owner_id ON subjects
    WHEN OLD.is_archived IS NOT NEW.is_archived OR OLD.owner_id IS NOT NEW.owner_id BEGIN
        UPDATE users SET subjects_active = subjects_active - (NOT OLD.is_archived),
                         subjects_archived = subjects_archived - OLD.is_archived
         WHERE id = OLD.owner_id;
        UPDATE users SET subjects_active = subjects_active + (NOT NEW.is_archived),
                         subjects_archived = subjects_archived + NEW.is_archived
         WHERE id = NEW.owner_id;
    END
    """,
]


def upgrade():
    # Plain ALTER TABLE, not batch mode: on SQLite batch mode rebuilds the table and
    # would lose the expression indexes (lower(email), lower(username)) it cannot reflect.
    op.add_column("users", sa.Column("subjects_active", sa.Integer(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("subjects_archived", sa.Integer(), server_default="0", nullable=False))
    # Count what is already there, then let the triggers keep it exact.
    op.execute(
        """
        UPDATE users SET
            subjects_active = (SELECT count(*) FROM subjects s
                               WHERE s.owner_id = users.id AND NOT s.is_archived),
            subjects_archived = (SELECT count(*) FROM subjects s
                                 WHERE s.owner_id = users.id AND s.is_archived)
        """
    )
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in ("subjects_count_update", "subjects_count_delete", "subjects_count_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON subjects")
        op.execute("DROP FUNCTION IF EXISTS subjects_count()")
    else:
        for name in ("subjects_count_update", "subjects_count_delete", "subjects_count_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_column("users", "subjects_archived")  # SQLite ≥ 3.35 drops columns in place
    op.drop_column("users", "subjects_active")
