"""Type by content (eleva.core.filetypes): real small samples of each accepted type,
and what must be refused whatever its name says."""

from __future__ import annotations

import io
import zipfile

import pytest

from eleva.core import filetypes
from eleva.core.filetypes import UnsupportedType, detect

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


CONTENT_TYPES = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
DOCX = zipped({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<w:document/>"})
XLSX = zipped({"[Content_Types].xml": CONTENT_TYPES, "xl/workbook.xml": b"<workbook/>"})
PPTX = zipped({"[Content_Types].xml": CONTENT_TYPES, "ppt/presentation.xml": b"<p/>"})
ODT = zipped({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"})


def kind(data: bytes, filename: str = "") -> str:
    return detect(io.BytesIO(data), filename).content_type


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (PDF, "slides.pdf", "application/pdf"),
        (PNG, "scan.png", "image/png"),
        (JPEG, "photo.jpg", "image/jpeg"),
        (GIF, "a.gif", "image/gif"),
        (WEBP, "a.webp", "image/webp"),
        (DOCX, "essay.docx", filetypes.DOCX.content_type),
        (XLSX, "grades.xlsx", filetypes.XLSX.content_type),
        (PPTX, "talk.pptx", filetypes.PPTX.content_type),
        (ODT, "essay.odt", "application/vnd.oasis.opendocument.text"),
        ("Résumé du cours\n".encode(), "notes.txt", "text/plain"),
        (b"# Title\n\n* item\n", "notes.md", "text/markdown"),
        (b"# Title\n", "NOTES.Markdown", "text/markdown"),
        (b"# Title\n", "notes", "text/plain"),
        # The name never decides: a PDF named .txt is a PDF, a PNG named .pdf a PNG.
        (PDF, "notes.txt", "application/pdf"),
        (PNG, "paper.pdf", "image/png"),
        ("\ufeffa text with a BOM".encode(), "bom.txt", "text/plain"),
        (b"a < b and c > d", "math.txt", "text/plain"),
    ],
)
def test_accepted_types(data, filename, expected):
    assert kind(data, filename) == expected


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "paper.pdf"),
        (b"  \n<html><body>hi</body></html>", "notes.txt"),
        (b"\xef\xbb\xbf<HTML>", "notes.md"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "a.png"),
        (b'<?xml version="1.0"?><root/>', "a.txt"),
        (b"<script>alert(1)</script>", "a.txt"),
        (b"<!-- hidden --><html>", "a.txt"),
        (b"text with a NUL\x00 inside", "a.txt"),
        (b"\xff\xfe not utf-8 \x80", "a.txt"),
        ("caf\u00e9".encode("latin-1"), "a.txt"),
        (zipped({"readme.txt": b"just a zip"}), "a.docx"),  # a ZIP that is no document
        (zipped({"[Content_Types].xml": CONTENT_TYPES, "other/x.xml": b"<x/>"}), "a.docx"),
        (zipped({"mimetype": b"application/epub+zip"}), "a.odt"),
        (b"PK\x03\x04 truncated zip", "a.docx"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "setup.pdf"),  # a Windows executable
    ],
)
def test_refused_types(data, filename):
    with pytest.raises(UnsupportedType):
        kind(data, filename)


def test_text_is_checked_to_its_end_in_chunks():
    # Valid for the first chunks, broken far past the head: still refused.
    data = b"a" * (filetypes.CHUNK * 3) + b"\xc3"
    with pytest.raises(UnsupportedType):
        kind(data, "long.txt")
    # A character split across two chunks is fine.
    split = b"a" * (filetypes.CHUNK - 1) + "é".encode()
    assert kind(split, "split.txt") == "text/plain"


def test_the_file_is_left_at_its_start():
    fileobj = io.BytesIO(DOCX)
    detect(fileobj, "x.docx")
    assert fileobj.tell() == 0


@pytest.mark.parametrize(
    ("data", "has_text"), [(PDF, True), (b"plain", True), (DOCX, True), (PNG, False), (XLSX, False)]
)
def test_which_types_have_text_to_extract(data, has_text):
    assert detect(io.BytesIO(data), "x").has_text is has_text


# -- issue 32: markup passes as text after invisible characters or a line of text -------

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'


@pytest.mark.parametrize(
    "data",
    [
        "\ufeff\ufeff".encode() + SVG,  # two BOMs
        "\u00a0".encode() + SVG,  # NBSP
        "\u200b".encode() + SVG,  # ZWSP
        "\ufeff\u00a0\u200b\u2060 \t".encode() + b"<html><body>x</body></html>",
        b"hello\n" + SVG,  # after a line of text
        b"Title: notes\r\n\r\n  <!DOCTYPE html><html><script>alert(1)</script>",
        b"a line\n\xe2\x80\x8b<?xml version='1.0'?><x:html xmlns:x='http://www.w3.org/1999/xhtml'/>",
        b"first\nsecond\n<html xmlns='http://www.w3.org/1999/xhtml'><script>x</script></html>",
        b"x\n<iframe src='https://evil.example'></iframe>",
    ],
    ids=[
        "two-boms",
        "nbsp",
        "zwsp",
        "invisibles",
        "svg-after-a-line",
        "html-after-lines",
        "xhtml-after-zwsp",
        "xhtml-after-lines",
        "iframe-after-a-line",
    ],
)
def test_markup_after_invisible_characters_or_a_line_of_text_is_refused(data):
    for name in ("notes.txt", "notes.md"):
        with pytest.raises(UnsupportedType):
            kind(data, name)


@pytest.mark.parametrize(
    "data",
    [
        b"Use <b>bold</b> and <em>emphasis</em> in a sentence.",
        b"# Images\n\nMarkdown may hold <img src='a.png'> inline, and 3 < 4.",
        b"notes on the <svg> element, written inline",
    ],
)
def test_text_that_mentions_tags_is_still_text(data):
    assert kind(data, "notes.md") == "text/markdown"
