"""SQLAlchemy 2.0 models: users, their login sessions, their subjects.

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
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    TypeDecorator,
    Uuid,
    event,
    false,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from eleva.data.db import Base, unique_index


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
    )

    def __repr__(self) -> str:
        return f"<Subject {self.id} {self.name!r}>"


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
