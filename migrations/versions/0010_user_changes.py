"""user changes announced: NOTIFY on user_changes when a user or their sessions change

Revision ID: 0010_user_changes
Revises: 0009_search_vectors
Create Date: 2026-12-04

Each worker keeps every request's caller check (the user's row and their session) until
the database names the user on the channel ``user_changes``: these triggers do, when a
transaction that updated or deleted the user's row or one of their login sessions
commits, whatever wrote it. PostgreSQL only (SQLite keeps nothing). The statements are a
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
        PERFORM pg_notify('user_changes', d.id::text)
           FROM (SELECT DISTINCT id FROM old_rows) d;
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
    CREATE TRIGGER users_changed_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows
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
]

DROP = [
    "DROP TRIGGER IF EXISTS login_sessions_changed_delete ON login_sessions",
    "DROP TRIGGER IF EXISTS login_sessions_changed_update ON login_sessions",
    "DROP TRIGGER IF EXISTS users_changed_delete ON users",
    "DROP TRIGGER IF EXISTS users_changed_update ON users",
    "DROP FUNCTION IF EXISTS login_sessions_changed()",
    "DROP FUNCTION IF EXISTS users_changed()",
]


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in DROP:
            op.execute(statement)
