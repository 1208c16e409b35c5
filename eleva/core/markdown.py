"""Markdown to a plain-text excerpt, for note lists.

Not a Markdown parser: a handful of line and inline rules that remove the markup a
student is likely to write, so that a list shows words, not syntax. Every pattern is
linear (no nested quantifiers), so a 100,000-character body of any content is cheap to strip.
"""

from __future__ import annotations

import html
import re

EXCERPT_LENGTH = 200
ELLIPSIS = "…"

# Whole lines that carry no words: code fences, horizontal rules, setext underlines,
# table separator rows, link reference definitions.
_MARKUP_LINE = re.compile(
    r"^ {0,3}(?:`{3,}.*|~{3,}.*|(?:[-*_] *){3,}|=+ *|\|?(?: *:?-+:? *\|)+ *:?-*:? *"
    r"|\[[^\]\n]+\]: *\S.*)$",
    re.MULTILINE,
)
# Line prefixes: blockquote markers, then headings, list bullets and numbers, task boxes.
_QUOTE = re.compile(r"^ *(?:> ?)+", re.MULTILINE)
_LINE_PREFIX = re.compile(
    r"^ *(?:#{1,6}(?= |$)|[-*+](?= )|\d{1,9}[.)](?= ))(?: +\[[ xX]\](?= ))?", re.MULTILINE
)
_CLOSING_HASHES = re.compile(r"(?<! ) +#+ *$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>")
# Brackets and parentheses are excluded inside them, so that a failed match stops at
# the next one instead of scanning to the end of the body (quadratic on "[[[[…").
_IMAGE = re.compile(r"!\[[^\[\]\n]*\](?:\([^()\n]*\)|\[[^\[\]\n]*\])?")
_LINK = re.compile(r"\[([^\[\]\n]*)\](?:\([^()\n]*\)|\[[^\[\]\n]*\])")
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^<>\s]+)>")
# Emphasis and strikethrough markers: runs of * and ~ anywhere, runs of _ only at the
# edge of a word (snake_case keeps its underscores).
_EMPHASIS = re.compile(r"\*+|~~+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
_BACKTICKS = re.compile(r"`+")
_TABLE_PIPE = re.compile(r"\|")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_ESCAPED = "\x00"  # stands for an escaped character while the markup is removed
_SPACE = re.compile(r"\s+")


def plain_text(markdown: str) -> str:
    """The words of ``markdown`` on one line: markup removed, whitespace collapsed."""
    # Escaped characters are text, not markup: set them aside, put them back last.
    escaped: list[str] = []

    def keep(match: re.Match[str]) -> str:
        escaped.append(match.group(1))
        return _ESCAPED

    text = _ESCAPE.sub(keep, markdown.replace(_ESCAPED, ""))
    text = _HTML_COMMENT.sub(" ", text)
    text = _MARKUP_LINE.sub(" ", text)
    text = _QUOTE.sub("", text)
    text = _LINE_PREFIX.sub("", text)
    text = _CLOSING_HASHES.sub("", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    text = _BACKTICKS.sub("", text)
    text = _TABLE_PIPE.sub(" ", text)
    # HTML escapes (&lt;, &amp;) become the characters they stand for.
    text = html.unescape(text)
    if escaped:
        pieces = iter(escaped)
        text = re.sub(_ESCAPED, lambda _m: next(pieces), text)
    # Plain text, by contract: what reads as a tag or a comment once unescaped (&lt;img
    # …&gt;, \<script>) goes too. Each becomes a space, so no new tag can form.
    text = _HTML_COMMENT.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def excerpt(markdown: str, length: int = EXCERPT_LENGTH) -> str:
    """At most ``length`` characters of ``markdown``'s plain text; when cut, the cut is
    at a word boundary if one is near, and ends with an ellipsis (counted in ``length``)."""
    text = plain_text(markdown)
    if len(text) <= length:
        return text
    cut = text[: length - len(ELLIPSIS)]
    # Back to the last space, unless that loses more than a short word's worth (text
    # without spaces, such as Chinese or Japanese, is cut where it stands).
    space = cut.rfind(" ")
    if text[len(cut)] != " " and space >= len(cut) - 20:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS
