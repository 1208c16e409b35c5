"""Erasure: a user makes the service forget them (GDPR article 17), after a grace period.

``request_erasure`` deactivates the account at once and schedules its erasure, which an
emailed link cancels until it begins; ``erase_account`` then erases it in steps that can
each run again, the user's row last, so nothing is left half erased and no object orphaned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select, update

from eleva.core.errors import Conflict, ServiceUnavailable, ValidationFailed
from eleva.core.passwords import verify_password
from eleva.core.tokens import secret_digest
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import Erasure, Export, User, utcnow
from eleva.data.storage import StorageError, storage
from eleva.services import auth, documents, emails, exports, pictures
from eleva.services.users import get_user

log = logging.getLogger("eleva.erasure")

BAD_CANCEL_TOKEN = (
    "This link is invalid or already used, or the erasure has begun: there is nothing "  # noqa: S105
    "left to cancel."
)
# The hourly job: each run schedules the next (RQ's own scheduling, run by the worker).
HOURLY_JOB_TIMEOUT = 55 * 60


def stored_prefixes(user_id: int) -> list[str]:
    """Where the user's stored objects live: every one of them is under one of these."""
    return [
        f"{pictures.KEY_PREFIX}{user_id}/",
        f"{documents.KEY_PREFIX}{user_id}/",
        f"{exports.KEY_PREFIX}{user_id}/",
    ]


# -- asking and cancelling --------------------------------------------------------------


def request_erasure(user_id: int, *, password: str) -> datetime:
    """Deactivate the account, end its sessions and schedule its erasure
    (ERASURE_GRACE_DAYS later); the date. An email gives it, with a link that cancels the
    erasure until it begins."""
    user = get_user(user_id, for_update=True)
    if not verify_password(password, user.password_hash):
        raise ValidationFailed.field("password", "The password is wrong.")
    now = utcnow()
    erase_at = now + timedelta(days=int(current_app.config["ERASURE_GRACE_DAYS"]))
    user.is_active = False
    auth.end_sessions(user.id, reason="erasure")
    db.session.execute(
        delete(Erasure)
        .where(Erasure.user_id == user.id, Erasure.started_at.is_(None))
        .execution_options(synchronize_session=False)
    )
    db.session.add(Erasure(user_id=user.id, requested_at=now, erase_at=erase_at))
    db.session.commit()
    try:
        jobs.enqueue(emails.send_erasure_scheduled, user_id=user.id)
    except ServiceUnavailable:
        # Without the email there is no way to cancel: the request did not happen.
        db.session.execute(delete(Erasure).where(Erasure.user_id == user.id))
        db.session.execute(update(User).where(User.id == user.id).values(is_active=True))
        db.session.commit()
        raise
    return erase_at


def cancel(*, token: str) -> None:
    """The link of the erasure email: the erasure is cancelled and the account active
    again (its sessions stay ended). Single use; refused once the erasure has begun."""
    digest = secret_digest(token)
    live = (Erasure.cancel_digest == digest, Erasure.started_at.is_(None))
    user_id = db.session.scalar(select(Erasure.user_id).where(*live))
    # The user's row is locked first, as erase_account does (no deadlock between them);
    # then the conditional DELETE decides, should the erasure have begun meanwhile.
    if user_id is None or db.session.get(User, user_id, with_for_update=True) is None:
        db.session.rollback()
        raise ValidationFailed.field("token", BAD_CANCEL_TOKEN)
    cancelled = db.session.execute(
        delete(Erasure)
        .where(*live)
        .returning(Erasure.user_id)
        .execution_options(synchronize_session=False)
    ).first()
    if cancelled is None:
        db.session.rollback()
        raise ValidationFailed.field("token", BAD_CANCEL_TOKEN)
    db.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(is_active=True, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def reactivate(user_id: int) -> datetime | None:
    """An operator's ``flask users activate``: the account active again, and its
    scheduled erasure (when it had one: its date is returned) cancelled. Conflict once
    the erasure has begun."""
    user = get_user(user_id, for_update=True)
    erasure = db.session.scalar(select(Erasure).where(Erasure.user_id == user_id))
    if erasure is not None and erasure.started_at is not None:
        db.session.rollback()
        raise Conflict("This account is being erased: finish with `flask users erase-due`.")
    erase_at = erasure.erase_at if erasure else None
    if erasure is not None:
        db.session.delete(erasure)
    user.is_active = True
    db.session.commit()
    return erase_at


# -- erasing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    user_id: int
    username: str
    email: str
    erase_at: datetime
    started: bool


def due_erasures(now: datetime | None = None) -> list[Due]:
    """Accounts whose erasure is due, or began and did not finish; oldest first."""
    now = now or utcnow()
    rows = db.session.execute(
        select(User.id, User.username, User.email, Erasure.erase_at, Erasure.started_at)
        .join(Erasure, Erasure.user_id == User.id)
        .where((Erasure.erase_at <= now) | Erasure.started_at.is_not(None))
        .order_by(Erasure.erase_at, User.id)
    ).all()
    db.session.rollback()
    return [Due(r.id, r.username, r.email, r.erase_at, r.started_at is not None) for r in rows]


@dataclass(frozen=True)
class Erased:
    username: str
    objects: int  # stored objects deleted (and uploads never completed)


def erase_account(user_id: int, *, notify: bool = True, due_only: bool = False) -> Erased | None:
    """Erase the account for good (``flask users erase-due``, the hourly job, an operator's
    ``flask users purge``); None when there is nothing to erase: gone already, or
    (``due_only``) its erasure cancelled or not due since it was listed. StorageError or
    ServiceUnavailable (the queue, for the last email) leave it begun, for the next run."""
    user = db.session.get(User, user_id, with_for_update=True)
    if user is None:
        db.session.rollback()
        return None
    username, email = user.username, user.email
    now = utcnow()
    erasure = db.session.scalar(select(Erasure).where(Erasure.user_id == user_id).with_for_update())
    if due_only and (erasure is None or (erasure.started_at is None and erasure.erase_at > now)):
        db.session.rollback()  # the link kept the account a moment ago: it stays
        return None
    if erasure is None:  # an operator's purge: never scheduled
        erasure = Erasure(user_id=user_id, requested_at=now, erase_at=now)
        db.session.add(erasure)
    # Each step below can run again: killed or faulted midway (storage down), the next run
    # finishes the job. First, committed: the erasure begun (no cancelling from then on),
    # the account deactivated, its sessions ended, its pending exports failed (their jobs
    # then delete what they store).
    erasure.started_at = erasure.started_at or now
    user.is_active = False
    auth.end_sessions(user_id, reason="erasure")
    db.session.execute(
        update(Export)
        .where(Export.user_id == user_id, Export.status == "pending")
        .values(status="failed")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()

    # A last email, once.
    if notify and erasure.notified_at is None:
        jobs.enqueue(emails.send_account_erased, email=email, username=username)
        erasure.notified_at = utcnow()
        db.session.commit()

    # Every stored object under the user's prefixes, and any upload never completed.
    removed = 0
    for prefix in stored_prefixes(user_id):
        removed += storage.delete_prefix(prefix)
        for upload in storage.partial_uploads(prefix):
            storage.abort_partial(upload)
            removed += 1

    # The row last: every row that refers to it goes with it (ON DELETE CASCADE).
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
    log.info("user %s erased: %s stored object(s) deleted", user_id, removed)
    return Erased(username, removed)


@dataclass(frozen=True)
class Footprint:
    """What an erasure would take away (``erase-due --dry-run``)."""

    rows: dict[str, int]  # per table, the rows that refer to the user
    objects: int
    bytes: int


def footprint(user_id: int) -> Footprint:
    """The rows that refer to the user, by table (by any column that is a foreign key to
    users.id), and the stored objects under their prefixes."""
    rows: dict[str, int] = {}
    for table in db.metadata.sorted_tables:
        columns = [
            column
            for column in table.columns
            if any(fk.column.table.name == "users" for fk in column.foreign_keys)
        ]
        if table.name == "users":
            columns = [table.c.id]
        for column in columns:
            count = db.session.scalar(
                select(func.count()).select_from(table).where(column == user_id)
            )
            if count:
                rows[table.name] = rows.get(table.name, 0) + int(count)
    db.session.rollback()
    objects = size = 0
    for prefix in stored_prefixes(user_id):
        for obj in storage.list_objects(prefix):
            objects += 1
            size += obj.size
    return Footprint(rows, objects, size)


def erase_due_job() -> None:
    """The hourly job: erase every account whose time has come; then the next run is
    scheduled (it is first, so that a failure here does not break the chain)."""
    schedule_next_run()
    failed = 0
    for due in due_erasures():
        try:
            erase_account(due.user_id, due_only=True)
        except (StorageError, ServiceUnavailable) as exc:
            db.session.rollback()
            failed += 1
            log.error("erasure of user %s not finished: %s", due.user_id, type(exc).__name__)
    if failed:  # retried as any job is; the next hourly run would finish them anyway
        raise RuntimeError(f"{failed} erasure(s) not finished")


def schedule_next_run(now: datetime | None = None) -> bool:
    """Schedule :func:`erase_due_job` at the next full hour (once, whoever asks: the job
    id names the hour). False without a queue: run ``flask users erase-due`` from cron."""
    now = now or utcnow()
    at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return jobs.schedule(
        erase_due_job,
        at=at,
        job_id=f"eleva-erase-due-{at:%Y%m%d%H}",
        job_timeout=HOURLY_JOB_TIMEOUT,
    )
