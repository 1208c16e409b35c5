"""Search text handling that needs no database: words of a query, folding for accent- and
case-insensitive matching, snippets and their highlight offsets.

Offsets are in Unicode code points of the snippet, ``[start, end)``, as the contract says
(a JavaScript client working in UTF-16 converts them).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_WORDS = 16
SNIPPET_LENGTH = 200
# ts_headline marks matches with these; neither can occur in stored text (the API's text
# fields refuse control characters other than whitespace).
START_MARK = "\x02"
STOP_MARK = "\x03"

_WORD_RE = re.compile(r"\w+")


def query_words(q: str) -> list[str]:
    """The words of a search, folded; at most MAX_WORDS (a search is not a document)."""
    return [fold(word) for word in _WORD_RE.findall(q)][:MAX_WORDS]


def tsquery(words: list[str]) -> str:
    """A PostgreSQL tsquery: every word, the last also as a prefix (search as you type).

    Words are ``\\w+`` only, so quoting them as lexemes is safe.
    """
    terms = [f"'{word}'" for word in words]
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


@dataclass(frozen=True)
class Snippet:
    text: str
    highlights: list[tuple[int, int]]


def from_marked(marked: str) -> Snippet:
    """A snippet from ts_headline's output: the marks removed, their offsets kept."""
    text: list[str] = []
    highlights: list[tuple[int, int]] = []
    start = None
    for char in marked:
        if char == START_MARK:
            start = len(text)
        elif char == STOP_MARK:
            if start is not None and start < len(text):
                highlights.append((start, len(text)))
            start = None
        else:
            text.append(char)
    snippet = "".join(text)
    return _clipped(snippet, highlights)


def find_snippet(text: str, words: list[str]) -> Snippet:
    """A snippet around the first match of any word, and every word's matches in it
    (prefix matches for the last word, whole-word otherwise being too strict for a
    fallback: any substring counts)."""
    folded = fold(text)
    first = min((i for i in (folded.find(w) for w in words) if i >= 0), default=0)
    begin = max(0, first - SNIPPET_LENGTH // 4)
    # Start at a word boundary when cutting into the text.
    if begin:
        space = text.find(" ", begin, first)
        begin = space + 1 if space != -1 else begin
    snippet = " ".join(text[begin : begin + SNIPPET_LENGTH].split())
    return Snippet(snippet, _matches(snippet, words))


def _matches(snippet: str, words: list[str]) -> list[tuple[int, int]]:
    folded = fold(snippet)
    spans: list[tuple[int, int]] = []
    for word in words:
        start = folded.find(word)
        while start != -1:
            end = start + len(word)
            while end < len(folded) and (folded[end].isalnum() or folded[end] == "_"):
                end += 1  # the whole word, as PostgreSQL highlights a prefix match
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


def _clipped(text: str, highlights: list[tuple[int, int]]) -> Snippet:
    if len(text) <= SNIPPET_LENGTH:
        return Snippet(text, highlights)
    cut = text[: SNIPPET_LENGTH - 1] + "…"
    return Snippet(
        cut, [(s, min(e, SNIPPET_LENGTH - 1)) for s, e in highlights if s < SNIPPET_LENGTH - 1]
    )
