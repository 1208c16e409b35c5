"""SQLAlchemy 2.0 models: users, their login sessions, their subjects, notes and documents.

Uniqueness that users rely on (email, username, a subject's name per owner — all
case-insensitive) is enforced by unique indexes on ``lower(...)``, on SQLite and
PostgreSQL alike; services turn the resulting IntegrityError into a 409.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    TypeDecorator,
    Uuid,
    event,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from eleva.data.db import Base, unique_index

# Full-text search (PostgreSQL): a language-neutral configuration that drops accents,
# made by the migrations; each searchable table has a GIN index on (owner_id, vector).
SEARCH_CONFIG = "eleva_search"


def search_vector(title: str, body: str) -> str:
    """SQL of a row's weighted search vector, from SQL of its title and body. The index
    and the queries must use this very expression (PostgreSQL matches it literally)."""
    return (
        f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, {title}), 'A') || "
        f"setweight(to_tsvector('{SEARCH_CONFIG}'::regconfig, {body}), 'B')"
    )


def search_index(table: str, title: str, body: str) -> Index:
    index = Index(
        f"ix_{table}_search",
        "owner_id",
        text(f"({search_vector(title, body)})"),
        postgresql_using="gin",
        info={"dialects": ("postgresql",)},  # said again for readers of the metadata
    )
    return index.ddl_if(dialect="postgresql")


SUBJECT_SEARCH = ("name", "coalesce(description, '')")
NOTE_SEARCH = ("title", "body")
DOCUMENT_SEARCH = ("title", "filename")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the offset (timestamptz); SQLite returns naive values, which are
    stored in UTC and handed back with the UTC offset attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # onupdate fires on every UPDATE the ORM issues for the row.
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


PROFILE_VISIBILITIES = ("public", "private")


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # stored lower-cased
    username: Mapped[str] = mapped_column(String(30))  # case kept, unique without case
    password_hash: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str | None] = mapped_column(String(100))
    bio: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    profile_visibility: Mapped[str] = mapped_column(
        String(10), default="public", server_default="public"
    )
    show_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The current address was confirmed by a link sent to it (or by a password reset).
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    picture_key: Mapped[str | None] = mapped_column(String(255))
    # How many subjects the user has, by archive state: kept by database triggers (see
    # SUBJECT_COUNT_TRIGGERS) so that a list's total is one row read, not a count(*)
    # that grows with the user's subjects.
    subjects_active: Mapped[int] = mapped_column(default=0, server_default="0")
    subjects_archived: Mapped[int] = mapped_column(default=0, server_default="0")
    # Bytes of the user's documents, uploads in progress included (their size is
    # reserved when they start). Kept by eleva.services.documents in the same
    # transaction as the document rows; the quota is a conditional UPDATE of it.
    storage_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    documents_count: Mapped[int] = mapped_column(default=0, server_default="0")

    subjects: Mapped[list[Subject]] = relationship(
        back_populates="owner",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",  # no accidental N+1: load subjects through the subjects service
    )
    sessions: Mapped[list[LoginSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (
        unique_index(
            "uq_users_email_lower", func.lower(email), field="email", what="email address"
        ),
        unique_index("uq_users_username_lower", func.lower(username), field="username"),
        CheckConstraint("profile_visibility IN ('public', 'private')", name="profile_visibility"),
    )

    @property
    def privacy(self) -> dict[str, Any]:
        return {"profile_visibility": self.profile_visibility, "show_email": self.show_email}

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class LoginSession(Base):
    """One login: every refresh token descends from it, and dies with it.

    ``refresh_jti`` is the one refresh token of the session that may still be used;
    rotating swaps it atomically, and presenting any earlier one revokes the session —
    but for ``previous_jti``, the one it replaced, within REFRESH_REUSE_GRACE_SECONDS of
    ``refreshed_at`` (two tabs refreshing at once). ``device`` and ``ip`` describe the
    login; ``last_used_at`` is the last login or refresh (never written per request).
    """

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # login + refresh lifetime
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_jti: Mapped[str | None] = mapped_column(String(36))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device: Mapped[str | None] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="sessions", lazy="raise")

    def __repr__(self) -> str:
        return f"<LoginSession {self.id} user={self.user_id}>"


TOKEN_PURPOSES = ("reset", "verify")


class AccountToken(Base):
    """A secret sent by email in a link: a password reset or an email verification.

    Only its SHA-256 is stored (``digest``). ``email`` is the address it was sent to: a
    verification token proves that address, and none other. Single use: consumed by a
    conditional DELETE … RETURNING, so of two concurrent uses exactly one gets the row.
    """

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    digest: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # A token is found by its digest (and 256 random bits never collide).
        Index("uq_account_tokens_digest", digest, unique=True),
        CheckConstraint("purpose IN ('reset', 'verify')", name="purpose"),
    )


class Subject(TimestampMixin, Base):
    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(2000))
    color: Mapped[str | None] = mapped_column(String(7))  # "#RRGGBB", upper-case
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How many notes the subject has: kept by triggers (NOTE_COUNT_TRIGGERS), so that the
    # note list's total is one row read, not a count(*) that grows with the notes.
    note_count: Mapped[int] = mapped_column(default=0, server_default="0")

    owner: Mapped[User] = relationship(back_populates="subjects", lazy="raise")

    __table_args__ = (
        unique_index(
            "uq_subjects_owner_name_lower",
            owner_id,
            func.lower(name),
            field="name",
            what="subject name",
        ),
        # The list query: one owner, one archive state, ordered by a sort key, ties by id.
        Index("ix_subjects_owner_updated", owner_id, is_archived, "updated_at", id),
        Index("ix_subjects_owner_created", owner_id, is_archived, "created_at", id),
        Index("ix_subjects_owner_name", owner_id, is_archived, func.lower(name), id),
        # What a note's (owner_id, subject_id) foreign key refers to.
        Index("uq_subjects_owner_id_id", owner_id, id, unique=True),
        search_index("subjects", *SUBJECT_SEARCH),
    )

    def __repr__(self) -> str:
        return f"<Subject {self.id} {self.name!r}>"


class Note(TimestampMixin, Base):
    """A Markdown note in one of its owner's subjects.

    The foreign key to the subject is (owner_id, subject_id): the database itself
    refuses a note whose subject belongs to someone else, and the cascade that deletes a
    subject's notes walks the list indexes (they lead with owner_id, subject_id) instead
    of needing an index of its own.
    """

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The list shows eleva.core.markdown.excerpt(body), computed on every write of the
    # body: a list then reads 200 characters per note, never a body of up to 100,000.
    excerpt: Mapped[str] = mapped_column(String(200), default="", server_default="")

    __table_args__ = (
        ForeignKeyConstraint(
            [owner_id, subject_id],
            ["subjects.owner_id", "subjects.id"],
            ondelete="CASCADE",
            name="fk_notes_subject_subjects",
        ),
        # The list: one owner's subject, ordered by a sort key, ties by id.
        Index("ix_notes_owner_subject_updated", owner_id, subject_id, "updated_at", id),
        Index("ix_notes_owner_subject_created", owner_id, subject_id, "created_at", id),
        Index("ix_notes_owner_subject_title", owner_id, subject_id, func.lower(title), id),
        search_index("notes", *NOTE_SEARCH),
    )

    def __repr__(self) -> str:
        return f"<Note {self.id} {self.title!r}>"


DOCUMENT_STATUSES = ("ready", "uploading")
TEXT_STATUSES = ("pending", "ready", "failed", "none")


class Document(TimestampMixin, Base):
    """A stored file of a subject. ``storage_key`` names its object in the storage
    backend (``documents/{owner_id}/{uuid}``); every row points at an object that
    exists, or at one being uploaded directly (``status`` uploading)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))  # detected, never the client's
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(10), default="ready", server_default="ready")
    text_status: Mapped[str] = mapped_column(String(10), default="none", server_default="none")
    # Direct uploads: until when the upload URL works (NULL once the bytes were
    # received on the local backend, which makes its upload URL single use), and
    # when the upload was completed.
    upload_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("uq_documents_storage_key", storage_key, unique=True),
        # The list query: one subject, ordered by a sort key, ties by id.
        Index("ix_documents_subject_created", subject_id, "created_at", id),
        Index("ix_documents_subject_title", subject_id, func.lower(title), id),
        Index("ix_documents_subject_size", subject_id, size, id),
        Index("ix_documents_owner_id", owner_id),
        # The sweep's uploads never completed.
        Index("ix_documents_status_created", status, "created_at"),
        CheckConstraint("status IN ('ready', 'uploading')", name="status"),
        CheckConstraint(
            "text_status IN ('pending', 'ready', 'failed', 'none')", name="text_status"
        ),
        CheckConstraint("size >= 0", name="size"),
        search_index("documents", *DOCUMENT_SEARCH),
    )

    def __repr__(self) -> str:
        return f"<Document {self.id} {self.filename!r}>"


