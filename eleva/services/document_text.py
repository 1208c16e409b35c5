"""A document's text for search: extracted by a background job once the file is stored.

``text_status`` goes ``pending`` → ``ready`` or ``failed`` (a malformed, encrypted or
hostile file, or one that took longer than TEXT_EXTRACTION_SECONDS). A user has at most
TEXT_EXTRACTION_QUEUED documents in the extraction queue at a time; the others wait.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, select, update

from eleva.core import extraction
from eleva.core.errors import ServiceUnavailable
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import Document, User, utcnow
from eleva.data.storage import StorageError, storage

log = logging.getLogger("eleva.documents")

# The worker's own limit comes this long after the extraction's deadline.
HARD_LIMIT_MARGIN = 30


# A text queued this long ago and still pending was lost with its job (a deploy, a
# flushed Redis): `flask jobs extract-text` queues it again.
LOST_AFTER = timedelta(hours=1)


def _pending(owner_id: int) -> ColumnElement[bool]:
    return and_(
        Document.owner_id == owner_id,
        Document.status == "ready",
        Document.text_status == "pending",
    )


def queue_waiting(owner_id: int) -> bool:
    """Queue the owner's waiting texts, oldest first, while fewer than
    TEXT_EXTRACTION_QUEUED of theirs are queued; True when one ran at once instead (no
    Redis: development). Call it with no transaction of the caller's open."""
    # The bound (text_queued_at set) keeps one user's many uploads from filling the queue
    # that everyone's documents share. The others stay pending and wait their turn: each
    # extraction that ends calls this for its owner's next one, and `flask jobs
    # extract-text` queues what waits, and again what was queued long ago and never ran.
    # The owner's row, locked until the commit: two calls for one owner take turns.
    db.session.execute(select(User.id).where(User.id == owner_id).with_for_update())
    mine = _pending(owner_id)
    queued = db.session.scalar(
        select(func.count()).select_from(Document).where(mine, Document.text_queued_at.isnot(None))
    )
    room = int(current_app.config["TEXT_EXTRACTION_QUEUED"]) - int(queued or 0)
    ids = (
        list(
            db.session.scalars(
                select(Document.id)
                .where(mine, Document.text_queued_at.is_(None))
                .order_by(Document.id)
                .limit(room)
            )
        )
        if room > 0
        else []
    )
    if not ids:
        db.session.rollback()
        return False
    _mark(ids, utcnow())
    seconds = int(current_app.config["TEXT_EXTRACTION_SECONDS"])
    ran = False
    for index, document_id in enumerate(ids):
        try:
            # Without Redis (development) the job runs here, at the end of the upload's
            # request.
            ran |= jobs.enqueue(
                extract_document_text,
                job_timeout=seconds + HARD_LIMIT_MARGIN,
                document_id=document_id,
            )
        except ServiceUnavailable:
            # A queue that is down does not fail the upload (it is stored and committed):
            # the text waits, and `flask jobs extract-text` queues it.
            log.warning(
                "text extraction of %d document(s) not queued: the queue is down", len(ids) - index
            )
            _mark(ids[index:], None)
            break
    return ran


def _mark(ids: list[int], queued_at: datetime | None) -> None:
    db.session.execute(
        update(Document)
        .where(Document.id.in_(ids))
        .values(text_queued_at=queued_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def queue_all_waiting(now: datetime | None = None) -> int:
    """``flask jobs extract-text``: texts queued more than LOST_AFTER ago and still
    pending wait again, then every owner's waiting texts are queued (within the bound).
    How many texts wait or are queued for their owners now."""
    lost = (Document.text_status == "pending") & (
        Document.text_queued_at < (now or utcnow()) - LOST_AFTER
    )
    db.session.execute(
        update(Document)
        .where(lost)
        .values(text_queued_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    owners = list(
        db.session.scalars(
            select(Document.owner_id)
            .where(
                Document.status == "ready",
                Document.text_status == "pending",
                Document.text_queued_at.is_(None),
            )
            .distinct()
        )
    )
    db.session.rollback()
    for owner_id in owners:
        queue_waiting(owner_id)
    count = db.session.scalar(
        select(func.count())
        .select_from(Document)
        .where(Document.status == "ready", Document.text_status == "pending")
    )
    db.session.rollback()
    return int(count or 0)


def extract_document_text(document_id: int) -> None:
    """The job: read the document's file, save its text (``ready``) or ``failed``."""
    row = db.session.execute(
        select(Document.storage_key, Document.content_type, Document.owner_id).where(
            Document.id == document_id,
            Document.status == "ready",
            Document.text_status == "pending",
        )
    ).first()
    db.session.rollback()  # no transaction held open while the file is read
    if row is None:  # deleted, or already done by an earlier attempt
        return
    key, content_type, owner_id = row
    # A file that killed its work horse (a parser stuck in C code, memory) is failed by
    # the next attempt instead of being retried until the retries run out.
    if jobs.earlier_attempt_died():
        log.warning("text extraction of document %s killed its worker process: failed", document_id)
        _finish(document_id, key, None)
        queue_waiting(owner_id)
        return
    seconds = float(current_app.config["TEXT_EXTRACTION_SECONDS"])
    text: str | None
    try:
        with storage.open(key) as fileobj, _bounded_memory():
            text = extraction.extract(fileobj, content_type, seconds=seconds)
    except StorageError:  # retried as any job's failure is
        jobs.attempt_ended()  # it did not die: a retry may read the file
        raise
    except extraction.ExtractionFailed as exc:
        log.info("text of document %s could not be extracted: %s", document_id, exc)
        text = None
    _finish(document_id, key, text)
    jobs.attempt_ended()
    queue_waiting(owner_id)  # the owner's next text takes this one's place


def _bounded_memory() -> AbstractContextManager[None]:
    """In a worker's job, a cap on how much the process may grow while it reads the file
    (TEXT_EXTRACTION_MEMORY_MB); never in the web process (development runs jobs there)."""
    if not jobs.in_worker():
        return nullcontext()
    extra = int(current_app.config["TEXT_EXTRACTION_MEMORY_MB"]) * 1024 * 1024
    return extraction.address_space_limit(extra)


def _finish(document_id: int, key: str, text: str | None) -> None:
    """Save the outcome, unless the document was deleted or its file replaced since."""
    # The text and its status in one UPDATE: search finds it as soon as this commits.
    db.session.execute(
        update(Document)
        .where(
            Document.id == document_id,
            Document.storage_key == key,
            Document.text_status == "pending",
        )
        .values(
            text_status="failed" if text is None else "ready",
            extracted_text=text or "",
            updated_at=utcnow(),  # a new representation: a new ETag
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
