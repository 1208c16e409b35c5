"""Search text handling that needs no database: the words of a query and of a text as the
index sees them, folding for accent- and case-insensitive matching, snippets and their
highlight offsets.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cache

MAX_WORDS = 16
SNIPPET_LENGTH = 200
ELLIPSIS = "…"
# Made spaces before the database parses a text (eleva.data.models.search_vector), so
# that PostgreSQL's default parser meets only words and blanks. It builds tags, comments,
# entities, emails, URLs, hosts, file paths and numbers out of punctuation, and after each
# failed attempt at one starts again one character further, rescanning to the end of the
# text: a long run of ``<!--``, ``a_``, ``./`` or ``a1@`` held the database's CPU. A word
# is therefore a run of letters, digits and combining marks (``words``): what the index
# holds, what a query asks for, what a snippet highlights.
SEPARATORS = string.punctuation
# A snippet's text: control characters dropped, whitespace runs one space.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@cache
def _word_re() -> re.Pattern[str]:
    # Letters and digits (``[^\W_]``) and combining marks, which PostgreSQL's parser keeps
    # inside a word (Devanagari vowel signs, a decomposed accent) and Python's \w does not.
    # Marks are in planes 0, 1 and 14 only.
    codes = [
        code
        for code in (*range(0x20000), *range(0xE0000, 0xE1000))
        if unicodedata.category(chr(code))[0] == "M"
    ]
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    marks = "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in ranges)
    return re.compile(rf"(?:[^\W_]|[{marks}])+")


def words(text: str) -> list[re.Match[str]]:
    """The words of ``text``, as the index splits it."""
    return list(_word_re().finditer(text))


def query_words(q: str) -> list[str]:
    """The words of a search, folded; at most MAX_WORDS (a search is not a document)."""
    return [fold(match.group()) for match in words(q)][:MAX_WORDS]


def tsquery(query: list[str]) -> str:
    """A PostgreSQL tsquery: every word, the last also as a prefix (search as you type).

    Words are letters, digits and marks only (``words``), so quoting them as lexemes is
    safe, and each is one word to the parser, as in the index.
    """
    terms = [f"'{word}'" for word in query]
    terms[-1] += ":*"
    return " & ".join(terms)


def fold(text: str) -> str:
    """Lower case without accents: "Élève" → "eleve" (one character per character)."""
    return "".join(_fold_char(char) for char in text)


def _fold_char(char: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    folded = base.casefold()
    # Keep offsets: a character that folds to several (ß → ss) or none stays itself.
    return folded if len(folded) == 1 else char.lower()[:1] or char


def _key(word: str) -> str:
    """A whole word as unaccent and lower case make it in the index (ß → ss, é → e)."""
    base = unicodedata.normalize("NFKD", word)
    return "".join(c for c in base if not unicodedata.combining(c)).casefold()


# Snippets are built here, from plain text, never by the database: no markup, no in-band
# marks. Offsets are in Unicode code points of the snippet, [start, end), as the contract
# says (a JavaScript client working in UTF-16 converts them).
@dataclass(frozen=True)
class Snippet:
    text: str
    highlights: list[tuple[int, int]]


def plain(text: str) -> str:
    """``text`` on one line: control characters dropped, whitespace collapsed."""
    return " ".join(_CONTROL.sub("", text).split())


def find_snippet(text: str, query: list[str], *, anywhere: bool = False) -> Snippet:
    """A snippet of plain ``text`` (see :func:`plain`) around its first match, with the
    offsets of every match in it. ``anywhere``: a query word inside a word matches too."""
    text = plain(text)
    # A match is a word of the text equal to a query word, or starting with the last one,
    # once both are folded: what PostgreSQL's index matched. With ``anywhere``, also a
    # query word inside a word, as SQLite's LIKE found it (the whole word is highlighted
    # from there).
    spans = _substrings(text, query) if anywhere else _whole_words(text, query)
    first = spans[0][0] if spans else 0
    begin = max(0, first - SNIPPET_LENGTH // 4)
    if begin:  # start at a word boundary when cutting into the text
        space = text.find(" ", begin, first)
        begin = space + 1 if space != -1 else begin
    end = begin + SNIPPET_LENGTH
    if end < len(text):
        end -= len(ELLIPSIS)
        space = text.rfind(" ", begin, end + 1)
        if space > first:  # back to a word boundary, keeping the first match
            end = space
    snippet = text[begin:end].rstrip() + (ELLIPSIS if end < len(text) else "")
    kept = len(snippet) - (end < len(text))
    return Snippet(
        snippet, [(s - begin, e - begin) for s, e in spans if begin <= s and e - begin <= kept]
    )


def _whole_words(text: str, query: list[str]) -> list[tuple[int, int]]:
    if not query:
        return []
    *exact, prefix = (_key(word) for word in query)
    wanted = set(exact)
    spans = []
    for match in words(text):
        key = _key(match.group())
        if key in wanted or key.startswith(prefix):
            spans.append(match.span())
    return spans


def _substrings(text: str, query: list[str]) -> list[tuple[int, int]]:
    folded = fold(text)
    spans: list[tuple[int, int]] = []
    for word in query:
        start = folded.find(word)
        while start != -1:
            # To the end of the word, as PostgreSQL highlights a prefix match.
            found = _word_re().match(folded, start)
            end = max(start + len(word), found.end() if found else 0)
            spans.append((start, end))
            start = folded.find(word, end)
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
