"""Account recovery: forgotten passwords, email verification and the "this wasn't me"
link of an email change, what the links sent by email (``eleva.services.emails``) do
when they come back. Link tokens are single use, even under concurrency (``_consume``).
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import delete, update

from eleva.core.errors import ValidationFailed
from eleva.core.passwords import hash_password
from eleva.core.tokens import secret_digest
from eleva.data import jobs
from eleva.data.db import commit, db
from eleva.data.models import AccountToken, User, utcnow
from eleva.services import auth, emails

FORGOT_MESSAGE = "If an account has this email address, a link to reset its password is on its way."
BAD_RESET_TOKEN = "This reset link is invalid, expired or already used. Ask for a new one."  # noqa: S105
BAD_VERIFY_TOKEN = (
    "This verification link is invalid, expired, already used, or for an address that is "  # noqa: S105
    "no longer the account's."
)
BAD_REVERT_TOKEN = "This link is invalid, expired or already used."  # noqa: S105


def request_password_reset(email: str) -> None:
    """Queue the reset email. Nothing is looked up here: the answer, and its time, are
    the same whether or not an account has this address (the job looks)."""
    emails.queue(emails.send_password_reset, email=auth.normalise_email(email))


def _token_row(digest: str, purpose: str) -> tuple[int, str] | None:
    row = db.session.execute(
        db.select(AccountToken.user_id, AccountToken.email).where(
            AccountToken.digest == digest,
            AccountToken.purpose == purpose,
            AccountToken.expires_at > utcnow(),
        )
    ).first()
    return None if row is None else (row.user_id, row.email)


def _consume(digest: str, purpose: str) -> tuple[int, str] | None:
    """Delete the live token with ``digest``: its (user id, email) for exactly one caller."""
    # One conditional DELETE … RETURNING: of two requests presenting the token at once,
    # exactly one gets the row.
    row = db.session.execute(
        delete(AccountToken)
        .where(
            AccountToken.digest == digest,
            AccountToken.purpose == purpose,
            AccountToken.expires_at > utcnow(),
        )
        .returning(AccountToken.user_id, AccountToken.email)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else (row.user_id, row.email)


def reset_password(*, token: str, new_password: str) -> None:
    """Set a new password with a reset token: every session ends, every other reset
    token dies, the address counts as verified, and a notice is emailed."""
    digest = secret_digest(token)
    found = _token_row(digest, emails.RESET)
    user = db.session.get(User, found[0], with_for_update=True) if found else None
    # A link sent to an address that is no longer the account's is no key to it.
    if found is None or user is None or not user.is_active or found[1] != user.email:
        db.session.rollback()
        raise ValidationFailed.field("token", BAD_RESET_TOKEN)
    # The rules before the token is spent: a refused password leaves the link usable.
    auth.check_new_password(
        new_password, username=user.username, email=user.email, field="new_password"
    )
    password_hash = hash_password(new_password, rounds=current_app.config["BCRYPT_ROUNDS"])
    consumed = _consume(digest, emails.RESET)
    if consumed is None:  # another request used it first
        db.session.rollback()
        raise ValidationFailed.field("token", BAD_RESET_TOKEN)
    user.password_hash = password_hash
    user.email_verified = True  # the link reached the account's address
    void_reset_tokens(user.id)
    auth.end_sessions(user.id, reason="reset")
    # In this transaction: the notice is sent if and only if the password changed, even
    # when the queue is down right now (jobs.outbox).
    emails.later(emails.notify_password_changed, user_id=user.id, reset=True)
    db.session.commit()
    jobs.dispatch()


def void_reset_tokens(user_id: int, *purposes: str) -> None:
    """Delete the user's outstanding reset tokens (or those of ``purposes``). The caller
    commits."""
    db.session.execute(
        delete(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose.in_(purposes or (emails.RESET,)),
        )
        .execution_options(synchronize_session=False)
    )


def revert_email(*, token: str) -> None:
    """ "This wasn't me": give the account back the address an email change took from it
    (verified: the link reached it), end every session, kill every reset and revert link.
    """
    consumed = _consume(secret_digest(token), emails.REVERT)
    user = db.session.get(User, consumed[0], with_for_update=True) if consumed else None
    if consumed is None or user is None or not user.is_active:
        db.session.rollback()
        raise ValidationFailed.field("token", BAD_REVERT_TOKEN)
    user.email = consumed[1]
    user.email_verified = True
    void_reset_tokens(user.id, emails.RESET, emails.REVERT)
    auth.end_sessions(user.id, reason="email-revert")
    commit()  # the address was kept for the account: taken only by hand (409)


def verify_email(*, token: str) -> None:
    """Mark the address the token was sent to as verified, if it is still the account's."""
    consumed = _consume(secret_digest(token), emails.VERIFY)
    verified = 0
    if consumed is not None:
        user_id, email = consumed
        result = db.session.execute(
            update(User)
            .where(User.id == user_id, User.email == email, User.is_active.is_(True))
            .values(email_verified=True)
            .execution_options(synchronize_session=False)
        )
        verified = int(getattr(result, "rowcount", 0))
    db.session.commit()
    if not verified:
        raise ValidationFailed.field("token", BAD_VERIFY_TOKEN)


def resend_verification(user_id: int, email: str, *, verified: bool) -> None:
    """Queue a new verification email for the account's address, unless verified."""
    if not verified:
        emails.queue(emails.send_email_verification, user_id=user_id, email=email)
