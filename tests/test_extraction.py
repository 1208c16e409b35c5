"""Text extraction for search: each type, its bounds, hostile files, and the job that runs
it (in the web process without Redis, in a real RQ worker with it)."""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile
import zlib
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import update

from eleva import create_app
from eleva.core import extraction
from eleva.core.extraction import ExtractionFailed, extract
from eleva.data import jobs
from eleva.data.db import db
from eleva.data.models import Document, utcnow
from eleva.services import emails
from tests.conftest import ON_POSTGRES, AuthActions, CheckedClient, empty_tables, make_config
from tests.test_documents import DOCS, make_subject, upload

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
CONTENT_TYPES = (
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)


def make_pdf(*pages: str) -> bytes:
    """A small valid PDF whose pages show the given text (Helvetica, one line each)."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [{}] /Count {} >>".format(
            " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))), len(pages)
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode())
    out.write(f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_docx(document_xml: str | bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", document_xml)
    return out.getvalue()


def docx_paragraphs(*paragraphs: str) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    return make_docx(f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>')


def text_of(data: bytes, content_type: str, **kw) -> str:
    return extract(io.BytesIO(data), content_type, **kw)


def pdf_with_content(content: bytes, pages: int = 1) -> bytes:
    """A PDF of ``pages`` pages sharing one Flate-compressed content stream."""
    data = zlib.compress(content, 9)
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    ] * pages
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def docx_body(xml: bytes) -> bytes:
    return make_docx(b"<w:document " + W.encode() + b"><w:body>" + xml + b"</w:body></w:document>")


# What the outside review sent (issue 32), tens of KB each: a 75 MB Flate stream, 3 million
# tokens of text operators on a page, a page of path operators shared by 100 pages
# (nothing to keep, so no character budget ends it), and DOCX with 3 million nested or
# empty elements, in a paragraph or not.
HOSTILE = {
    "pdf-75mb-stream": (extraction.PDF, lambda: pdf_with_content(b"0" * 75_000_000)),
    "pdf-text-operators": (
        extraction.PDF,
        lambda: pdf_with_content(b"BT /F1 12 Tf (x) Tj ET " * 3_000_000),
    ),
    "pdf-100-pages-of-paths": (
        extraction.PDF,
        lambda: pdf_with_content(b"0 0 m 1 1 l S " * 30_000, pages=100),
    ),
    "docx-nested": (
        extraction.DOCX,
        lambda: docx_body(b"<w:x>" * 3_000_000 + b"</w:x>" * 3_000_000),
    ),
    "docx-empty": (extraction.DOCX, lambda: docx_body(b"<w:x/>" * 3_000_000)),
    "docx-empty-in-a-paragraph": (
        extraction.DOCX,
        lambda: docx_body(b"<w:p>" + b"<w:r/>" * 3_000_000 + b"</w:p>"),
    ),
}


# -- each type --------------------------------------------------------------------------


def test_pdf_text_page_by_page():
    text = text_of(make_pdf("Thermodynamics lecture", "Entropy always grows"), extraction.PDF)
    assert "Thermodynamics lecture" in text and "Entropy always grows" in text


def test_docx_paragraphs_in_order():
    text = text_of(docx_paragraphs("Première partie", "Second part"), extraction.DOCX)
    assert text == "Première partie\nSecond part"


def test_markdown_loses_its_markup_and_text_keeps_its_words():
    md = b"# Photosynthesis\n\n**Light** reactions and [Calvin](https://x.io) cycle\n"
    assert text_of(md, extraction.MARKDOWN) == "Photosynthesis Light reactions and Calvin cycle"
    assert text_of("Élève\x00 a\x02b\r\n".encode(), extraction.TEXT) == "Élève a b"


def test_types_without_text_are_refused():
    with pytest.raises(ExtractionFailed):
        text_of(b"\x89PNG...", "image/png")


# -- bounds -----------------------------------------------------------------------------


def test_text_is_cut_at_max_chars(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_CHARS", 50)
    assert len(text_of(b"word " * 1000, extraction.TEXT)) <= 50
    text = text_of(docx_paragraphs(*(["paragraph"] * 100)), extraction.DOCX)
    assert 0 < len(text) <= 50


def test_only_the_first_pages_of_a_pdf_are_read(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_PDF_PAGES", 2)
    text = text_of(make_pdf("alpha", "beta", "gamma"), extraction.PDF)
    assert "alpha" in text and "beta" in text and "gamma" not in text


def test_the_deadline_fails_a_slow_extraction():
    with pytest.raises(ExtractionFailed, match="time limit"):
        text_of(make_pdf("alpha", "beta"), extraction.PDF, seconds=-1)


# -- hostile files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\nnot really a pdf",
        make_pdf("a")[:60],  # truncated
        # A page tree whose page is its own parent's parent: a loop.
        make_pdf("a").replace(b"/Kids [4 0 R]", b"/Kids [2 0 R]"),
    ],
    ids=["garbage", "truncated", "page-tree-loop"],
)
def test_malformed_pdfs_fail_cleanly(data):
    started = time.monotonic()
    try:
        text = text_of(data, extraction.PDF)
    except ExtractionFailed:
        text = None
    assert not text  # nothing read, or refused; never a crash or a hang
    assert time.monotonic() - started < 5


def test_docx_entities_are_refused():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f"<w:document {W}><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    with pytest.raises(ExtractionFailed):
        text_of(make_docx(laughs), extraction.DOCX)


def test_a_docx_zip_bomb_is_read_only_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_XML_BYTES", 1024 * 1024)
    # 64 MB of one repeated paragraph compress to well under 1 MB.
    paragraph = f"<w:p><w:r><w:t>{'bomb ' * 20}</w:t></w:r></w:p>"
    xml = f'<?xml version="1.0"?><w:document {W}><w:body>'.encode()
    xml += paragraph.encode() * (64 * 1024 * 1024 // len(paragraph)) + b"</w:body></w:document>"
    bomb = make_docx(xml)
    assert len(bomb) < 1024 * 1024
    started = time.monotonic()
    text = text_of(bomb, extraction.DOCX)
    assert text.startswith("bomb bomb") and len(text) <= extraction.MAX_CHARS
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_fail_within_the_deadline(name):
    content_type, build = HOSTILE[name]
    data = build()
    assert len(data) < 200_000
    started = time.monotonic()
    with pytest.raises(ExtractionFailed):
        text_of(data, content_type, seconds=2)
    # The deadline, and at most one uninterrupted parse after it (tests/slow measures
    # time and memory in a real worker).
    assert time.monotonic() - started < 2 + 3


def test_a_paragraph_is_kept_up_to_the_character_budget():
    text = text_of(
        docx_body(b"<w:p><w:r><w:t>" + b"word " * 1_000_000 + b"</w:t></w:r></w:p>"),
        extraction.DOCX,
    )
    assert text.startswith("word word") and len(text) <= extraction.MAX_CHARS


def test_the_address_space_limit_turns_growth_into_a_memory_error():
    with extraction.address_space_limit(64 * 1024 * 1024), pytest.raises(MemoryError):
        bytearray(256 * 1024 * 1024)
    assert len(bytearray(256 * 1024 * 1024)) > 0  # put back afterwards


def test_a_docx_without_its_document_part_fails():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
    with pytest.raises(ExtractionFailed):
        text_of(out.getvalue(), extraction.DOCX)


# -- the job, in the web process (no Redis) ---------------------------------------------


def search(client: CheckedClient, account, q: str) -> list[dict]:
    response = client.get("/api/v1/search", query_string={"q": q}, headers=account.headers)
    assert response.status_code == 200, response.json
    return response.json


def test_an_uploaded_files_text_is_searchable(client, user):
    subject = make_subject(client, user)
    pdf = make_pdf("Mitochondria are the powerhouse", "Krebs cycle")
    created = upload(client, user, subject, pdf, "biology.pdf", title="Cells")
    assert created.status_code == 201, created.json
    document = client.get(f"{DOCS}{created.json['id']}", headers=user.headers)
    assert document.json["text_status"] == "ready"
    assert document.headers["ETag"] != created.headers.get("ETag")  # a new representation
    (hit,) = search(client, user, "krebs")
    assert (hit["type"], hit["id"], hit["title"]) == ("document", created.json["id"], "Cells")
    start, end = hit["highlights"][0]
    assert hit["snippet"][start:end].lower() == "krebs"


def test_a_file_that_cannot_be_read_fails_and_is_still_found_by_title(client, user):
    subject = make_subject(client, user)
    created = upload(client, user, subject, b"%PDF-1.4\ngarbage", "broken.pdf", title="Broken")
    document = client.get(f"{DOCS}{created.json['id']}", headers=user.headers).json
    assert document["text_status"] == "failed"
    assert [h["id"] for h in search(client, user, "broken")] == [created.json["id"]]


def test_another_users_document_text_is_not_found(client, user, other):
    subject = make_subject(client, other)
    upload(client, other, subject, b"secret formula", "notes.txt")
    assert search(client, user, "formula") == []


def test_images_have_no_text_and_no_job(client, user, monkeypatch):
    from tests.test_filetypes import PNG

    subject = make_subject(client, user)
    monkeypatch.setattr(jobs, "enqueue", lambda *a, **k: pytest.fail("no job for an image"))
    created = upload(client, user, subject, PNG, "scan.png")
    assert created.json["text_status"] == "none"


def test_a_queue_that_is_down_keeps_the_upload_and_the_text_pending(app, client, user):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with app.app_context():
        jobs.init_app(app)
    subject = make_subject(client, user)
    created = upload(client, user, subject, b"later", "later.txt")
    assert created.status_code == 201
    assert created.json["text_status"] == "pending"


# -- the job, in a real RQ worker --------------------------------------------------------


@pytest.fixture
def queued_app(request, redis_url, tmp_path, postgres_schema):
    """The app with a job queue on Redis; on SQLite a database file, which the worker's
    forked work horse opens too (an in-memory database would be the parent's alone).
    Config overrides by indirect parametrisation."""
    overrides = {
        "REDIS_URL": redis_url,
        "JOB_RETRIES": 2,
        "JOB_RETRY_INTERVALS": [0],
        "LOCAL_STORAGE_PATH": str(tmp_path / "media"),
        **getattr(request, "param", {}),
    }
    if not ON_POSTGRES:
        overrides["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    app = create_app(make_config(), overrides)
    app.test_client_class = CheckedClient
    with app.app_context():
        if not ON_POSTGRES:
            db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        empty_tables()
        db.engine.dispose()


def _status(app, document_id: int) -> str:
    with app.app_context():
        status = db.session.get(Document, document_id).text_status
        db.session.rollback()
        return status


def test_a_real_worker_extracts_the_text(queued_app):
    client = queued_app.test_client()
    user = AuthActions(client).account()
    subject = make_subject(client, user)
    created = upload(client, user, subject, docx_paragraphs("Ohm's law"), "circuits.docx")
    assert created.json["text_status"] == "pending"
    assert search(client, user, "ohm") == []  # not read yet: the request only queued it
    with queued_app.app_context():
        assert jobs.work(burst=True)
    assert _status(queued_app, created.json["id"]) == "ready"
    assert [h["id"] for h in search(client, user, "ohm")] == [created.json["id"]]


def test_a_file_that_kills_the_work_horse_ends_failed_and_the_worker_goes_on(
    queued_app, monkeypatch
):
    client = queued_app.test_client()
    user = AuthActions(client).account()
    subject = make_subject(client, user)

    def killer(fileobj, content_type, **kw):
        if fileobj.read().startswith(b"deadly"):
            os.kill(os.getpid(), signal.SIGKILL)  # as a parser stuck in C, then killed
        return "fine words"

    # The forked work horse inherits this patch.
    monkeypatch.setattr(extraction, "extract", killer)
    deadly = upload(client, user, subject, b"deadly payload", "deadly.txt").json["id"]
    fine = upload(client, user, subject, b"harmless", "fine.txt").json["id"]
    with queued_app.app_context():
        jobs.work(burst=True)  # the default (forking) worker
        failed = Queue(jobs.QUEUE_NAME, connection=jobs.connection()).failed_job_registry
        assert failed.count == 0  # the retry after the kill ended the job itself
    assert _status(queued_app, deadly) == "failed"
    assert _status(queued_app, fine) == "ready"


# -- issue 32: one user cannot fill the queue, and emails go first --------------------------


def _queue_counts(app) -> dict[str, int]:
    with app.app_context():
        return {name: jobs.queue(name=name).count for name in jobs.QUEUES}


@pytest.mark.parametrize("queued_app", [{"TEXT_EXTRACTION_QUEUED": 2}], indirect=True)
def test_a_user_has_a_bounded_number_of_texts_in_the_queue(queued_app):
    client = queued_app.test_client()
    user = AuthActions(client).account()
    other = AuthActions(client).account("grace")
    subject, theirs = make_subject(client, user), make_subject(client, other)
    mine = [
        upload(client, user, subject, f"notes {n}".encode(), f"n{n}.txt").json for n in range(5)
    ]
    upload(client, other, theirs, b"grace's notes", "g.txt")
    assert {d["text_status"] for d in mine} == {"pending"}  # every upload is stored
    # Two of the user's five wait in the queue, the others for their turn; the other user
    # is not behind them all.
    assert _queue_counts(queued_app)[jobs.QUEUE_NAME] == 2 + 1
    with queued_app.app_context():
        jobs.work(burst=True)  # each extraction that ends queues its owner's next
    assert {_status(queued_app, d["id"]) for d in mine} == {"ready"}
    assert [h["title"] for h in search(client, user, "notes")] != []


def test_emails_are_worked_before_documents(queued_app):
    client = queued_app.test_client()
    user = AuthActions(client).account()
    subject = make_subject(client, user)
    for n in range(3):
        upload(client, user, subject, f"notes {n}".encode(), f"n{n}.txt")
    with queued_app.app_context():
        emails.queue(emails.send_test_email, to="first@example.com")  # queued last
        jobs.work(burst=True)
        started = {}
        for name in jobs.QUEUES:
            registry = jobs.queue(name=name).finished_job_registry
            for job in Job.fetch_many(registry.get_job_ids(), connection=jobs.connection()):
                started[job.id] = (name, job.started_at)
    order = [name for name, _ in sorted(started.values(), key=lambda item: item[1])]
    assert jobs.EMAIL_QUEUE in order
    # The registration's verification email and the test email, before any document.
    assert order[: order.count(jobs.EMAIL_QUEUE)] == [jobs.EMAIL_QUEUE] * order.count(
        jobs.EMAIL_QUEUE
    ), order


@pytest.mark.parametrize("queued_app", [{"TEXT_EXTRACTION_QUEUED": 2}], indirect=True)
def test_extract_text_queues_the_waiting_and_the_lost_within_the_bound(queued_app):
    client = queued_app.test_client()
    user = AuthActions(client).account()
    subject = make_subject(client, user)
    ids = [upload(client, user, subject, b"words", f"n{n}.txt").json["id"] for n in range(4)]
    with queued_app.app_context():
        for name in jobs.QUEUES:
            jobs.queue(name=name).empty()  # the queued jobs are lost (a flushed Redis)
        # ... one of them long ago
        db.session.execute(
            update(Document)
            .where(Document.id == ids[0])
            .values(text_queued_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()
    result = queued_app.test_cli_runner().invoke(args=["jobs", "extract-text"])
    assert result.exit_code == 0, result.output
    assert "4 document(s)" in result.output
    # The one lost long ago and the next waiting one: two, the user's bound.
    assert _queue_counts(queued_app)[jobs.QUEUE_NAME] == 1
    with queued_app.app_context():
        jobs.work(burst=True)
    assert _status(queued_app, ids[0]) == "ready"
