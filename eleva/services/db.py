"""Helpers shared by the services for talking to the database."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError

from eleva.errors import Conflict
from eleva.extensions import db

_SQLITE_INDEX_RE = re.compile(r"UNIQUE constraint failed: index '([^']+)'")


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the unique index/constraint an IntegrityError is about, if known."""
    diag = getattr(exc.orig, "diag", None)  # psycopg
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name
    match = _SQLITE_INDEX_RE.search(str(exc.orig))
    return match.group(1) if match else None


def commit_unique(fields: Mapping[str, tuple[str, str]]) -> None:
    """Commit; a violated unique index in ``fields`` becomes a 409 naming the field.

    ``fields`` maps an index name to (field name, what to call it in the message). The
    database's constraint is the guarantee of uniqueness, whatever ran concurrently.
    """
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        name = violated_constraint(exc)
        if name not in fields:
            raise
        field, what = fields[name]
        raise Conflict.taken(field, what) from None
