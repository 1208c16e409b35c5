"""A user's flashcards, each in one of their subjects. Every function is confined to one
owner: another user's card, subject or note does not exist as far as the caller can tell.
Reviews, the queue and statistics: eleva.services.study."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import insert, select

from eleva.core.errors import ValidationFailed
from eleva.data.db import commit, db
from eleva.data.models import Card, Note, utcnow
from eleva.data.pages import Page, ordered, paginate, sort_keys
from eleva.services import owned

# Sort keys the API accepts; id breaks ties so that pages never overlap or skip rows.
SORT_COLUMNS: dict[str, Callable[[], Any]] = {
    "due": lambda: Card.due,
    "created_at": lambda: Card.created_at,
}
SORT_KEYS = sort_keys(SORT_COLUMNS)

NO_SUCH_CARD = "No such card."
NOT_A_NOTE_HERE = "No such note in this subject."
MAX_BULK = 1000


def list_cards(
    owner_id: int,
    subject_id: int,
    *,
    state: list[str] | None = None,
    suspended: bool | None = None,
    sort: str = "due",
    page: int = 1,
    page_size: int = 20,
) -> Page[Card]:
    """One page of the cards of the owner's subject, filtered, and their total (NotFound
    when the subject is not the owner's)."""
    owned.require_subject(owner_id, subject_id, lock=False)
    query = select(Card).where(Card.owner_id == owner_id, Card.subject_id == subject_id)
    if state:
        query = query.where(Card.state.in_(sorted(set(state))))
    if suspended is not None:
        query = query.where(Card.suspended.is_(suspended))
    by = ordered(query, sort, SORT_COLUMNS, Card.__table__.c.id)
    return paginate(by, page=page, page_size=page_size)


def _new_card(owner_id: int, subject_id: int, data: dict[str, Any], now: Any) -> dict[str, Any]:
    # A new card is due at once: its creation time (the queue's creation order).
    return {
        "owner_id": owner_id,
        "subject_id": subject_id,
        "note_id": data.get("note_id"),
        "front": data["front"],
        "back": data.get("back", ""),
        "state": "new",
        "due": now,
        "created_at": now,
        "updated_at": now,
    }


def create_card(owner_id: int, subject_id: int, data: dict[str, Any]) -> Card:
    """A new card in the owner's subject (NotFound when it is not theirs); ``note_id``
    must name a note of that subject (a field error otherwise)."""
    owned.require_subject(owner_id, subject_id)
    if data.get("note_id") is not None:
        _require_note(owner_id, subject_id, data["note_id"])
    card = Card(**_new_card(owner_id, subject_id, data, utcnow()))
    db.session.add(card)
    commit()
    return card


def create_cards(owner_id: int, subject_id: int, cards: list[dict[str, Any]]) -> list[int]:
    """Many new cards in the owner's subject, all or none; their ids in order. A
    ``note_id`` that is not a note of the subject is an error keyed by the card's index."""
    owned.require_subject(owner_id, subject_id)
    notes = {i: c["note_id"] for i, c in enumerate(cards) if c.get("note_id") is not None}
    if notes:
        wanted = set(notes.values())
        found = _notes_of(owner_id, subject_id, wanted)
        errors = {
            str(i): {"note_id": [NOT_A_NOTE_HERE]} for i, n in notes.items() if n not in found
        }
        if errors:
            raise ValidationFailed(NOT_A_NOTE_HERE, errors={"json": {"cards": errors}})
    now = utcnow()
    rows = [_new_card(owner_id, subject_id, c, now) for c in cards]
    ids = db.session.scalars(
        insert(Card).returning(Card.id, sort_by_parameter_order=True), rows
    ).all()
    commit()
    return list(ids)


def get_card(owner_id: int, card_id: int, *, for_update: bool = False) -> Card:
    """The owner's card, or NotFound. ``for_update`` locks the row (PostgreSQL): an
    If-Match check and the write after it, or a review, are one atomic step."""
    return owned.owned_row(Card, owner_id, card_id, missing=NO_SUCH_CARD, for_update=for_update)


def update_card(owner_id: int, card: Card, changes: dict[str, Any]) -> Card:
    """Change the text, the note, the suspension, or move the card to another of the
    owner's subjects (field errors on ``subject_id`` and ``note_id``). A move keeps the
    card's note only when it is in the new subject too. Never touches the schedule."""
    subject_id = changes.get("subject_id", card.subject_id)
    if subject_id != card.subject_id:
        owned.require_target_subject(owner_id, subject_id)
        note_id = card.note_id
        if "note_id" not in changes and note_id is not None:
            # Its note stays linked only if it is in the new subject too.
            card.note_id = note_id if _notes_of(owner_id, subject_id, {note_id}) else None
        card.subject_id = subject_id
    if "note_id" in changes:
        if changes["note_id"] is not None:
            _require_note(owner_id, subject_id, changes["note_id"])
        card.note_id = changes["note_id"]
    for field in ("front", "back", "suspended"):
        if field in changes:
            setattr(card, field, changes[field])
    # Every accepted write is a new version, even one that changes no value.
    card.updated_at = utcnow()
    commit()
    return card


def delete_card(card: Card) -> None:
    """Delete the card; its reviews go with it (the database's cascade)."""
    db.session.delete(card)
    db.session.commit()


def _notes_of(owner_id: int, subject_id: int, note_ids: Iterable[int]) -> set[int]:
    """Which of these are notes of the owner's subject; locked FOR KEY SHARE (PostgreSQL)
    so that none is deleted before the card that names it is written."""
    query = select(Note.id).where(
        Note.owner_id == owner_id, Note.subject_id == subject_id, Note.id.in_(note_ids)
    )
    return set(db.session.scalars(query.with_for_update(read=True, key_share=True)))


def _require_note(owner_id: int, subject_id: int, note_id: int) -> None:
    if not _notes_of(owner_id, subject_id, {note_id}):
        raise ValidationFailed.field("note_id", NOT_A_NOTE_HERE)
