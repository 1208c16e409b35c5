"""Exports: a user takes everything away (GDPR articles 15 and 20).

One export per EXPORT_INTERVAL_HOURS: a job writes the archive (``eleva.services.archive``)
and stores it privately, kept EXPORT_KEEP_DAYS once ready. A failed attempt leaves
nothing behind; after the last one the export is ``failed`` and an email says so.
"""

from __future__ import annotations

import logging
import math
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from eleva.core.errors import NotFound, ServiceUnavailable, TooManyRequests
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import Export, User, utcnow
from eleva.data.storage import PartialUpload, StorageError, StoredObject, storage
from eleva.services import archive, emails
from eleva.services.users import get_user

log = logging.getLogger("eleva.exports")

KEY_PREFIX = "exports/"
CONTENT_TYPE = "application/zip"
# Objects and partial uploads younger than this are left alone by the sweep: an attempt
# may be writing them right now.
SWEEP_AFTER = timedelta(hours=1)


def export_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}/{uuid.uuid4().hex}.zip"


# -- asking, reading, downloading -------------------------------------------------------


def request_export(user_id: int) -> Export:
    """Record an export and queue its job; 429 (Retry-After) within the interval of the
    last one that did not fail."""
    get_user(user_id, for_update=True)  # two requests at once: one after the other
    now = utcnow()
    hours = int(current_app.config["EXPORT_INTERVAL_HOURS"])
    if hours:
        last = db.session.scalar(
            select(Export.requested_at)
            .where(Export.user_id == user_id, Export.status != "failed")
            .order_by(Export.requested_at.desc())
            .limit(1)
        )
        next_allowed = last + timedelta(hours=hours) if last else now
        if next_allowed > now:
            db.session.rollback()
            raise TooManyRequests(
                f"You can ask for one export every {hours} hours. "
                f"Ask again after {next_allowed:%Y-%m-%d %H:%M} UTC.",
                retry_after=math.ceil((next_allowed - now).total_seconds()),
            )
    export = Export(user_id=user_id, status="pending", requested_at=now)
    db.session.add(export)
    db.session.commit()
    try:
        # Without a queue (development) it is built here and now; the answer is still
        # the export as it was asked for (pending), as the contract says.
        jobs.enqueue(
            build_export,
            job_timeout=int(current_app.config["EXPORT_JOB_TIMEOUT"]),
            export_id=export.id,
        )
    except ServiceUnavailable:
        # Not queued: the request did not happen (it does not count against the interval).
        db.session.delete(export)
        db.session.commit()
        raise
    return export


def latest_export(user_id: int) -> Export:
    """The user's latest export, whatever its status; NotFound when none was asked for."""
    export = db.session.scalar(
        select(Export)
        .where(Export.user_id == user_id)
        .order_by(Export.requested_at.desc(), Export.id.desc())
        .limit(1)
    )
    if export is None:
        raise NotFound("You have not asked for an export yet.")
    return export


@dataclass(frozen=True)
class Download:
    url: str
    expires_at: datetime


def download(user_id: int) -> Download:
    """A short-lived URL of the user's latest ready archive, as an attachment."""
    now = utcnow()
    row = db.session.execute(
        select(Export.storage_key, Export.ready_at, User.username)
        .join(User, User.id == Export.user_id)
        .where(Export.user_id == user_id, Export.status == "ready", Export.expires_at > now)
        .order_by(Export.ready_at.desc(), Export.id.desc())
        .limit(1)
    ).first()
    if row is None or row.storage_key is None:
        raise NotFound("No export of yours is ready to download.")
    seconds = int(current_app.config["DOWNLOAD_URL_SECONDS"])
    try:
        url = storage.download_url(
            row.storage_key,
            filename=f"eleva-export-{row.username}-{row.ready_at:%Y-%m-%d}.zip",
            content_type=CONTENT_TYPE,
            expires_in=seconds,
        )
    except StorageError as exc:
        log.error("download URL for an export of user %s failed: %s", user_id, exc)
        raise ServiceUnavailable("Export storage is unavailable. Try again shortly.") from None
    return Download(url, now + timedelta(seconds=seconds))


# -- the job ----------------------------------------------------------------------------


def build_export(export_id: int) -> None:
    """The job: build, store and record the archive of a pending export, then email a
    link to the SPA."""
    attempt = _start_attempt(export_id)
    if attempt is None:  # done, failed or gone since it was queued
        return
    user_id, key, previous = attempt
    try:
        if previous:  # what a killed attempt left
            storage.discard_upload(previous)
        size = _write_and_store(user_id, key)
    except Exception:
        # What this attempt stored is deleted; what a killed attempt left is named on the
        # row while it runs, for the next attempt or the sweep to delete.
        db.session.rollback()
        _discard_quietly(key)
        if jobs.attempts_left() == 0:
            _fail(export_id)
        raise
    if _finish(export_id, key, size):
        _notify(emails.send_export_ready, export_id)


def _start_attempt(export_id: int) -> tuple[int, str, str | None] | None:
    """Name this attempt's object on the row: (user id, its key, the last attempt's)."""
    row = db.session.execute(
        select(Export.user_id, Export.storage_key)
        .where(Export.id == export_id, Export.status == "pending")
        .with_for_update()
    ).first()
    if row is None:
        db.session.rollback()
        return None
    key = export_key(row.user_id)
    db.session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(storage_key=key)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return row.user_id, key, row.storage_key


