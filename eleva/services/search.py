"""Search across the caller's subjects, notes and documents.

PostgreSQL: full-text search through GIN indexes that start with the owner (``owner_id``,
then the row's weighted ``search_vector``: btree_gin), so a search reads only the
caller's index entries; ``eleva_search`` is a language-neutral configuration that drops
accents (``unaccent``), built by the migrations. The vector is a generated column, so
every write is searchable as soon as it commits. Ranked with ``ts_rank``; only the page's
rows are read again, for their snippets.

SQLite (development): every word must appear (accents and case folded), ranked by
matches in the title.

Snippets are plain text cut around the first match of the row's first HEADLINE_CHARS
(a note's Markdown made plain), with the matched words' offsets: built in Python
(eleva.core.search), the same way on both databases.
"""

# SQL below is assembled from the SOURCES constants (table and column SQL written here);
# everything a client sends is a bind parameter.
# ruff: noqa: S608
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from eleva.core import search as text_search
from eleva.core.markdown import plain_text
from eleva.data.db import db, dialect_name
from eleva.data.models import (
    DOCUMENT_SEARCH,
    NOTE_SEARCH,
    RANKED_CHARS,
    SEARCH_CONFIG,
    SUBJECT_SEARCH,
    owner_lexeme,
)
from eleva.services.subjects import like_escaped

CONFIG = SEARCH_CONFIG
KINDS = ("subject", "note", "document")
# A snippet comes from the start of a long text (what documents are ranked by too).
HEADLINE_CHARS = RANKED_CHARS


@dataclass(frozen=True)
class Source:
    """A searchable table: SQL of its columns (trusted constants, never input)."""

    kind: str
    table: str
    subject_id: str  # the subject the row belongs to
    title: str
    body: str  # text searched besides the title, '' when there is none
    visible: str = "TRUE"  # which rows the owner may find
    rank: str = "search_vector"  # the vector ranked
    markdown: bool = False  # the body is Markdown (its snippet is made plain)


SOURCES: dict[str, Source] = {
    "subject": Source("subject", "subjects", "id", *SUBJECT_SEARCH),
    "note": Source("note", "notes", "subject_id", *NOTE_SEARCH, markdown=True),
    # A direct upload is found once completed; its text once extracted (it is '' before).
    "document": Source(
        "document", "documents", "subject_id", *DOCUMENT_SEARCH, "t.status = 'ready'", "rank_vector"
    ),
}


@dataclass(frozen=True)
class Hit:
    type: str
    id: int
    subject_id: int
    title: str
    snippet: str
    highlights: list[tuple[int, int]]


@dataclass(frozen=True)
class Results:
    items: list[Hit]
    total: int


