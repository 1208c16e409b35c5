"""user changes announced: NOTIFY on user_changes when a user or their sessions change

Revision ID: 0010_user_changes
Revises: 0009_search_vectors
Create Date: 2026-12-04

Each worker keeps every request's caller check (the user's row and their session) until
the database names the user on the channel ``user_changes``: these triggers do, when a
transaction that updated or deleted the user's row (but for its subject counters alone)
or one of their login sessions commits, whatever wrote it. PostgreSQL only (SQLite keeps nothing). The statements are a
frozen copy of eleva.data.models.USER_CHANGE_TRIGGERS at this revision.
"""

from alembic import op

revision = "0010_user_changes"
down_revision = "0009_search_vectors"
branch_labels = None
depends_on = None

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('user_changes', d.id::text)
               FROM (SELECT DISTINCT id FROM old_rows) d;
        ELSE
            -- Not for the subject counters alone: every subject written changes
            -- them, and nothing kept reads them.
            PERFORM pg_notify('user_changes', d.id::text)
               FROM (SELECT DISTINCT o.id
                       FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
                      WHERE to_jsonb(o) - '{subjects_active,subjects_archived}'::text[]
                            IS DISTINCT FROM
                            to_jsonb(n) - '{subjects_active,subjects_archived}'::text[]) d;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION login_sessions_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('user_changes', d.user_id::text)
           FROM (SELECT DISTINCT user_id FROM old_rows) d;
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION everyone_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- A TRUNCATE names no row: every worker forgets all it kept.
        PERFORM pg_notify('user_changes', '*');
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER users_changed_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_changed()
    """,
    """
    CREATE TRIGGER users_changed_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION users_changed()
    """,
    """
    CREATE TRIGGER login_sessions_changed_update AFTER UPDATE ON login_sessions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION login_sessions_changed()
    """,
    """
    CREATE TRIGGER login_sessions_changed_delete AFTER DELETE ON login_sessions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION login_sessions_changed()
    """,
    """
    CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION everyone_changed()
    """,
    """
    CREATE TRIGGER login_sessions_truncated AFTER TRUNCATE ON login_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION everyone_changed()
    """,
]

DROP = [
    "DROP TRIGGER IF EXISTS login_sessions_truncated ON login_sessions",
    "DROP TRIGGER IF EXISTS users_truncated ON users",
    "DROP TRIGGER IF EXISTS login_sessions_changed_delete ON login_sessions",
    "DROP TRIGGER IF EXISTS login_sessions_changed_update ON login_sessions",
    "DROP TRIGGER IF EXISTS users_changed_delete ON users",
    "DROP TRIGGER IF EXISTS users_changed_update ON users",
    "DROP FUNCTION IF EXISTS login_sessions_changed()",
    "DROP FUNCTION IF EXISTS users_changed()",
    "DROP FUNCTION IF EXISTS everyone_changed()",
]


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in DROP:
            op.execute(statement)
