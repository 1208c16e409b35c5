"""Search across the caller's subjects, notes and documents.

PostgreSQL: full-text search through GIN indexes that start with the owner (``owner_id``,
then the row's weighted ``search_vector``: btree_gin), so a search reads only the
caller's index entries; ``eleva_search`` is a language-neutral configuration that drops
accents (``unaccent``), built by the migrations. The vector is a generated column, so
every write is searchable as soon as it commits. Ranked with ``ts_rank``; the snippet is
``ts_headline`` of the same query over the same text (its first HEADLINE_CHARS).

SQLite (development): every word must appear (accents and case folded), ranked by
matches in the title; the snippet is cut around the first match in Python.
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
from eleva.data.db import db, dialect_name
from eleva.data.models import (
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
KINDS = ("subject", "note", "document")
# ts_headline parses all it is given: a snippet comes from the start of a long text
# (what documents are ranked by too).
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


SOURCES: dict[str, Source] = {
    "subject": Source("subject", "subjects", "id", *SUBJECT_SEARCH),
    "note": Source("note", "notes", "subject_id", *NOTE_SEARCH),
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
    snippets = (
        _postgres_snippets(found.items, words)
        if postgres
        else _fallback_snippets(found.items, words)
    )
    hits = [
        Hit(row.kind, row.id, row.subject_id, row.title, snippet.text, snippet.highlights)
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


def _postgres_snippets(rows: Sequence[Any], words: list[str]) -> list[text_search.Snippet]:
    """``ts_headline`` of the query over each row's title and the start of its text."""
    headline = (
        f"ts_headline('{CONFIG}'::regconfig, t.{{title}} || E'\\n' || "
        f"left({{body}}, {HEADLINE_CHARS}), {QUERY}, "
        f"'StartSel={text_search.START_MARK}, StopSel={text_search.STOP_MARK}, "
        "MaxWords=30, MinWords=12')"
    )
    marked = _per_row(rows, headline, {"tsq": text_search.tsquery(words)})
    return [text_search.from_marked(marked.get(i, row.title)) for i, row in enumerate(rows)]


def _per_row(rows: Sequence[Any], expression: str, params: dict[str, Any]) -> dict[int, str]:
    """``expression`` (SQL over a source's ``{title}`` and ``{body}``) for each row of the
    page, in one statement, by position; a row deleted since the page was read has none."""
    if not rows:
        return {}
    params = dict(params)
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


def _fallback_snippets(rows: Sequence[Any], words: list[str]) -> list[text_search.Snippet]:
    texts = _per_row(rows, "t.{title} || char(10) || {body}", {})
    return [text_search.find_snippet(texts.get(i, row.title), words) for i, row in enumerate(rows)]
