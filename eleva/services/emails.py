"""The account emails, as background jobs (``eleva.data.jobs``) on the email queue.

A request enqueues one of these with ids and addresses, never a secret. Each job re-reads
what it needs and does nothing when it no longer applies (account gone or deactivated,
address changed since, already verified).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from eleva.core.tokens import new_secret, secret_digest
from eleva.data import counters, jobs, mail
from eleva.data.db import db
from eleva.data.models import AccountToken, Erasure, Export, User, utcnow

log = logging.getLogger("eleva.emails")

RESET = "reset"
VERIFY = "verify"
REVERT = "revert"


def queue(func: Callable[..., Any], /, **kwargs: Any) -> None:
    """Send an email in the background, now (on the email queue)."""
    jobs.enqueue(func, queue_name=jobs.EMAIL_QUEUE, **kwargs)


def later(func: Callable[..., Any], /, **kwargs: Any) -> None:
    """Send an email once the current transaction commits (``jobs.dispatch()``): an email
    that reports a change (password changed, email changed) exists if and only if the
    change does."""
    jobs.outbox(func, queue_name=jobs.EMAIL_QUEUE, **kwargs)


def _lifetime(purpose: str) -> timedelta:
    config = current_app.config
    if purpose == RESET:
        return timedelta(minutes=config["PASSWORD_RESET_MINUTES"])
    if purpose == REVERT:
        return timedelta(days=config["EMAIL_REVERT_DAYS"])
    return timedelta(hours=config["EMAIL_VERIFY_HOURS"])


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours = minutes // 60
    if delta < timedelta(days=3):
        return f"{hours} hour{'s' * (hours != 1)}"
    return f"{hours // 24} days"


def _send(template: str, to: str, *, verified: bool, **context: Any) -> None:
    """Send ``template`` to ``to`` now, unless that address is one its account has not
    verified and has had its RATELIMIT_EMAIL_RECIPIENT emails: then it is dropped (and
    logged). Whoever asks (another account, many accounts), an address nobody proved
    is theirs gets that many; its owner's own notices, once verified, are never capped.
    """
    if not verified:
        key = hashlib.sha256(to.encode()).hexdigest()[:32]
        if not counters.hit(current_app.config["RATELIMIT_EMAIL_RECIPIENT"], "recipient", key):
            log.warning("%s email to an unverified address not sent: over its limit", template)
            return
    mail.send(template, to, **context)


def _link(page: str, token: str | None = None) -> str:
    base = current_app.config["FRONTEND_URL"]
    return f"{base}/{page}?token={token}" if token else f"{base}/{page}"


def new_link_token(user_id: int, purpose: str, email: str) -> str:
    """A new single-use secret for ``email``; only its digest is stored. Commits."""
    # Made by the job that sends the link, never handed to it: no token is ever in Redis,
    # in a job's description, or in a log line.
    secret = new_secret()
    now = utcnow()
    db.session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            digest=secret_digest(secret),
            email=email,
            created_at=now,
            expires_at=now + _lifetime(purpose),
        )
    )
    db.session.commit()
    return secret


def send_password_reset(email: str) -> None:
    """Job: a reset link to ``email`` (normalised), if an active account has it."""
    user = db.session.scalar(
        select(User).where(func.lower(User.email) == email, User.is_active.is_(True))
    )
    if user is None:
        return  # the request answered the same: nothing to tell anyone
    token = new_link_token(user.id, RESET, user.email)
    _send(
        "password_reset",
        user.email,
        verified=user.email_verified,
        username=user.username,
        link=_link("reset-password", token),
        expires=_human(_lifetime(RESET)),
    )


def send_email_verification(user_id: int, email: str) -> None:
    """Job: a verification link for ``email``, if it is still the account's and not
    yet verified."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_active or user.email != email or user.email_verified:
        return
    token = new_link_token(user.id, VERIFY, email)
    _send(
        "email_verification",
        email,
        verified=False,
        username=user.username,
        email=email,
        link=_link("verify-email", token),
        expires=_human(_lifetime(VERIFY)),
    )


def reserve_revert(user_id: int, old_email: str) -> int:
    """In an email change's transaction: the revert token of ``old_email`` (its id), with
    a secret nobody has; the notice job gives it one (:func:`notify_email_changed`)."""
    # From the commit of the change the old address is kept for the account while the
    # token lives (kept_for_another): the change and the keeping are one commit, so no one
    # can take the address in between and make the revert impossible.
    now = utcnow()
    token = AccountToken(
        user_id=user_id,
        purpose=REVERT,
        digest=secret_digest(new_secret()),
        email=old_email,
        created_at=now,
        expires_at=now + _lifetime(REVERT),
    )
    db.session.add(token)
    db.session.flush()
    return token.id


