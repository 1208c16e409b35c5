"""A document's text for search: extracted by a background job once the file is stored.

``text_status`` goes ``pending`` → ``ready`` (the text saved in the same UPDATE that
says so, so search finds it as soon as that commits) or ``failed`` (a malformed,
encrypted or hostile file, or one that took longer than TEXT_EXTRACTION_SECONDS).
Extraction runs in the worker; a file that kills its work horse (a parser stuck in C
code, memory) is marked ``failed`` by the job's next attempt instead of being retried
until the retries run out. A storage error is retried as any job's failure is.

Without Redis (development) jobs run in the web process, so there the extraction runs
at the end of the upload's request.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select, update

from eleva.core import extraction
from eleva.core.errors import ServiceUnavailable
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import Document, utcnow
from eleva.data.storage import StorageError, storage

log = logging.getLogger("eleva.documents")

# The worker's own limit comes this long after the extraction's deadline.
HARD_LIMIT_MARGIN = 30


def start(document_id: int) -> bool:
    """Enqueue the extraction of a committed document whose text is ``pending``; True
    when it ran at once instead (no Redis: development).

    A queue that is down does not fail the upload (it is stored and committed): the text
    stays ``pending`` and ``flask jobs extract-text`` enqueues it again.
    """
    seconds = int(current_app.config["TEXT_EXTRACTION_SECONDS"])
    try:
        return jobs.enqueue(
            extract_document_text,
            job_timeout=seconds + HARD_LIMIT_MARGIN,
            document_id=document_id,
        )
    except ServiceUnavailable:
        log.warning("text extraction of document %s not queued: the queue is down", document_id)
    return False


def pending_documents() -> list[int]:
    """Ready documents whose text is still ``pending`` (for ``flask documents extract``)."""
    ids = db.session.scalars(
        select(Document.id)
        .where(Document.status == "ready", Document.text_status == "pending")
        .order_by(Document.id)
    )
    result = list(ids)
    db.session.rollback()
    return result


def extract_document_text(document_id: int) -> None:
    """The job: read the document's file, save its text (``ready``) or ``failed``."""
    row = db.session.execute(
        select(Document.storage_key, Document.content_type).where(
            Document.id == document_id,
            Document.status == "ready",
            Document.text_status == "pending",
        )
    ).first()
    db.session.rollback()  # no transaction held open while the file is read
    if row is None:  # deleted, or already done by an earlier attempt
        return
    key, content_type = row
    if jobs.earlier_attempt_died():
        log.warning("text extraction of document %s killed its worker process: failed", document_id)
        _finish(document_id, key, None)
        return
    seconds = float(current_app.config["TEXT_EXTRACTION_SECONDS"])
    text: str | None
    try:
        with storage.open(key) as fileobj:
            text = extraction.extract(fileobj, content_type, seconds=seconds)
    except StorageError:
        jobs.attempt_ended()  # it did not die: a retry may read the file
        raise
    except extraction.ExtractionFailed as exc:
        log.info("text of document %s could not be extracted: %s", document_id, exc)
        text = None
    _finish(document_id, key, text)
    jobs.attempt_ended()


def _finish(document_id: int, key: str, text: str | None) -> None:
    """Save the outcome, unless the document was deleted or its file replaced since."""
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
