"""The archive of everything a user keeps in Eléva: one ZIP, written piece by piece.

``eleva-export.json`` (``docs/export.schema.json`` describes it), each note as Markdown,
each document's bytes as uploaded, and the profile picture. Nothing is held whole in
memory.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from sqlalchemy import Select, select

from eleva.data.db import db
from eleva.data.models import Card, Document, LoginSession, Note, Review, Subject, User, utcnow
from eleva.data.storage import COPY_CHUNK, storage

# The ZIP holds eleva-export.json (the account, its login sessions — never a token or a
# hash — and every subject with its parts: SUBJECT_PARTS); notes/<subject>/<id>-<title>.md,
# each note as Markdown with a front matter; documents/<subject>/<id>-<filename>, each
# document's bytes as uploaded; and profile-picture.jpg, if any.
FORMAT_VERSION = 1
JSON_NAME = "eleva-export.json"
PICTURE_NAME = "profile-picture.jpg"
BATCH = 50  # rows per read: at most 50 note bodies (≤ 100,000 characters each) at once
_UNSAFE = re.compile(r"[^\w.-]+|\.{2,}")


def safe_name(name: str, fallback: str, limit: int = 60) -> str:
    """A file or folder name that every system accepts: letters (any script), digits,
    ``_``, ``-`` and single dots; never hidden, never empty."""
    cleaned = _UNSAFE.sub("-", name).strip(".-_")[:limit].strip(".-_")
    return cleaned or fallback


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=_json_default).encode()


class JsonWriter:
    """One JSON document, written as it is walked: objects whose members may be lists
    streamed an item at a time."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._counts: list[int] = []  # members or items written, per open level

    def _separate(self) -> None:
        if self._counts:
            if self._counts[-1]:
                self.out.write(b",")
            self._counts[-1] += 1

    def begin_object(self, fields: Mapping[str, Any]) -> None:
        """Open an object (an item of the open list, or the document) with ``fields``."""
        self._separate()
        self.out.write(_dumps(dict(fields))[:-1])  # all but its closing brace
        self._counts.append(len(fields))

    def begin_list(self, key: str) -> None:
        self._separate()
        self.out.write(_dumps(key) + b":[")
        self._counts.append(0)

    def item(self, value: Any) -> None:
        self._separate()
        self.out.write(_dumps(value))

    def end_list(self) -> None:
        self._counts.pop()
        self.out.write(b"]")

    def end_object(self) -> None:
        self._counts.pop()
        self.out.write(b"}")


def _date_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    moment = moment or utcnow()
    return (
        max(moment.year, 1980),
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )


class Archive:
    """The ZIP being written: files added whole (small) or a chunk at a time."""

    def __init__(self, zip_file: zipfile.ZipFile) -> None:
        self.zip = zip_file
        self._paths: set[str] = set()

    def _entry(self, path: str, modified: datetime | None, compress: bool) -> zipfile.ZipInfo:
        if path in self._paths:  # ids make every name unique; this is a safety net
            stem, dot, ext = path.rpartition(".")
            path = (
                f"{stem}-{uuid.uuid4().hex[:8]}{dot}{ext}"
                if dot
                else f"{path}-{uuid.uuid4().hex[:8]}"
            )
        self._paths.add(path)
        info = zipfile.ZipInfo(path, date_time=_date_time(modified))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16  # a plain file, readable
        return info

    def add_bytes(
        self, path: str, data: bytes, *, modified: datetime | None = None, compress: bool = True
    ) -> str:
        info = self._entry(path, modified, compress)
        self.zip.writestr(info, data)
        return info.filename

    def add_chunks(
        self,
        path: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        modified: datetime | None = None,
        compress: bool = False,
    ) -> str:
        """A file copied into the archive a chunk at a time."""
        info = self._entry(path, modified, compress)
        if size is not None:
            info.file_size = size
        with self.zip.open(
            info, "w", force_zip64=size is None or size >= zipfile.ZIP64_LIMIT
        ) as out:
            for chunk in chunks:
                out.write(chunk)
        return info.filename


# -- the parts of a subject -------------------------------------------------------------


@dataclass(frozen=True)
class SubjectPart:
    """One kind of a subject's content: ``items`` writes its files into the archive and
    yields each item's JSON, under ``key`` in the subject's object."""

    key: str
    items: Callable[[Archive, int, Subject, str], Iterator[dict[str, Any]]]


