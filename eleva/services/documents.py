"""A user's documents: files kept per subject, in the storage backend.

Every function is confined to one owner (another user's document or subject is not
found). Storage and database stay consistent whatever fails; ``users.storage_used``
counts every document's bytes, uploads in progress included.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from eleva.core import filetypes
from eleva.core.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from eleva.data.db import commit, db
from eleva.data.models import Document, Subject, User, utcnow
from eleva.data.pages import Page, SortColumns, ordered, paginate, sort_keys
from eleva.data.storage import (
    DOWNLOAD_SALT,
    UPLOAD_SALT,
    InvalidToken,
    PartialUpload,
    StorageError,
    StoredObject,
    UploadForm,
    storage,
    unsign,
)
from eleva.services import document_text, owned

log = logging.getLogger("eleva.documents")

MB = 1024 * 1024
KEY_PREFIX = "documents/"
# What the local backend's signed download URL may serve: documents, and archives of
# users' exports (eleva.services.exports), never a picture or any other object.
SIGNED_DOWNLOAD_PREFIXES = (KEY_PREFIX, "exports/")
# A direct upload URL works this long; an upload still not completed after
# STALE_UPLOAD (longer, so no URL outlives it) is removed by the sweep.
DIRECT_UPLOAD_SECONDS = 15 * 60
STALE_UPLOAD = timedelta(hours=1)
PENDING_TYPE = "application/octet-stream"  # an uploading document's type, until complete

SORT_COLUMNS: SortColumns = {
    "created_at": lambda: Document.created_at,
    "title": lambda: func.lower(Document.title),
    "size": lambda: Document.size,
}
SORT_KEYS = sort_keys(SORT_COLUMNS)


def max_document_bytes() -> int:
    return int(current_app.config["DOCUMENT_MAX_MB"]) * MB


def quota_bytes() -> int:
    return int(current_app.config["STORAGE_QUOTA_MB"]) * MB


def document_key(owner_id: int) -> str:
    return f"{KEY_PREFIX}{owner_id}/{uuid.uuid4().hex}"


def clean_filename(name: str | None) -> str:
    """The client's file name as a label: its last path segment, printable, ≤ 255."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "document"


def default_title(filename: str) -> str:
    """The file name without its extension (the whole name when nothing is left)."""
    stem = PurePosixPath(filename).stem.strip()
    return (stem or filename)[:200]


# -- text extraction ------------------------------------------------------------------


def document_ready(document: Document) -> None:
    """Called once a document's bytes are stored, checked and committed (``ready``):
    a document with text (PDF, text, Markdown, DOCX) gets its extraction job, or waits
    for one of its owner's places in the queue (eleva.services.document_text)."""
    if document.text_status == "pending" and document_text.queue_waiting(document.owner_id):
        db.session.refresh(document)  # extracted at once (development): answer what it is


# -- uploads through the API --------------------------------------------------------------
# The type is judged from the content → the object is stored → the quota is reserved and
# the row inserted in one transaction. A failed store leaves nothing (503); a refused
# quota or a failed commit deletes the object.


def upload_document(
    owner_id: int,
    subject_id: int,
    fileobj: BinaryIO,
    *,
    filename: str | None,
    title: str | None = None,
) -> Document:
    """Store an uploaded file (a seekable file object, read in chunks) as a document."""
    name = clean_filename(filename)
    size = _size_of(fileobj)
    used = _owned_subject_usage(owner_id, subject_id)
    _check_size(size)
    kind = _detect(fileobj, name)
    if used + size > quota_bytes():  # early, before storing: the UPDATE below decides
        raise over_quota()

    key = document_key(owner_id)
    try:
        storage.save_stream(key, fileobj, kind.content_type)
    except StorageError as exc:
        log.error("document upload for user %s failed: %s", owner_id, exc)
        raise ServiceUnavailable("Document storage is unavailable. Try again shortly.") from None

    try:
        _reserve(owner_id, size)
        document = Document(
            owner_id=owner_id,
            subject_id=subject_id,
            title=title or default_title(name),
            filename=name,
            content_type=kind.content_type,
            size=size,
            storage_key=key,
            status="ready",
            text_status="pending" if kind.has_text else "none",
            completed_at=utcnow(),
        )
        db.session.add(document)
        _commit_new()
    except BaseException:
        db.session.rollback()
        discard(key)  # no row points at it: no orphan
        raise
    document_ready(document)
    return document


def _size_of(fileobj: BinaryIO) -> int:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def _check_size(size: int) -> None:
    if size > max_document_bytes():
        raise PayloadTooLarge(
            f"The file is larger than {current_app.config['DOCUMENT_MAX_MB']} MB."
        )


