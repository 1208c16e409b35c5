"""Text of a stored document, for search: PDF (pypdf), UTF-8 text and Markdown, DOCX.

Documents are hostile input: every extraction is bounded in characters, time and memory,
inside a page and inside a paragraph too. Anything the parsers raise becomes
:class:`ExtractionFailed`: the document's text is then ``failed`` and the worker goes on.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import zipfile
from collections.abc import Iterator
from typing import IO, Any, BinaryIO
from xml.sax import SAXException
from xml.sax.handler import ContentHandler, feature_namespaces

from defusedxml import DefusedXmlException
from defusedxml.expatreader import create_parser

from eleva.core.markdown import plain_text

MAX_CHARS = 100_000  # characters kept (of a paragraph too): search reads the start of a book
MAX_PDF_PAGES = 100  # read one at a time
MAX_PDF_STREAM_BYTES = 8 * 1024 * 1024  # what one PDF stream may decode to (PDF_LIMITS)
MAX_XML_BYTES = 20 * 1024 * 1024  # of word/document.xml, decompressed: a ZIP bomb stops there
MAX_XML_DEPTH = 256  # a real document nests a few dozen levels
# The deadline is checked between pages and chunks, and every CHECK_EVERY parser events
# (a PDF's content-stream operations, a DOCX's elements) inside them. A single call that
# never returns is the job runner's to stop (RQ's job timeout).
CHECK_EVERY = 5_000  # events between two looks at the clock
XML_CHUNK = 64 * 1024
DEFAULT_SECONDS = 30.0

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
TYPES = (PDF, DOCX, TEXT, MARKDOWN)

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
# C0 controls but tab and newline, DEL, and the noncharacters PostgreSQL's text refuses
# (NUL) or text fields refuse (\x02, \x03: eleva.http.fields).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


class ExtractionFailed(Exception):
    """The file could not be read as its type says (malformed, encrypted, too slow)."""


class _Enough(Exception):
    """The character budget is spent: stop reading (what was read is kept)."""


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.parts: list[str] = []
        self.chars = 0
        self.events = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ExtractionFailed("time limit reached")

    def tick(self, *_args: Any) -> None:
        """One more parser event; the clock is read every CHECK_EVERY of them."""
        self.events += 1
        if self.events % CHECK_EVERY == 0:
            self.check_time()

    def add(self, text: str) -> bool:
        """Keep ``text``; False once the character budget is spent (stop reading)."""
        self.check_time()
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
    # Imported by the worker only: the web process never parses a PDF.
    from pypdf import PdfReader, apply_configuration

    with apply_configuration(**PDF_LIMITS):
        reader = PdfReader(fileobj, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionFailed("encrypted")
        for number, page in enumerate(reader.pages):
            if number >= MAX_PDF_PAGES:
                return
            text = page.extract_text(visitor_operand_before=budget.tick)
            if not budget.add(text or ""):
                return


# pypdf's documented limits (pypdf.Configuration), lowered from their defaults (75 MB of
# output and 2 million tokens per stream), which let a small crafted file take a worker's
# time and memory: a content stream is parsed whole before its first operation is seen
# (and the clock read), so only these limits bound it.
PDF_LIMITS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "maximum_declared_stream_length",
            "array_based_stream_maximum_output_length",
            "jbig2_maximum_output_length",
            "lzw_maximum_output_length",
            "run_length_maximum_output_length",
            "zlib_maximum_output_length",
            "brotli_maximum_output_length",
            "image_maximum_buffer_size",
        ),
        MAX_PDF_STREAM_BYTES,
    ),
    "stream_decoding_work_maximum_length": 4 * MAX_PDF_STREAM_BYTES,
    "stream_parsing_work_maximum_count": 250_000,
    "xform_maximum_invocations_per_extraction": 500,
}


def _docx(fileobj: BinaryIO, budget: _Budget) -> None:
    # A streaming parser (defusedxml's SAX: no DTDs, no entities) that builds no tree, read
    # through a byte cap, with a depth limit and the budget's clock: millions of nested or
    # empty elements cost neither memory nor time beyond the limits.
    with zipfile.ZipFile(fileobj) as archive:
        try:
            member = archive.open("word/document.xml")
        except KeyError:
            raise ExtractionFailed("no word/document.xml") from None
        with member:
            _paragraphs(_Capped(member, MAX_XML_BYTES), budget)


def _paragraphs(source: _Capped, budget: _Budget) -> None:
    """Hand the text of each ``w:p`` to ``budget``, in document order (runs joined, tabs
    and breaks kept), streaming: no element is kept once read."""
    handler = _DocxText(budget)
    parser = create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(handler)
    try:
        while chunk := source.read(XML_CHUNK):
            budget.check_time()
            parser.feed(chunk)
        if not source.exhausted:  # the cap cut it short: keep what was read
            parser.close()
    except _Enough:
        return
    except DefusedXmlException as exc:
        raise ExtractionFailed(type(exc).__name__) from None
    except SAXException:  # malformed
        raise ExtractionFailed("malformed XML") from None
    handler.end_paragraph()


class _DocxText(ContentHandler):
    """SAX events of ``word/document.xml`` → paragraphs, within the budget."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self.budget = budget
        self.depth = 0
        self.in_text = False
        self.words: list[str] = []
        self.chars = 0

    def startElementNS(self, name: tuple[str | None, str], qname: Any, attrs: Any) -> None:
        self.budget.tick()
        self.depth += 1
        if self.depth > MAX_XML_DEPTH:
            raise ExtractionFailed("XML nested too deep")
        if name[0] == _W:
            if name[1] == "t":
                self.in_text = True
            elif name[1] in ("tab", "br"):
                self._keep(" ")

    def endElementNS(self, name: tuple[str | None, str], qname: Any) -> None:
        self.budget.tick()
        self.depth -= 1
        if name == (_W, "t"):
            self.in_text = False
        elif name == (_W, "p"):
            self.end_paragraph()

    def characters(self, content: str) -> None:
        self.budget.tick()
        if self.in_text:
            self._keep(content)

    def _keep(self, text: str) -> None:
        room = MAX_CHARS - self.chars  # no paragraph is kept longer than the whole text
        if room > 0:
            self.words.append(text[:room])
            self.chars += min(len(text), room)

    def end_paragraph(self) -> None:
        if self.words or self.chars:
            text = "".join(self.words)
            self.words.clear()
            self.chars = 0
            if not self.budget.add(text):
                raise _Enough


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


# -- the job process's memory -------------------------------------------------------------
# In the worker, whatever the limits above miss and would grow the process becomes a
# MemoryError (then ExtractionFailed).


@contextlib.contextmanager
def address_space_limit(extra_bytes: int) -> Iterator[None]:
    """Within the block, this process may map at most ``extra_bytes`` more than it has
    mapped now (RLIMIT_AS, the soft limit, put back after): past that an allocation
    fails with MemoryError instead of growing the process. For a job process only:
    every thread of the process shares the limit. Linux (/proc); elsewhere a no-op."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