def batches(query: Select[*tuple[Any, ...]], id_column: Any) -> Iterator[Any]:
    """The rows of ``query`` (ordered by ``id_column``), BATCH at a time, by keyset."""
    last = 0
    while True:
        rows = db.session.execute(
            query.where(id_column > last).order_by(id_column).limit(BATCH)
        ).all()
        yield from rows
        if len(rows) < BATCH:
            return
        last = rows[-1].id


def _front_matter(fields: Mapping[str, Any]) -> str:
    # Each value as JSON, which YAML 1.2 reads as the same scalar: no quoting rules.
    lines = [f"{key}: {_dumps(value).decode()}" for key, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n\n"


def note_items(
    archive: Archive, owner_id: int, subject: Subject, folder: str
) -> Iterator[dict[str, Any]]:
    query = select(
        Note.id, Note.subject_id, Note.title, Note.body, Note.created_at, Note.updated_at
    ).where(Note.owner_id == owner_id, Note.subject_id == subject.id)
    for note in batches(query, Note.id):
        item = {
            "id": note.id,
            "subject_id": note.subject_id,
            "title": note.title,
            "body": note.body,
            "created_at": note.created_at,
            "updated_at": note.updated_at,
        }
        markdown = _front_matter(
            {"title": note.title, "subject": subject.name, "created_at": note.created_at,
             "updated_at": note.updated_at}
        ) + note.body  # fmt: skip
        item["path"] = archive.add_bytes(
            f"notes/{folder}/{note.id}-{safe_name(note.title, 'note')}.md",
            markdown.encode(),
            modified=note.updated_at,
        )
        yield item


def document_items(
    archive: Archive, owner_id: int, subject: Subject, folder: str
) -> Iterator[dict[str, Any]]:
    query = select(
        Document.id,
        Document.subject_id,
        Document.title,
        Document.filename,
        Document.content_type,
        Document.size,
        Document.status,
        Document.text_status,
        Document.storage_key,
        Document.created_at,
        Document.updated_at,
    ).where(Document.owner_id == owner_id, Document.subject_id == subject.id)
    for doc in batches(query, Document.id):
        path = None
        if doc.status == "ready":  # an upload never completed has no bytes to give
            path = archive.add_chunks(
                f"documents/{folder}/{doc.id}-{safe_name(doc.filename, 'document')}",
                storage.read_chunks(doc.storage_key, COPY_CHUNK),
                size=int(doc.size),
                modified=doc.updated_at,
                # PDFs, images and Office files are compressed already.
                compress=doc.content_type.startswith("text/"),
            )
        yield {
            "id": doc.id,
            "subject_id": doc.subject_id,
            "title": doc.title,
            "filename": doc.filename,
            "content_type": doc.content_type,
            "size": int(doc.size),
            "status": doc.status,
            "text_status": doc.text_status,
            "created_at": doc.created_at,
            "updated_at": doc.updated_at,
            "path": path,
        }


_CARD_FIELDS = (
    "id", "subject_id", "note_id", "front", "back", "state", "due", "stability",
    "difficulty", "reps", "lapses", "last_review_at", "suspended", "created_at", "updated_at",
)  # fmt: skip
_REVIEW_FIELDS = ("id", "card_id", "rating", "reviewed_at", "duration_ms", "state", "due")


def card_items(
    archive: Archive, owner_id: int, subject: Subject, folder: str
) -> Iterator[dict[str, Any]]:
    """Each card (GET /cards/<id>) with its whole review history, oldest first."""
    query = select(*(getattr(Card, name) for name in _CARD_FIELDS)).where(
        Card.owner_id == owner_id, Card.subject_id == subject.id
    )
    batch: list[Any] = []
    for card in batches(query, Card.id):
        batch.append(card)
        if len(batch) == BATCH:
            yield from _with_reviews(owner_id, batch)
            batch = []
    yield from _with_reviews(owner_id, batch)


def _with_reviews(owner_id: int, cards: list[Any]) -> Iterator[dict[str, Any]]:
    if not cards:
        return
    reviews: dict[int, list[dict[str, Any]]] = {card.id: [] for card in cards}
    rows = db.session.execute(
        select(*(getattr(Review, name) for name in _REVIEW_FIELDS))
        .where(Review.owner_id == owner_id, Review.card_id.in_(list(reviews)))
        .order_by(Review.card_id, Review.reviewed_at, Review.id)
    )
    for row in rows:
        reviews[row.card_id].append(dict(row._mapping))
    for card in cards:
        yield {**card._mapping, "reviews": reviews[card.id]}


# Each subject's content, in this order. A domain whose rows live in a subject adds
# its part here.
SUBJECT_PARTS: list[SubjectPart] = [
    SubjectPart("notes", note_items),
    SubjectPart("documents", document_items),
    SubjectPart("cards", card_items),
]


# -- the whole archive ------------------------------------------------------------------


def user_view(user: User, picture_path: str | None) -> dict[str, Any]:
    """The account as its owner sees it (GET /users/me), the picture as a path here."""
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "username": user.username,
        "full_name": user.full_name,
        "bio": user.bio,
        "is_active": user.is_active,
        "privacy": user.privacy,
        "study": {
            "timezone": user.study.timezone,
            "day_starts_at_hour": user.study.day_starts_at_hour,
            "new_cards_per_day": user.study.new_cards_per_day,
            "desired_retention": user.study.desired_retention,
        },
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "profile_picture": picture_path,
    }