def _detect(fileobj: BinaryIO, filename: str) -> filetypes.FileType:
    try:
        return filetypes.detect(fileobj, filename)
    except filetypes.UnsupportedType:
        raise _unsupported() from None


def _unsupported() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "This type of file is not supported. Send a PDF, an image (PNG, JPEG, WebP, "
        "GIF), UTF-8 text or Markdown, or a DOCX, XLSX, PPTX or ODT document."
    )


def over_quota() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Your storage quota of {current_app.config['STORAGE_QUOTA_MB']} MB would be "
        "exceeded. Delete some documents first."
    )


def _owned_subject_usage(owner_id: int, subject_id: int) -> int:
    """The owner's stored bytes, if the subject is theirs; else NotFound."""
    used = db.session.scalar(
        select(User.storage_used)
        .join(Subject, Subject.owner_id == User.id)
        .where(User.id == owner_id, Subject.id == subject_id)
    )
    if used is None:
        raise NotFound("No such subject.")
    return int(used)


def _reserve(owner_id: int, size: int) -> None:
    """Count ``size`` more bytes, unless that passes the quota."""
    # One conditional UPDATE, in the transaction that inserts the row: two uploads at once
    # that each fit but together do not cannot both pass (the second waits for the first's
    # row lock, then sees its bytes).
    reserved = db.session.execute(
        update(User)
        .where(User.id == owner_id, User.storage_used + size <= quota_bytes())
        .values(storage_used=User.storage_used + size)
        .returning(User.storage_used)
        .execution_options(synchronize_session=False)
    ).first()
    if reserved is None:
        raise over_quota()


def _release(owner_id: int, size: int) -> None:
    db.session.execute(
        update(User)
        .where(User.id == owner_id)
        .values(storage_used=User.storage_used - size)
        .execution_options(synchronize_session=False)
    )


def _commit_new() -> None:
    try:
        commit()
    except IntegrityError:
        # The subject was deleted since it was checked (its row lock made us wait).
        db.session.rollback()
        raise NotFound("No such subject.") from None


# -- direct uploads -----------------------------------------------------------------------
# The quota is reserved and the row inserted (uploading) before the client sends the bytes
# to storage; complete_upload checks the object's size and type and either makes the row
# ready or deletes object and row (and frees the quota).


@dataclass(frozen=True)
class DirectUpload:
    document: Document
    upload: UploadForm
    expires_at: datetime


def start_direct_upload(
    owner_id: int, subject_id: int, *, filename: str, size: int, title: str | None = None
) -> DirectUpload:
    """Reserve the quota and a row (``uploading``) and hand out where to send the bytes."""
    name = clean_filename(filename)
    _owned_subject_usage(owner_id, subject_id)
    _check_size(size)
    key = document_key(owner_id)
    expires_at = utcnow() + timedelta(seconds=DIRECT_UPLOAD_SECONDS)
    try:
        _reserve(owner_id, size)
        document = Document(
            owner_id=owner_id,
            subject_id=subject_id,
            title=title or default_title(name),
            filename=name,
            content_type=PENDING_TYPE,
            size=size,
            storage_key=key,
            status="uploading",
            text_status="none",
            upload_expires_at=expires_at,
        )
        db.session.add(document)
        db.session.flush()  # its id, for the local backend's signed URL
        form = storage.upload_form(
            key, size=size, expires_in=DIRECT_UPLOAD_SECONDS, token={"d": document.id, "k": key}
        )
        _commit_new()
    except StorageError as exc:
        db.session.rollback()
        log.error("direct upload for user %s could not start: %s", owner_id, exc)
        raise ServiceUnavailable("Document storage is unavailable. Try again shortly.") from None
    except BaseException:
        db.session.rollback()
        raise
    return DirectUpload(document, form, expires_at)


