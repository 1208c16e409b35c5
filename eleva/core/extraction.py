"""Text of a stored document, for search: PDF (pypdf), UTF-8 text and Markdown, DOCX.

Documents are hostile input. Every extraction is bounded, and says so in its result:

- at most ``MAX_CHARS`` characters are kept (search reads the start of a long book);
- a PDF: at most ``MAX_PDF_PAGES`` pages, read one at a time;
- a DOCX: ``word/document.xml`` is read through a cap of ``MAX_XML_BYTES`` decompressed
  bytes (a ZIP bomb stops there) and parsed by defusedxml (no DTDs, no entities);
- a deadline, checked between pages and chunks. A single call that never returns is the
  job runner's to stop (RQ's job timeout kills the work horse, not the worker).

Anything the parsers raise becomes :class:`ExtractionFailed`: the document's text is
then ``failed`` and the worker goes on with the next job.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterator
from typing import IO, BinaryIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from eleva.core.markdown import plain_text

MAX_CHARS = 100_000
MAX_PDF_PAGES = 100
MAX_XML_BYTES = 20 * 1024 * 1024
DEFAULT_SECONDS = 30.0

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
TYPES = (PDF, DOCX, TEXT, MARKDOWN)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# C0 controls but tab and newline, DEL, and the noncharacters PostgreSQL's text refuses
# (NUL) or the search's highlight marks use (\x02, \x03).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class ExtractionFailed(Exception):
    """The file could not be read as its type says (malformed, encrypted, too slow)."""


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.parts: list[str] = []
        self.chars = 0

    def add(self, text: str) -> bool:
        """Keep ``text``; False once the character budget is spent (stop reading)."""
        if time.monotonic() > self.deadline:
            raise ExtractionFailed("time limit reached")
        room = MAX_CHARS - self.chars
        self.parts.append(text[:room])
        self.chars += min(len(text), room)
        return self.chars < MAX_CHARS

    def text(self) -> str:
        return clean("\n".join(self.parts))[:MAX_CHARS]


def extract(fileobj: BinaryIO, content_type: str, *, seconds: float = DEFAULT_SECONDS) -> str:
    """The searchable text of a file of a detected ``content_type`` (one of TYPES)."""
    budget = _Budget(seconds)
    try:
        if content_type == PDF:
            _pdf(fileobj, budget)
        elif content_type == DOCX:
            _docx(fileobj, budget)
        elif content_type in (TEXT, MARKDOWN):
            _plain(fileobj, budget, markdown=content_type == MARKDOWN)
        else:
            raise ExtractionFailed(f"no text in {content_type}")
    except ExtractionFailed:
        raise
    except Exception as exc:  # whatever a parser raises, MemoryError and RecursionError too
        raise ExtractionFailed(type(exc).__name__) from exc
    return budget.text()


def clean(text: str) -> str:
    """Text safe to store and index: no control characters, no lone surrogates,
    whitespace runs collapsed (paragraph breaks kept)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n"))
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _plain(fileobj: BinaryIO, budget: _Budget, *, markdown: bool) -> None:
    # Four bytes per character at most: what is read is never less than what is kept.
    raw = fileobj.read(MAX_CHARS * 4)
    text = raw.decode("utf-8", "ignore")  # judged UTF-8 at upload; the cut may split one
    budget.add(plain_text(text) if markdown else text)


def _pdf(fileobj: BinaryIO, budget: _Budget) -> None:
    from pypdf import PdfReader  # imported by the worker only: the web process never parses

    reader = PdfReader(fileobj, strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise ExtractionFailed("encrypted")
    for number, page in enumerate(reader.pages):
        if number >= MAX_PDF_PAGES or not budget.add(page.extract_text() or ""):
            return


def _docx(fileobj: BinaryIO, budget: _Budget) -> None:
    with zipfile.ZipFile(fileobj) as archive:
        try:
            member = archive.open("word/document.xml")
        except KeyError:
            raise ExtractionFailed("no word/document.xml") from None
        with member:
            for paragraph in _paragraphs(_Capped(member, MAX_XML_BYTES)):
                if not budget.add(paragraph):
                    return


def _paragraphs(source: _Capped) -> Iterator[str]:
    """The text of each ``w:p`` in document order (runs joined, tabs and breaks kept)."""
    words: list[str] = []
    try:
        for _event, element in iterparse(source, events=("end",), forbid_dtd=True):
            if element.tag == f"{_W}t" and element.text:
                words.append(element.text)
            elif element.tag in (f"{_W}tab", f"{_W}br"):
                words.append(" ")
            elif element.tag == f"{_W}p":
                yield "".join(words)
                words.clear()
                element.clear()  # a long document is not kept whole in memory
    except DefusedXmlException as exc:
        raise ExtractionFailed(type(exc).__name__) from None
    except SyntaxError:  # ParseError: the cap cut the XML short, or it was malformed
        if not source.exhausted:
            raise ExtractionFailed("malformed XML") from None
    if words:
        yield "".join(words)


class _Capped:
    """A file-like reader that ends after ``limit`` bytes (then ``exhausted``)."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw = raw
        self.left = limit
        self.exhausted = False

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            self.exhausted = True
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        chunk = self.raw.read(want)
        self.left -= len(chunk)
        return chunk