def _write_and_store(user_id: int, key: str) -> int:
    # Unnamed temporary files: nothing is left on disk even if the process is killed.
    with tempfile.TemporaryFile(prefix="eleva-export-") as out:
        with tempfile.TemporaryFile(prefix="eleva-export-json-") as scratch:
            _snapshot()
            try:
                archive.write_archive(out, scratch, user_id)
            finally:
                db.session.rollback()  # no transaction held open while it is stored
        size = out.tell()
        out.seek(0)
        storage.save_stream(key, out, CONTENT_TYPE, sequential=True)
    return size


def _snapshot() -> None:
    """On PostgreSQL, read the whole archive from one snapshot (REPEATABLE READ, read
    only): a note moved while it is written appears once, in one subject."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )


def _finish(export_id: int, key: str, size: int) -> bool:
    """Make the export ready, if it still waits for this very attempt; otherwise (failed
    by the sweep, its account erased) delete what was stored."""
    now = utcnow()
    keep = timedelta(days=int(current_app.config["EXPORT_KEEP_DAYS"]))
    done = db.session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status == "pending", Export.storage_key == key)
        .values(status="ready", ready_at=now, expires_at=now + keep, size=size)
        .returning(Export.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    if done is None:
        _discard_quietly(key)
        return False
    return True


def _fail(export_id: int) -> None:
    failed = db.session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status == "pending")
        .values(status="failed")
        .returning(Export.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    if failed is not None:
        log.error("export %s failed after its last attempt", export_id)
        _notify(emails.send_export_failed, export_id)


def _notify(job: Callable[..., Any], export_id: int) -> None:
    try:
        jobs.enqueue(job, export_id=export_id)
    except ServiceUnavailable:  # the export itself is recorded: the SPA shows it
        log.warning("email about export %s not queued: the queue is down", export_id)


def _discard_quietly(key: str) -> None:
    try:
        storage.discard_upload(key)
    except StorageError as exc:
        log.warning("could not delete export object %s (the sweep will): %s", key, exc)


# -- the sweep --------------------------------------------------------------------------
# `flask storage sweep` deletes an archive EXPORT_KEEP_DAYS after it is ready, fails the
# exports whose attempts all stalled, and deletes what failed attempts left.


def stalled_after() -> timedelta:
    """How long a pending export may wait before it counts as failed: every attempt's
    time limit (and RQ's minute to kill one), every wait between them, and an hour."""
    config = current_app.config
    attempts = int(config["JOB_RETRIES"]) + 1
    intervals = list(config["JOB_RETRY_INTERVALS"]) or [0]
    waits = sum(intervals[min(i, len(intervals) - 1)] for i in range(attempts - 1))
    seconds = attempts * (int(config["EXPORT_JOB_TIMEOUT"]) + 60) + waits
    return timedelta(seconds=seconds) + SWEEP_AFTER


@dataclass(frozen=True)
class SweepPlan:
    expired: list[int]  # ready exports past expires_at
    stalled: list[int]  # pending longer than every attempt could take
    leftovers: list[int]  # failed exports still naming an object
    orphans: list[StoredObject]  # objects under exports/ that no export names
    partials: list[PartialUpload]  # writes under exports/ that never finished


def sweep_plan(now: datetime | None = None) -> SweepPlan:
    """What ``flask storage sweep`` does to exports (see :func:`sweep`)."""
    now = now or utcnow()
    cutoff = now - SWEEP_AFTER
    expired = list(
        db.session.scalars(
            select(Export.id).where(Export.status == "ready", Export.expires_at <= now)
        )
    )
    stalled = list(
        db.session.scalars(
            select(Export.id).where(
                Export.status == "pending", Export.requested_at < now - stalled_after()
            )
        )
    )
    leftovers = list(
        db.session.scalars(
            select(Export.id).where(Export.status == "failed", Export.storage_key.is_not(None))
        )
    )
    named = set(
        db.session.scalars(select(Export.storage_key).where(Export.storage_key.is_not(None)))
    )
    db.session.rollback()
    orphans = [
        obj
        for obj in storage.list_objects(KEY_PREFIX)
        if obj.modified < cutoff and obj.key not in named
    ]
    # A pending export's partial upload may be its attempt, still writing.
    partials = [
        upload
        for upload in storage.partial_uploads(KEY_PREFIX)
        if upload.started < cutoff and upload.key not in named
    ]
    return SweepPlan(expired, stalled, leftovers, orphans, partials)


def expire(export_id: int) -> bool:
    """Delete a ready export's archive past its time; the export becomes ``expired``."""
    row = db.session.execute(
        select(Export.storage_key)
        .where(Export.id == export_id, Export.status == "ready", Export.expires_at <= utcnow())
        .with_for_update()
    ).first()
    if row is None:
        db.session.rollback()
        return False
    if row.storage_key:
        storage.discard_upload(row.storage_key)  # StorageError: the row stays as it is
    db.session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(status="expired", storage_key=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return True


def fail_stalled(export_id: int) -> bool:
    """A pending export whose job can no longer be running: ``failed``, its attempt's
    object deleted, and the email that says so."""
    row = db.session.execute(
        select(Export.storage_key)
        .where(Export.id == export_id, Export.status == "pending")
        .with_for_update()
    ).first()
    if row is None:
        db.session.rollback()
        return False
    db.session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(status="failed")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    _notify(emails.send_export_failed, export_id)
    if row.storage_key:
        clear_leftover(export_id)
    return True


def clear_leftover(export_id: int) -> bool:
    """Delete what a failed export's last attempt may have stored, and forget its key."""
    key = db.session.scalar(
        select(Export.storage_key).where(Export.id == export_id, Export.status == "failed")
    )
    if key is None:
        db.session.rollback()
        return False
    storage.discard_upload(key)
    db.session.execute(
        update(Export)
        .where(Export.id == export_id, Export.storage_key == key)
        .values(storage_key=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return True