def kept_for_another(email: str, user_id: int | None) -> bool:
    """Whether a live revert token of another account keeps ``email`` (normalised).

    Asked after the address was written in the transaction: a change that freed it
    commits together with the token that keeps it, so a statement that can write the
    address sees that token too.
    """
    query = select(AccountToken.id).where(
        AccountToken.purpose == REVERT,
        AccountToken.email == email,
        AccountToken.expires_at > utcnow(),
    )
    if user_id is not None:
        query = query.where(AccountToken.user_id != user_id)
    return db.session.scalar(query.limit(1)) is not None


def notify_email_changed(
    user_id: int,
    old_email: str,
    new_email: str,
    revert_token_id: int | None = None,
    old_verified: bool = False,
) -> None:
    """Job: tell the previous address where the account's email went, with a link that
    brings it back ("this wasn't me") while its token lives."""
    user = db.session.get(User, user_id)
    if user is None:
        return
    revert = _rekey(revert_token_id) if revert_token_id is not None else None
    _send(
        "email_changed",
        old_email,
        verified=old_verified,
        username=user.username,
        new_email=mask_email(new_email),
        link=_link("reset-password"),
        revert_link=_link("revert-email", revert) if revert else None,
        revert_expires=_human(_lifetime(REVERT)),
    )


def _rekey(token_id: int) -> str | None:
    """A new secret for the live revert token ``token_id`` (the one of the last notice
    sent works); None once it is used, voided or expired. Commits."""
    secret = new_secret()
    row = db.session.execute(
        update(AccountToken)
        .where(
            AccountToken.id == token_id,
            AccountToken.purpose == REVERT,
            AccountToken.expires_at > utcnow(),
        )
        .values(digest=secret_digest(secret))
        .returning(AccountToken.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    return secret if row is not None else None


def notify_password_changed(user_id: int, reset: bool = False) -> None:
    """Job: tell the account's address that its password changed."""
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return
    _send(
        "password_changed",
        user.email,
        verified=user.email_verified,
        username=user.username,
        reset=reset,
        link=_link("forgot-password"),
    )


def human_size(size: int) -> str:
    """``12.3 MB``: a size as people read it (a MB is 1,048,576 bytes, as the quota's)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _export_owner(export_id: int, status: str) -> tuple[User, Export] | None:
    row = db.session.execute(
        select(User, Export)
        .join(Export, Export.user_id == User.id)
        .where(Export.id == export_id, Export.status == status, User.is_active.is_(True))
    ).first()
    return None if row is None else (row[0], row[1])


def send_export_ready(export_id: int) -> None:
    """Job: the export is ready; a link to the SPA's export page (which downloads it)."""
    found = _export_owner(export_id, "ready")
    if found is None:  # expired, or the account deactivated since
        return
    user, export = found
    mail.send(
        "export_ready",
        user.email,
        username=user.username,
        link=_link("export"),
        size=human_size(export.size or 0),
        expires=f"{export.expires_at:%Y-%m-%d %H:%M} UTC" if export.expires_at else "",
    )


def send_export_failed(export_id: int) -> None:
    """Job: the export failed after every attempt; ask for a new one."""
    found = _export_owner(export_id, "failed")
    if found is None:
        return
    user, _export = found
    mail.send("export_failed", user.email, username=user.username, link=_link("export"))


def send_erasure_scheduled(user_id: int) -> None:
    """Job: the account will be erased on its date; a link that cancels the erasure.
    Each sending makes a new cancel token (its digest replaces the last one's)."""
    row = db.session.execute(
        select(User, Erasure)
        .join(Erasure, Erasure.user_id == User.id)
        .where(User.id == user_id, Erasure.started_at.is_(None))
        .with_for_update(of=Erasure)
    ).first()
    if row is None:  # cancelled, or the erasure has begun
        db.session.rollback()
        return
    user, erasure = row[0], row[1]
    secret = new_secret()
    erasure.cancel_digest = secret_digest(secret)
    db.session.commit()
    mail.send(
        "erasure_scheduled",
        user.email,
        username=user.username,
        erase_date=f"{erasure.erase_at:%Y-%m-%d %H:%M}",
        link=_link("cancel-erasure", secret),
    )


def send_account_erased(email: str, username: str) -> None:
    """Job: the last email, to an account being erased (its row may be gone already:
    the address and the name are all it needs)."""
    mail.send("account_erased", email, username=username, link=_link("register"))


def mask_email(email: str) -> str:
    """``n•••@example.com``: enough to recognise one's own address, not to learn one."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def send_test_email(to: str) -> None:
    """Job: a test message (``flask mail send-test --queue``), to check the worker path."""
    config = current_app.config
    mail.send(
        "test",
        to,
        backend=config["MAIL_BACKEND"],
        server=f"{config['MAIL_SERVER']}:{config['MAIL_PORT']}",
    )
