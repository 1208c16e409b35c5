"""What a file is, judged by its content: never by its name or the client's header.

Accepted: PDF, PNG, JPEG, WebP, GIF, DOCX, XLSX, PPTX, ODT and plain text (UTF-8, not
markup). Pure: works on any seekable binary file object (a spooled upload, a local file,
a ranged reader over S3) and reads it in bounded chunks, never whole.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 64 * 1024
HEAD = 4096


class UnsupportedType(ValueError):
    """Not a type Eléva keeps."""


@dataclass(frozen=True)
class FileType:
    content_type: str
    has_text: bool  # text can be extracted for search (PDF, text, Markdown, DOCX)


PDF = FileType("application/pdf", True)
PNG = FileType("image/png", False)
JPEG = FileType("image/jpeg", False)
GIF = FileType("image/gif", False)
WEBP = FileType("image/webp", False)
DOCX = FileType("application/vnd.openxmlformats-officedocument.wordprocessingml.document", True)
XLSX = FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", False)
PPTX = FileType("application/vnd.openxmlformats-officedocument.presentationml.presentation", False)
ODT = FileType("application/vnd.oasis.opendocument.text", False)
TEXT = FileType("text/plain", True)
MARKDOWN = FileType("text/markdown", True)

ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"
# Office Open XML: [Content_Types].xml plus the part folder of its kind.
OOXML_FOLDERS = (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX))
MARKDOWN_SUFFIXES = (".md", ".markdown")

# What a browser would render as a document, case-insensitively: at the start of the
# text (comments, `<!--`, hide markup just as well), or a document's own elements at the
# start of any line of the head (markup after a line of text is still a page). Before
# either, any whitespace and invisible characters (BOMs, NBSP, zero-width spaces) are
# skipped: none of them makes markup text.
_MARKUP_START_RE = re.compile(
    r"<(?:!doctype|html|head|body|svg|\?xml|script|!--|iframe|object|embed|style|meta|"
    r"title|xml|xsl|rdf|math|a\b|div|img|p\b|table)",
    re.IGNORECASE,
)
_MARKUP_LINE_RE = re.compile(
    r"<(?:!doctype|html|head|body|svg|\?xml|script|iframe|object|embed|xsl|rdf|math)\b",
    re.IGNORECASE,
)


# NUL and the other C0 controls no text file holds (tab, LF, VT, FF, CR and ESC are
# fine): a binary file that happens to be valid UTF-8 is still binary.
_BINARY_RE = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def detect(fileobj: BinaryIO, filename: str = "") -> FileType:
    """The type of the file ``fileobj`` holds (read from its start; left at its start).

    Raises :class:`UnsupportedType` for anything Eléva does not keep.
    """
    fileobj.seek(0)
    head = fileobj.read(HEAD)
    try:
        kind = _by_magic(head) or _by_zip(fileobj, head) or _as_text(fileobj, head, filename)
    finally:
        fileobj.seek(0)
    if kind is None:
        raise UnsupportedType("This type of file is not supported.")
    return kind


def _by_magic(head: bytes) -> FileType | None:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def _by_zip(fileobj: BinaryIO, head: bytes) -> FileType | None:
    # Office Open XML (DOCX, XLSX, PPTX) and ODT are ZIP archives whose members say what
    # they are.
    if not head.startswith(b"PK\x03\x04"):
        return None
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:  # reads the central directory only
            names = archive.namelist()
            if "mimetype" in names:
                with archive.open("mimetype") as member:
                    if member.read(len(ODT_MIMETYPE) + 1).strip() == ODT_MIMETYPE:
                        return ODT
            if "[Content_Types].xml" in names:
                for folder, kind in OOXML_FOLDERS:
                    if any(name.startswith(folder) for name in names):
                        return kind
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError):
        return None
    # Any other ZIP (a plain archive, an EPUB, a JAR) is not a document Eléva keeps;
    # its NULs also keep it from passing as text.
    return None


def _is_markup(head: bytes) -> bool:
    lines = [_visible(line) for line in head.decode("utf-8", "ignore").splitlines()]
    lines = [line for line in lines if line]
    if lines and _MARKUP_START_RE.match(lines[0]):
        return True
    return any(_MARKUP_LINE_RE.match(line) for line in lines)


def _visible(line: str) -> str:
    """``line`` from its first character that is neither whitespace nor invisible
    (a control or format character: BOM, zero-width space and joiners, bidi marks)."""
    for index, char in enumerate(line):
        if not (char.isspace() or unicodedata.category(char) in ("Cf", "Cc")):
            return line[index:]
    return ""


def _as_text(fileobj: BinaryIO, head: bytes, filename: str) -> FileType | None:
    # Text is valid UTF-8 without NUL or other binary control characters, and not markup:
    # HTML, SVG and XML are refused, since a browser would render them, whatever invisible
    # characters or lines of text come first.
    if _is_markup(head):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    fileobj.seek(0)
    try:
        while chunk := fileobj.read(CHUNK):
            if _BINARY_RE.search(chunk):
                return None
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    # The name only chooses between Markdown and plain text, once the content is judged.
    name = filename.lower().rstrip()
    return MARKDOWN if name.endswith(MARKDOWN_SUFFIXES) else TEXT