def receive_upload(token: str, fileobj: BinaryIO) -> None:
    """The local backend's upload URL: store the bytes of a direct upload, once.

    The URL is single use: the row's ``upload_expires_at`` is cleared by a conditional
    UPDATE before the bytes are written, so a second POST (or a concurrent one) finds
    nothing to claim (409). A failed write gives the claim back.
    """
    try:
        data = unsign(UPLOAD_SALT, token, max_age=DIRECT_UPLOAD_SECONDS)
        document_id, key = int(data["d"]), str(data["k"])
    except (InvalidToken, KeyError, TypeError, ValueError):
        raise NotFound("This upload link is invalid or has expired.") from None
    claimed = db.session.execute(
        update(Document)
        .where(
            Document.id == document_id,
            Document.storage_key == key,
            Document.status == "uploading",
            Document.upload_expires_at > utcnow(),
        )
        .values(upload_expires_at=None)
        .returning(Document.size, Document.filename)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        db.session.rollback()
        raise Conflict("This upload link was already used, or the upload was removed.")
    db.session.commit()
    declared = int(claimed.size)
    try:
        size = _size_of(fileobj)
        message = f"The file must be exactly {declared} bytes, as declared."
        if size > declared:
            raise PayloadTooLarge(message)
        if size < declared:
            raise ValidationFailed.field("file", message, location="files")
        storage.save_stream(key, fileobj, PENDING_TYPE)
    except BaseException as exc:
        _give_back_claim(document_id)
        if isinstance(exc, StorageError):
            log.error("direct upload of document %s failed: %s", document_id, exc)
            raise ServiceUnavailable(
                "Document storage is unavailable. Try again shortly."
            ) from None
        raise


def _give_back_claim(document_id: int) -> None:
    db.session.rollback()
    db.session.execute(
        update(Document)
        .where(Document.id == document_id, Document.status == "uploading")
        .values(upload_expires_at=utcnow() + timedelta(seconds=DIRECT_UPLOAD_SECONDS))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def complete_upload(owner_id: int, document_id: int) -> Document:
    """Check a direct upload's stored object and make the document ``ready``; already
    ready, it is answered as is (a retried request). Nothing stored yet: 409. A refused
    object (its size, its type) is deleted, and so is the document (its quota freed): the
    client starts again with a new upload."""
    # Locked while the object is checked: two completes at once, or a complete and a
    # delete, cannot both act on it. (Only this document's row: the check reads at most
    # the object's size in ranged GETs, never the user's row.)
    document = get_document(owner_id, document_id, for_update=True)
    if document.status == "ready":
        db.session.rollback()
        return document
    try:
        stored = storage.size(document.storage_key)
        if stored is None:
            raise Conflict("Nothing was uploaded yet: send the file to the upload URL first.")
        if stored != document.size:
            message = f"The uploaded file is {stored} bytes, not the {document.size} declared."
            if stored > document.size:
                _refuse(document, PayloadTooLarge(message))
            _refuse(document, ValidationFailed.field("size", message))
        with storage.open(document.storage_key) as fileobj:
            try:
                kind = filetypes.detect(fileobj, document.filename)
            except filetypes.UnsupportedType:
                kind = None
        if kind is None:
            _refuse(document, _unsupported())
    except StorageError as exc:
        db.session.rollback()
        log.error("completing document %s failed: %s", document_id, exc)
        raise ServiceUnavailable("Document storage is unavailable. Try again shortly.") from None
    except BaseException:
        db.session.rollback()
        raise
    assert kind is not None  # noqa: S101 (every other path raised)
    document.content_type = kind.content_type
    document.text_status = "pending" if kind.has_text else "none"
    document.status = "ready"
    document.upload_expires_at = None
    document.completed_at = document.updated_at = utcnow()
    commit()
    document_ready(document)
    return document


def _refuse(document: Document, error: Exception) -> None:
    """Delete a refused upload's object and row (its bytes freed), then raise ``error``."""
    key = document.storage_key
    _release(document.owner_id, document.size)
    db.session.delete(document)
    db.session.commit()
    discard(key)
    raise error


# -- reading, editing, deleting -----------------------------------------------------------


def list_documents(
    owner_id: int, subject_id: int, *, sort: str = "-created_at", page: int = 1, page_size: int = 20
) -> Page[Document]:
    """One page of a subject's documents and their total; NotFound when the subject is
    not the owner's."""
    owned.require_subject(owner_id, subject_id, lock=False)
    query = select(Document).where(Document.owner_id == owner_id, Document.subject_id == subject_id)
    return paginate(ordered(query, sort, SORT_COLUMNS, Document.id), page=page, page_size=page_size)


def get_document(owner_id: int, document_id: int, *, for_update: bool = False) -> Document:
    """The owner's document, or NotFound; ``for_update`` locks its row (PostgreSQL)."""
    return owned.owned_row(
        Document, owner_id, document_id, missing="No such document.", for_update=for_update
    )


def update_document(owner_id: int, document: Document, changes: dict[str, Any]) -> Document:
    """Rename or move to another of the owner's subjects (else a 422 on ``subject_id``)."""
    subject_id = changes.get("subject_id")
    if subject_id is not None and subject_id != document.subject_id:
        owned.require_target_subject(owner_id, subject_id)
    for field, value in changes.items():
        setattr(document, field, value)
    document.updated_at = utcnow()  # every accepted write is a new version (ETag)
    commit()
    return document


def delete_document(document: Document) -> None:
    # The row (and its bytes) first, then the object, best effort: an object left behind
    # is found by `flask storage sweep` (sweep_plan).
    key = document.storage_key
    _release(document.owner_id, document.size)
    db.session.delete(document)
    db.session.commit()
    discard(key)


def release_subject_documents(owner_id: int, subject_id: int) -> list[str]:
    """Before a subject is deleted (in its transaction): delete its documents' rows,
    free their bytes, and return their storage keys to :func:`discard` after commit."""
    deleted = db.session.execute(
        delete(Document)
        .where(Document.subject_id == subject_id, Document.owner_id == owner_id)
        .returning(Document.storage_key, Document.size)
        .execution_options(synchronize_session=False)
    ).all()
    if deleted:
        _release(owner_id, sum(int(row.size) for row in deleted))
    return [row.storage_key for row in deleted]


@dataclass(frozen=True)
class Download:
    url: str
    expires_at: datetime


def download(owner_id: int, document_id: int) -> Download:
    """A short-lived URL serving the document as an attachment of its detected type."""
    document = get_document(owner_id, document_id)
    if document.status != "ready":
        raise Conflict("This document is still being uploaded.")
    seconds = int(current_app.config["DOWNLOAD_URL_SECONDS"])
    try:
        url = storage.download_url(
            document.storage_key,
            filename=document.filename,
            content_type=document.content_type,
            expires_in=seconds,
        )
    except StorageError as exc:
        log.error("download URL for document %s failed: %s", document_id, exc)
        raise ServiceUnavailable("Document storage is unavailable. Try again shortly.") from None
    return Download(url, utcnow() + timedelta(seconds=seconds))


@dataclass(frozen=True)
class OpenedFile:
    fileobj: BinaryIO
    filename: str
    content_type: str


def open_download(token: str) -> OpenedFile:
    """The file a signed download URL of the local backend names (close it)."""
    try:
        data = unsign(DOWNLOAD_SALT, token, int(current_app.config["DOWNLOAD_URL_SECONDS"]))
        key, filename, content_type = str(data["k"]), str(data["f"]), str(data["t"])
    except (InvalidToken, KeyError, TypeError):
        raise NotFound("This download link is invalid or has expired.") from None
    if not key.startswith(SIGNED_DOWNLOAD_PREFIXES):
        raise NotFound("This download link is invalid or has expired.")
    try:
        fileobj = storage.open(key)
    except (StorageError, ValueError):  # deleted since the link was made
        raise NotFound("This file no longer exists.") from None
    return OpenedFile(fileobj, filename, content_type)


@dataclass(frozen=True)
class StorageUsage:
    used_bytes: int
    quota_bytes: int
    documents: int
    max_document_bytes: int


def storage_usage(owner_id: int) -> StorageUsage:
    documents = select(func.count()).where(Document.owner_id == User.id).scalar_subquery()
    used, count = db.session.execute(
        select(User.storage_used, documents).where(User.id == owner_id)
    ).one()
    return StorageUsage(int(used), quota_bytes(), int(count), max_document_bytes())


def discard(key: str) -> bool:
    """Delete an object, best effort: a failure is logged, never raised (the sweep
    removes what is left)."""
    try:
        storage.delete(key)
    except StorageError as exc:
        log.warning("could not delete stored object %s: %s", key, exc)
        return False
    return True


# -- the sweep ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    stale_uploads: list[int]  # document ids
    orphans: list[StoredObject]
    partials: list[PartialUpload]  # writes never finished (a process killed midway)


def sweep_plan(now: datetime | None = None) -> SweepPlan:
    """What ``flask storage sweep`` removes: uploads started more than an hour ago and
    never completed, and objects under ``documents/`` that no row references. An object
    younger than an hour is left alone: its row may not be committed yet."""
    cutoff = (now or utcnow()) - STALE_UPLOAD
    stale = list(
        db.session.scalars(
            select(Document.id).where(Document.status == "uploading", Document.created_at < cutoff)
        )
    )
    orphans: list[StoredObject] = []
    batch: list[StoredObject] = []

    def check(batch: list[StoredObject]) -> None:
        known = set(
            db.session.scalars(
                select(Document.storage_key).where(
                    Document.storage_key.in_([obj.key for obj in batch])
                )
            )
        )
        orphans.extend(obj for obj in batch if obj.key not in known)

    for obj in storage.list_objects(KEY_PREFIX):
        if obj.modified < cutoff:
            batch.append(obj)
        if len(batch) >= 500:
            check(batch)
            batch = []
    if batch:
        check(batch)
    db.session.rollback()
    partials = [p for p in storage.partial_uploads(KEY_PREFIX) if p.started < cutoff]
    return SweepPlan(stale, orphans, partials)


def remove_stale_upload(document_id: int) -> bool:
    """Delete an upload never completed (row, freed bytes, object); False if it was
    completed or removed meanwhile."""
    document = db.session.scalar(
        select(Document)
        .where(Document.id == document_id, Document.status == "uploading")
        .with_for_update()
    )
    if document is None:
        db.session.rollback()
        return False
    delete_document(document)
    return True
