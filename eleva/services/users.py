"""A user's own account: profile, privacy, password, deactivation; public profiles."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from eleva.errors import NotFound, ValidationFailed
from eleva.extensions import db
from eleva.models import User
from eleva.security import hash_password, verify_password
from eleva.services import auth
from eleva.services.db import commit_unique

_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,30}$")


def update_profile(user: User, changes: dict[str, Any]) -> User:
    """Apply a partial update; ``privacy`` is itself partial."""
    privacy = changes.pop("privacy", None) or {}
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    for field, value in {**changes, **privacy}.items():
        setattr(user, field, value)
    commit_unique(auth.USER_UNIQUE_FIELDS)
    return user


def change_password(
    user: User, *, current_password: str, new_password: str, session_id: uuid.UUID | None
) -> None:
    """Set a new password and end every session of the user but the caller's."""
    if not verify_password(current_password, user.password_hash):
        raise ValidationFailed.field("current_password", "The current password is wrong.")
    auth.check_new_password(
        new_password, username=user.username, email=user.email, field="new_password"
    )
    user.password_hash = hash_password(new_password, rounds=current_app.config["BCRYPT_ROUNDS"])
    auth.end_sessions(user.id, reason="password", keep=session_id)
    db.session.commit()


def deactivate(user: User, *, password: str) -> None:
    """Deactivate the account (data kept) and end all of its sessions."""
    if not verify_password(password, user.password_hash):
        raise ValidationFailed.field("password", "The password is wrong.")
    user.is_active = False
    auth.end_sessions(user.id, reason="deactivated")
    db.session.commit()


def public_profile(username: str, *, viewer: User) -> User:
    """A user as others may see them: 404 unless active and public (or the viewer)."""
    # A path segment that cannot be a username never reaches the database.
    if not _USERNAME_RE.match(username):
        raise NotFound("No such user.")
    if username.lower() == viewer.username.lower():
        return viewer
    user = db.session.scalar(
        select(User).where(func.lower(User.username) == username.lower(), User.is_active.is_(True))
    )
    if user is None or user.profile_visibility != "public":
        raise NotFound("No such user.")
    return user
