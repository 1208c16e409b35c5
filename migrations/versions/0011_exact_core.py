"""exact core: no counters kept by triggers, no change notifications

Revision ID: 0011_exact_core
Revises: 0010_user_changes
Create Date: 2026-12-07

Lists count their rows with the page (eleva.data.pages) and every request reads its
caller from the database, so the counter columns (users.subjects_active,
subjects_archived, documents_count; subjects.note_count), the triggers that kept them
and the triggers that announced user changes (LISTEN/NOTIFY) go. ``users.storage_used``
stays: it is the quota, reserved by a conditional UPDATE in the upload's transaction.
The downgrade puts everything back, recounted, from the earlier revisions' own DDL.
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0011_exact_core"
down_revision = "0010_user_changes"
branch_labels = None
depends_on = None

COUNT_TRIGGERS = {
    "subjects": ("subjects_count_update", "subjects_count_delete", "subjects_count_insert"),
    "notes": ("notes_count_update", "notes_count_delete", "notes_count_insert"),
}
COUNT_FUNCTIONS = ("subjects_count()", "notes_count()")
COUNTERS = (
    ("users", "subjects_active"),
    ("users", "subjects_archived"),
    ("users", "documents_count"),
    ("subjects", "note_count"),
)


def _revision(name: str):
    """An earlier revision's module: its frozen DDL, for the downgrade."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"eleva_migration_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for statement in _revision("0010_user_changes").DROP:
            op.execute(statement)
    for table, triggers in COUNT_TRIGGERS.items():
        for name in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        for function in COUNT_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    # Plain ALTER TABLE, not batch mode: on SQLite a batch rebuilds the table and would
    # lose the expression indexes it cannot reflect (SQLite ≥ 3.35 drops in place).
    for table, column in COUNTERS:
        op.drop_column(table, column)


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column in COUNTERS:
        op.add_column(table, sa.Column(column, sa.Integer(), server_default="0", nullable=False))
    op.execute(
        """
        UPDATE users SET
            subjects_active = (SELECT count(*) FROM subjects s
                               WHERE s.owner_id = users.id AND NOT s.is_archived),
            subjects_archived = (SELECT count(*) FROM subjects s
                                 WHERE s.owner_id = users.id AND s.is_archived),
            documents_count = (SELECT count(*) FROM documents d WHERE d.owner_id = users.id)
        """
    )
    op.execute(
        "UPDATE subjects SET note_count = "
        "(SELECT count(*) FROM notes n WHERE n.subject_id = subjects.id)"
    )
    for name in ("0003_subject_counts", "0004_notes"):
        module = _revision(name)
        for statement in module.POSTGRESQL if postgres else module.SQLITE:
            op.execute(statement)
    if postgres:
        for statement in _revision("0010_user_changes").POSTGRESQL:
            op.execute(statement)