# Triggers keeping users.subjects_active / subjects_archived equal to the user's subjects
# by archive state, whatever writes them: the API, `flask seed`, plain SQL, cascades.
# The migration 0003_subject_counts holds a frozen copy of the same statements.
SUBJECT_COUNT_TRIGGERS = {
    "postgresql": [
        # Statement-level, on transition tables: a bulk INSERT or a cascade of 100,000
        # rows updates each owner once. (A row trigger would update one users row
        # 100,000 times in a transaction, each update slower than the last.)
        """
        CREATE OR REPLACE FUNCTION subjects_count() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE users u SET subjects_active = u.subjects_active + d.active,
                                   subjects_archived = u.subjects_archived + d.archived
                  FROM (SELECT owner_id, count(*) FILTER (WHERE NOT is_archived) AS active,
                               count(*) FILTER (WHERE is_archived) AS archived
                          FROM new_rows GROUP BY owner_id) d
                 WHERE u.id = d.owner_id;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE users u SET subjects_active = u.subjects_active - d.active,
                                   subjects_archived = u.subjects_archived - d.archived
                  FROM (SELECT owner_id, count(*) FILTER (WHERE NOT is_archived) AS active,
                               count(*) FILTER (WHERE is_archived) AS archived
                          FROM old_rows GROUP BY owner_id) d
                 WHERE u.id = d.owner_id;
            ELSE
                UPDATE users u SET subjects_active = u.subjects_active + d.active,
                                   subjects_archived = u.subjects_archived + d.archived
                  FROM (SELECT owner_id, sum(active) AS active, sum(archived) AS archived
                          FROM (SELECT owner_id, -(NOT is_archived)::int AS active,
                                       -is_archived::int AS archived FROM old_rows
                                UNION ALL
                                SELECT owner_id, (NOT is_archived)::int, is_archived::int
                                  FROM new_rows) changes
                         GROUP BY owner_id
                        HAVING sum(active) <> 0 OR sum(archived) <> 0) d
                 WHERE u.id = d.owner_id;
            END IF;
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER subjects_count_insert AFTER INSERT ON subjects
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
        """,
        """
        CREATE TRIGGER subjects_count_delete AFTER DELETE ON subjects
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
        """,
        """
        CREATE TRIGGER subjects_count_update AFTER UPDATE ON subjects
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION subjects_count()
        """,
    ],
    "sqlite": [
        """
        CREATE TRIGGER subjects_count_insert AFTER INSERT ON subjects BEGIN
            UPDATE users SET subjects_active = subjects_active + (NOT NEW.is_archived),
                             subjects_archived = subjects_archived + NEW.is_archived
             WHERE id = NEW.owner_id;
        END
        """,
        """
        CREATE TRIGGER subjects_count_delete AFTER DELETE ON subjects BEGIN
            UPDATE users SET subjects_active = subjects_active - (NOT OLD.is_archived),
                             subjects_archived = subjects_archived - OLD.is_archived
             WHERE id = OLD.owner_id;
        END
        """,
        """
        CREATE TRIGGER subjects_count_update AFTER UPDATE OF is_archived, owner_id ON subjects
        WHEN OLD.is_archived IS NOT NEW.is_archived OR OLD.owner_id IS NOT NEW.owner_id BEGIN
            UPDATE users SET subjects_active = subjects_active - (NOT OLD.is_archived),
                             subjects_archived = subjects_archived - OLD.is_archived
             WHERE id = OLD.owner_id;
            UPDATE users SET subjects_active = subjects_active + (NOT NEW.is_archived),
                             subjects_archived = subjects_archived + NEW.is_archived
             WHERE id = NEW.owner_id;
        END
        """,
    ],
}

