"""Models: UTC timestamps."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC
from pathlib import Path

from sqlalchemy import select

from eleva.data.db import db
from eleva.data.models import Subject, User

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- models ------------------------------------------------------------------------------


def test_timestamps_are_utc_aware_and_updated_at_moves(app):
    with app.app_context():
        user = User(email="t@example.com", username="tim", password_hash="x")
        db.session.add(user)
        db.session.commit()
        subject = Subject(owner_id=user.id, name="Physics")
        db.session.add(subject)
        db.session.commit()
        created, updated = subject.created_at, subject.updated_at
        db.session.expire_all()
        reloaded = db.session.get(Subject, subject.id)
        assert (
            reloaded.created_at.tzinfo is not None
            and reloaded.created_at.utcoffset().total_seconds() == 0
        )
        assert reloaded.created_at == created
        time.sleep(0.002)
        reloaded.name = "Quantum physics"
        db.session.commit()
        db.session.expire_all()
        again = db.session.scalar(select(Subject))
        assert again.updated_at > updated
        assert again.created_at == created
        assert again.updated_at.tzinfo == UTC or again.updated_at.utcoffset().total_seconds() == 0


def test_timestamps_serialise_as_iso8601_with_offset(client, user):
    created = user.body["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", created), created
    assert json.loads(json.dumps(user.body))["updated_at"].endswith("+00:00")