def session_items(user_id: int) -> Iterator[dict[str, Any]]:
    """Every login session, ended ones too; never a token id or a hash."""
    query = select(
        LoginSession.id,
        LoginSession.created_at,
        LoginSession.last_used_at,
        LoginSession.expires_at,
        LoginSession.revoked_at,
        LoginSession.revoked_reason,
        LoginSession.device,
        LoginSession.ip,
    ).where(LoginSession.user_id == user_id)
    rows = db.session.execute(query.order_by(LoginSession.created_at, LoginSession.id))
    for row in rows:
        yield {
            "id": row.id,
            "created_at": row.created_at,
            "last_used_at": row.last_used_at,
            "expires_at": row.expires_at,
            "ended_at": row.revoked_at,
            "ended_reason": row.revoked_reason,
            "device": row.device,
            "ip": row.ip,
        }


def subject_view(subject: Subject) -> dict[str, Any]:
    return {
        "id": subject.id,
        "name": subject.name,
        "description": subject.description,
        "color": subject.color,
        "is_archived": subject.is_archived,
        "exam_date": subject.exam_date,
        "created_at": subject.created_at,
        "updated_at": subject.updated_at,
    }


def write_archive(out: IO[bytes], scratch: IO[bytes], user_id: int) -> None:
    """Write the archive of ``user_id`` to ``out`` (a seekable file), with ``scratch``
    (another) for the JSON as it is written. Reads the database in the caller's
    transaction (a snapshot, on PostgreSQL, when the caller opened one)."""
    user = db.session.get(User, user_id)
    if user is None:
        raise LookupError(f"user {user_id} is gone")
    # Rows are read in batches, files copied from storage a chunk at a time into the ZIP
    # (a file on disk), and the JSON written as it goes to ``scratch``, copied into the
    # ZIP at the end.
    json_out = JsonWriter(scratch)
    with zipfile.ZipFile(out, "w", allowZip64=True) as zip_file:
        archive = Archive(zip_file)
        picture = None
        if user.picture_key:
            picture = archive.add_chunks(
                PICTURE_NAME, storage.read_chunks(user.picture_key), modified=user.updated_at
            )
        json_out.begin_object(
            {
                "format_version": FORMAT_VERSION,
                "exported_at": utcnow(),
                "user": user_view(user, picture),
            }
        )
        json_out.begin_list("sessions")
        for session in session_items(user_id):
            json_out.item(session)
        json_out.end_list()
        json_out.begin_list("subjects")
        subjects = db.session.scalars(
            select(Subject).where(Subject.owner_id == user_id).order_by(Subject.id)
        ).all()  # a few hundred at most, without their content
        for subject in subjects:
            folder = f"{subject.id}-{safe_name(subject.name, 'subject')}"
            json_out.begin_object(subject_view(subject))
            for part in SUBJECT_PARTS:
                json_out.begin_list(part.key)
                for item in part.items(archive, user_id, subject, folder):
                    json_out.item(item)
                json_out.end_list()
            json_out.end_object()
        json_out.end_list()
        json_out.end_object()
        size = scratch.tell()
        scratch.seek(0)
        archive.add_chunks(
            JSON_NAME,
            iter(lambda: scratch.read(COPY_CHUNK), b""),
            size=size,
            compress=True,
        )