# The same triggers for schemas built by metadata.create_all() (the SQLite test suite).
for _dialect, _statements in SUBJECT_COUNT_TRIGGERS.items():
    for _statement in _statements:
        event.listen(
            Subject.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect)
        )


# Triggers keeping subjects.note_count equal to the subject's notes, whatever writes
# them (the API, plain SQL, cascades). The migration 0004_notes holds a frozen copy.
NOTE_COUNT_TRIGGERS = {
    "postgresql": [
        # Statement-level on transition tables, as SUBJECT_COUNT_TRIGGERS and for the
        # same reason. (PostgreSQL allows no column list with transition tables: an
        # UPDATE that moves no note changes nothing, through the HAVING.)
        """
        CREATE OR REPLACE FUNCTION notes_count() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE subjects s SET note_count = s.note_count + d.n
                  FROM (SELECT subject_id, count(*) AS n FROM new_rows GROUP BY subject_id) d
                 WHERE s.id = d.subject_id;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE subjects s SET note_count = s.note_count - d.n
                  FROM (SELECT subject_id, count(*) AS n FROM old_rows GROUP BY subject_id) d
                 WHERE s.id = d.subject_id;
            ELSE
                UPDATE subjects s SET note_count = s.note_count + d.n
                  FROM (SELECT subject_id, sum(n) AS n
                          FROM (SELECT subject_id, -1 AS n FROM old_rows
                                UNION ALL
                                SELECT subject_id, 1 FROM new_rows) changes
                         GROUP BY subject_id
                        HAVING sum(n) <> 0) d
                 WHERE s.id = d.subject_id;
            END IF;
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER notes_count_insert AFTER INSERT ON notes
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
        """,
        """
        CREATE TRIGGER notes_count_delete AFTER DELETE ON notes
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
        """,
        """
        CREATE TRIGGER notes_count_update AFTER UPDATE ON notes
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION notes_count()
        """,
    ],
    "sqlite": [
        """
        CREATE TRIGGER notes_count_insert AFTER INSERT ON notes BEGIN
            UPDATE subjects SET note_count = note_count + 1 WHERE id = NEW.subject_id;
        END
        """,
        """
        CREATE TRIGGER notes_count_delete AFTER DELETE ON notes BEGIN
            UPDATE subjects SET note_count = note_count - 1 WHERE id = OLD.subject_id;
        END
        """,
        """
        CREATE TRIGGER notes_count_update AFTER UPDATE OF subject_id ON notes
        WHEN OLD.subject_id IS NOT NEW.subject_id BEGIN
            UPDATE subjects SET note_count = note_count - 1 WHERE id = OLD.subject_id;
            UPDATE subjects SET note_count = note_count + 1 WHERE id = NEW.subject_id;
        END
        """,
    ],
}

for _dialect, _statements in NOTE_COUNT_TRIGGERS.items():
    for _statement in _statements:
        event.listen(Note.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect))
