"""Where the database stands against the migrations this code ships (for readiness).

The migrations' heads are read once per process from the ``migrations`` folder; the
database's revision is read on every readiness check (a deploy's release phase moves
it while the web runs).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from eleva.data.db import db

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@cache
def history(directory: Path = MIGRATIONS) -> tuple[frozenset[str], frozenset[str]]:
    """(the heads, every revision) of the migrations in ``directory``."""
    script = ScriptDirectory(str(directory))
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return frozenset(script.get_heads()), known


def database_behind(directory: Path = MIGRATIONS) -> bool:
    """Whether the database lacks migrations this code has (never migrated included).
    A database ahead of this code (a rollback of the code alone) is not behind."""
    heads, known = history(directory)
    current = frozenset(MigrationContext.configure(db.session.connection()).get_current_heads())
    return current != heads and current <= known
