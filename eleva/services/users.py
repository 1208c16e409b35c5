"""A user's own account: profile, privacy, password, deactivation; public profiles."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select

from eleva.core.errors import Conflict, NotFound, ValidationFailed
from eleva.core.passwords import hash_password, verify_password
from eleva.data import jobs
from eleva.data.db import commit, db, unique_conflicts
from eleva.data.models import User
from eleva.services import accounts, auth, emails

_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,30}$")


def get_user(user_id: int, *, for_update: bool = False) -> User:
    """The user's row (locked with ``for_update``); NotFound if it is gone."""
    user = db.session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound("No such user.")
    return user


def update_profile(user_id: int, changes: dict[str, Any]) -> User:
    """Apply a partial update; ``privacy`` and ``study`` are themselves partial.

    A new email needs ``current_password`` (a field error when missing or wrong): an
    access token alone must not be enough to take the account. The change voids every
    reset link and sends a "this wasn't me" link to the old address.
    """
    changes = dict(changes)
    privacy = changes.pop("privacy", None) or {}
    study = {f"study_{name}": value for name, value in (changes.pop("study", None) or {}).items()}
    current_password = changes.pop("current_password", None)
    if "email" in changes:
        changes["email"] = auth.normalise_email(changes["email"])
    user = get_user(user_id, for_update=True)
    old_email, old_verified = user.email, user.email_verified
    moved = "email" in changes and changes["email"] != old_email
    if moved:
        if current_password is None:
            raise ValidationFailed.field(
                "current_password", "Your current password is needed to change your email."
            )
        if not verify_password(current_password, user.password_hash):
            raise ValidationFailed.field("current_password", "The current password is wrong.")
        changes["email_verified"] = False  # effective at once, unproven until it answers
    for field, value in {**changes, **privacy, **study}.items():
        setattr(user, field, value)
    if moved:
        with unique_conflicts():
            db.session.flush()  # the new address is the account's (or 409) before it is checked
        if emails.kept_for_another(user.email, user.id):
            db.session.rollback()
            raise Conflict.taken("email", "email address")
        accounts.void_reset_tokens(user.id)  # links sent to the old address die
        revert_id = emails.reserve_revert(user.id, old_email)
        emails.later(emails.send_email_verification, user_id=user.id, email=user.email)
        emails.later(
            emails.notify_email_changed,
            user_id=user.id,
            old_email=old_email,
            new_email=user.email,
            revert_token_id=revert_id,
            old_verified=old_verified,
        )
    commit()
    jobs.dispatch()
    return user


def change_password(
    user_id: int, session_id: uuid.UUID, *, current_password: str, new_password: str
) -> None:
    """Set a new password and end every session of the user but ``session_id``."""
    user = get_user(user_id, for_update=True)
    if not verify_password(current_password, user.password_hash):
        raise ValidationFailed.field("current_password", "The current password is wrong.")
    auth.check_new_password(
        new_password, username=user.username, email=user.email, field="new_password"
    )
    user.password_hash = hash_password(new_password, rounds=current_app.config["BCRYPT_ROUNDS"])
    auth.end_sessions(user.id, reason="password", keep=session_id)
    # A reset link sent before the change must not undo it.
    accounts.void_reset_tokens(user.id)
    emails.later(emails.notify_password_changed, user_id=user.id)
    db.session.commit()
    jobs.dispatch()


def deactivate(user_id: int, *, password: str) -> None:
    """Deactivate the account (data kept) and end all of its sessions."""
    user = get_user(user_id, for_update=True)
    if not verify_password(password, user.password_hash):
        raise ValidationFailed.field("password", "The password is wrong.")
    user.is_active = False
    auth.end_sessions(user.id, reason="deactivated")
    db.session.commit()


def public_profile(username: str, *, viewer_id: int) -> User:
    """A user as others may see them: 404 unless active and public (or the viewer)."""
    if not _USERNAME_RE.match(username):  # cannot be a username: no query
        raise NotFound("No such user.")
    user = db.session.scalar(
        select(User).where(
            func.lower(User.username) == username.lower(),
            User.is_active.is_(True),
            or_(User.profile_visibility == "public", User.id == viewer_id),
        )
    )
    if user is None:
        raise NotFound("No such user.")
    return user