def search(
    owner_id: int,
    q: str,
    *,
    types: list[str] | None = None,
    subject_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Results:
    """One page of the owner's matches, most relevant first, and how many there are."""
    words = text_search.query_words(q)
    sources = [SOURCES[kind] for kind in (types or KINDS) if kind in SOURCES]
    if not words or not sources:
        return Results([], 0)
    offset = (page - 1) * page_size
    if dialect_name() == "postgresql":
        return _postgres(owner_id, words, sources, subject_id, offset, page_size)
    return _fallback(owner_id, words, sources, subject_id, offset, page_size)


def _postgres(
    owner_id: int,
    words: list[str],
    sources: list[Source],
    subject_id: int | None,
    offset: int,
    limit: int,
) -> Results:
    query = f"to_tsquery('{CONFIG}'::regconfig, :tsq)"
    # Ranked on the stored vectors (normalised by length: a long document does not win
    # by size alone); only the page's rows are read again for their snippets.
    branches = [
        f"SELECT '{s.kind}' AS kind, t.id, t.{s.subject_id} AS subject_id, "  # nosec B608
        f"t.{s.title} AS title, ts_rank(t.{s.rank}, {query}, 1) AS rank "
        f"FROM {s.table} t WHERE t.owner_id = :owner_id "
        f"AND t.search_vector @@ ({query} && CAST(:owner_lexeme AS tsquery)) "
        f"AND {s.visible}"
        + (f" AND t.{s.subject_id} = :subject_id" if subject_id is not None else "")
        for s in sources
    ]
    bodies = " ".join(
        f"WHEN '{s.kind}' THEN (SELECT left({s.body}, {HEADLINE_CHARS}) "  # nosec B608
        f"FROM {s.table} t WHERE t.id = p.id)"
        for s in sources
    )
    sql = (
        f"SELECT p.kind, p.id, p.subject_id, p.title, p.total, "  # nosec B608
        f"CASE p.kind {bodies} END AS body "
        f"FROM (SELECT m.kind, m.id, m.subject_id, m.title, m.rank, count(*) OVER () AS total "
        f"FROM ({' UNION ALL '.join(branches)}) m "
        f"ORDER BY m.rank DESC, m.kind, m.id LIMIT :limit OFFSET :offset) p "
        f"ORDER BY p.rank DESC, p.kind, p.id"
    )
    params: dict[str, Any] = {
        "tsq": text_search.tsquery(words),
        "owner_id": owner_id,
        "owner_lexeme": owner_lexeme(owner_id),
        "subject_id": subject_id,
        "limit": limit,
        "offset": offset,
    }
    # The planner costs testing a row's vector as one cheap comparison; a document's
    # vector is read back from TOAST first. On a small table it would then scan the
    # table rather than the owner's GIN index: here, in this transaction, it may not.
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    rows = db.session.execute(text(sql), params).all()
    items = [
        _hit(kind, id_, sid, title, body, words) for kind, id_, sid, title, _total, body in rows
    ]
    total = rows[0].total if rows else _postgres_count(branches, params) if offset else 0
    return Results(items, total)


def _postgres_count(branches: list[str], params: dict[str, Any]) -> int:
    # Past the last page there is no row to carry the total.
    sql = f"SELECT count(*) FROM ({' UNION ALL '.join(branches)}) m"  # nosec B608
    return int(db.session.scalar(text(sql), params) or 0)


def _hit(
    kind: str,
    id_: int,
    subject_id: int,
    title: str,
    body: str | None,
    words: list[str],
    *,
    anywhere: bool = False,
) -> Hit:
    """A result, with its snippet: the title and the start of the body, as plain text."""
    body = (body or "")[:HEADLINE_CHARS]
    if SOURCES[kind].markdown:
        body = plain_text(body)
    snippet = text_search.find_snippet(f"{title}\n{body}", words, anywhere=anywhere)
    return Hit(kind, id_, subject_id, title, snippet.text, snippet.highlights)


def _fallback(
    owner_id: int,
    words: list[str],
    sources: list[Source],
    subject_id: int | None,
    offset: int,
    limit: int,
) -> Results:
    params: dict[str, Any] = {"owner_id": owner_id, "subject_id": subject_id}
    params.update({f"w{i}": f"%{like_escaped(word)}%" for i, word in enumerate(words)})
    branches = []
    for s in sources:
        matches = " AND ".join(
            f"(fold(t.{s.title}) LIKE :w{i} ESCAPE '/' OR fold({s.body}) LIKE :w{i} ESCAPE '/')"
            for i in range(len(words))
        )
        rank = " + ".join(f"(fold(t.{s.title}) LIKE :w{i} ESCAPE '/')" for i in range(len(words)))
        branches.append(
            f"SELECT '{s.kind}' AS kind, t.id, t.{s.subject_id} AS subject_id, "  # nosec B608
            f"t.{s.title} AS title, {s.body} AS body, ({rank}) AS rank FROM {s.table} t "
            f"WHERE t.owner_id = :owner_id AND {matches} AND {s.visible}"
            + (f" AND t.{s.subject_id} = :subject_id" if subject_id is not None else "")
        )
    union = " UNION ALL ".join(branches)
    count = f"SELECT count(*) FROM ({union}) m"  # nosec B608
    page = f"SELECT * FROM ({union}) m ORDER BY rank DESC, kind, id LIMIT :limit OFFSET :offset"  # nosec B608
    total = int(db.session.scalar(text(count), params) or 0)
    rows = db.session.execute(text(page), {**params, "limit": limit, "offset": offset}).all()
    items = [
        _hit(row.kind, row.id, row.subject_id, row.title, row.body, words, anywhere=True)
        for row in rows
    ]
    return Results(items, total)
