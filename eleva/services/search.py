"""Search across the caller's subjects, notes, documents and cards.

PostgreSQL: full-text search, ranked with ``ts_rank``. SQLite (development): every word
must appear (accents and case folded), ranked by matches in the title. Snippets are
built in Python, the same way on both databases.
"""

# SQL below is assembled from the SOURCES constants (table and column SQL written here);
# everything a client sends is a bind parameter.
# ruff: noqa: S608
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, String, column, select, text

from eleva.core import search as text_search
from eleva.core.markdown import plain_text
from eleva.data.db import db, dialect_name
from eleva.data.models import (
    CARD_SEARCH,
    DOCUMENT_SEARCH,
    NOTE_SEARCH,
    RANKED_CHARS,
    SEARCH_CONFIG,
    SUBJECT_SEARCH,
    owner_lexeme,
)
from eleva.data.pages import Page, paginate
from eleva.services.subjects import like_escaped

CONFIG = SEARCH_CONFIG
KINDS = ("subject", "note", "document", "card")
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
    title_chars: int | None = None  # a hit's title is cut to this many characters
    markdown: bool = False  # the body is Markdown (its snippet is made plain)


SOURCES: dict[str, Source] = {
    "subject": Source("subject", "subjects", "id", *SUBJECT_SEARCH),
    "note": Source("note", "notes", "subject_id", *NOTE_SEARCH, markdown=True),
    # A direct upload is found once completed; its text once extracted (it is '' before).
    "document": Source(
        "document", "documents", "subject_id", *DOCUMENT_SEARCH, "t.status = 'ready'", "rank_vector"
    ),
    # A card's title is its front, of up to 10,000 characters: cut.
    "card": Source("card", "cards", "subject_id", *CARD_SEARCH, title_chars=120, markdown=True),
}


@dataclass(frozen=True)
class Hit:
    type: str
    id: int
    subject_id: int
    title: str
    snippet: str
    highlights: list[tuple[int, int]]


def search(
    owner_id: int,
    q: str,
    *,
    types: list[str] | None = None,
    subject_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[Hit]:
    """One page of the owner's matches, most relevant first, and how many there are:
    the matches page through the list helper, then the page's rows get their snippets."""
    words = text_search.query_words(q)
    sources = [SOURCES[kind] for kind in (types or KINDS) if kind in SOURCES]
    if not words or not sources:
        return Page([], 0)
    postgres = dialect_name() == "postgresql"
    params: dict[str, Any] = {"owner_id": owner_id}
    if subject_id is not None:
        params["subject_id"] = subject_id
    if postgres:
        union = _postgres_matches(sources, subject_id is not None)
        params |= {"tsq": text_search.tsquery(words), "owner_lexeme": owner_lexeme(owner_id)}
        # The planner costs testing a row's vector as one cheap comparison; a document's
        # vector is read back from TOAST first. On a small table it would then scan the
        # table rather than the owner's GIN index: here, in this transaction, it may not.
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
    else:
        union = _fallback_matches(sources, len(words), subject_id is not None)
        params |= {f"w{i}": f"%{like_escaped(word)}%" for i, word in enumerate(words)}
    m = text(union).bindparams(**params).columns(*MATCH_COLUMNS).subquery("m")
    query = select(m).order_by(m.c.rank.desc(), m.c.kind, m.c.id)
    found = paginate(query, page=page, page_size=page_size)
    # SQLite matches a word anywhere in another; PostgreSQL at a word's start.
    snippets = _snippets(found.items, words, anywhere=not postgres)
    hits = [
        Hit(
            row.kind,
            row.id,
            row.subject_id,
            row.title[: SOURCES[row.kind].title_chars],
            snippet.text,
            snippet.highlights,
        )
        for row, snippet in zip(found.items, snippets, strict=True)
    ]
    return Page(hits, found.total)


MATCH_COLUMNS = (
    column("kind", String),
    column("id", Integer),
    column("subject_id", Integer),
    column("title", String),
    column("rank", Float),
)
QUERY = f"to_tsquery('{CONFIG}'::regconfig, :tsq)"


def _postgres_matches(sources: list[Source], in_subject: bool) -> str:
    # Through GIN indexes that start with the owner (owner_id, then the row's weighted
    # search_vector: btree_gin), so a search reads only the caller's index entries;
    # eleva_search is a language-neutral configuration that drops accents (unaccent),
    # built by the migrations. The vector is a generated column, so every write is
    # searchable as soon as it commits.
    # Ranked on the stored vectors (normalised by length: a long document does not win
    # by size alone).
    return " UNION ALL ".join(
        f"SELECT '{s.kind}' AS kind, t.id, t.{s.subject_id} AS subject_id, "  # nosec B608
        f"t.{s.title} AS title, ts_rank(t.{s.rank}, {QUERY}, 1) AS rank "
        f"FROM {s.table} t WHERE t.owner_id = :owner_id "
        f"AND t.search_vector @@ ({QUERY} && CAST(:owner_lexeme AS tsquery)) "
        f"AND {s.visible}" + (f" AND t.{s.subject_id} = :subject_id" if in_subject else "")
        for s in sources
    )


def _snippets(
    rows: Sequence[Any], words: list[str], *, anywhere: bool
) -> list[text_search.Snippet]:
    """Each row's snippet: its title and the start of its text, as plain text."""
    # The page's rows are read again: plain text cut around the first match of the row's
    # first HEADLINE_CHARS (a Markdown text made plain).
    bodies = _per_row(rows, f"substr({{body}}, 1, {HEADLINE_CHARS})")
    snippets = []
    for i, row in enumerate(rows):
        body = bodies.get(i) or ""  # a row deleted since the page was read: its title
        if SOURCES[row.kind].markdown:
            body = plain_text(body)
        snippets.append(text_search.find_snippet(f"{row.title}\n{body}", words, anywhere=anywhere))
    return snippets


def _per_row(rows: Sequence[Any], expression: str) -> dict[int, str]:
    """``expression`` (SQL over a source's ``{title}`` and ``{body}``) for each row of the
    page, in one statement, by position; a row deleted since the page was read has none."""
    if not rows:
        return {}
    params: dict[str, Any] = {}
    selects = []
    for i, row in enumerate(rows):
        s = SOURCES[row.kind]
        params[f"id{i}"] = row.id
        sql = expression.format(title=s.title, body=s.body)
        selects.append(f"SELECT {i} AS n, {sql} FROM {s.table} t WHERE t.id = :id{i}")  # nosec B608
    return {n: value for n, value in db.session.execute(text(" UNION ALL ".join(selects)), params)}


def _fallback_matches(sources: list[Source], n_words: int, in_subject: bool) -> str:
    branches = []
    for s in sources:
        matches = " AND ".join(
            f"(fold(t.{s.title}) LIKE :w{i} ESCAPE '/' OR fold({s.body}) LIKE :w{i} ESCAPE '/')"
            for i in range(n_words)
        )
        rank = " + ".join(f"(fold(t.{s.title}) LIKE :w{i} ESCAPE '/')" for i in range(n_words))
        branches.append(
            f"SELECT '{s.kind}' AS kind, t.id, t.{s.subject_id} AS subject_id, "  # nosec B608
            f"t.{s.title} AS title, ({rank}) AS rank FROM {s.table} t "
            f"WHERE t.owner_id = :owner_id AND {matches} AND {s.visible}"
            + (f" AND t.{s.subject_id} = :subject_id" if in_subject else "")
        )
    return " UNION ALL ".join(branches)
