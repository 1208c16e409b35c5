"""Documents: uploads through the API and direct, type by content, quota (exact under
concurrency on PostgreSQL), lists, ETags, moves, downloads, and nothing orphaned or
dangling when a step fails."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from eleva.data.db import db
from eleva.data.models import Document, User
from eleva.data.storage import StorageError, storage
from eleva.services import documents as documents_service
from tests.conftest import assert_error_shape, requires_postgres
from tests.test_filetypes import DOCX, PDF, PNG

SUBJECTS = "/api/v1/subjects/"
DOCS = "/api/v1/documents/"
STORAGE = "/api/v1/users/me/storage"
MB = 1024 * 1024


def make_subject(client, account, name="Algebra") -> int:
    response = client.post(SUBJECTS, json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def upload(client, account, subject_id, data=PDF, filename="slides.pdf", **form):
    return client.post(
        f"{SUBJECTS}{subject_id}/documents",
        data={"file": (io.BytesIO(data), filename), **form},
        headers=account.headers,
        content_type="multipart/form-data",
    )


def stored_keys(app) -> set[str]:
    with app.app_context():
        return {obj.key for obj in storage.list_objects("documents/")}


def usage(client, account) -> dict:
    response = client.get(STORAGE, headers=account.headers)
    assert response.status_code == 200
    return response.json


@pytest.fixture
def subject(client, user) -> int:
    return make_subject(client, user)


# -- upload through the API ----------------------------------------------------------------


def test_upload_creates_a_document_typed_by_content(app, client, user, subject):
    response = upload(client, user, subject, PDF, "Lecture 3.pdf")
    assert response.status_code == 201, response.json
    doc = response.json
    assert set(doc) == {
        "id", "subject_id", "title", "filename", "content_type", "size", "status",
        "text_status", "created_at", "updated_at",
    }  # fmt: skip
    assert doc["subject_id"] == subject
    assert doc["title"] == "Lecture 3"  # the file name without its extension
    assert doc["filename"] == "Lecture 3.pdf"
    assert doc["content_type"] == "application/pdf"
    assert doc["size"] == len(PDF)
    assert doc["status"] == "ready"
    # Without Redis the text job ran at once; this minimal PDF has no pages to read.
    assert doc["text_status"] == "failed"
    assert response.headers["Location"].endswith(f"/api/v1/documents/{doc['id']}")
    with app.app_context():
        key = db.session.get(Document, doc["id"]).storage_key
        assert key.startswith(f"documents/{user.id}/")
        with storage.open(key) as fh:
            assert fh.read() == PDF
    assert usage(client, user) == {
        "used_bytes": len(PDF),
        "quota_bytes": 500 * MB,
        "documents": 1,
        "max_document_bytes": 25 * MB,
    }


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "text_status"),
    [
        (PNG, "scan.pdf", "image/png", "none"),  # the name never decides
        (b"# Notes\n", "notes.md", "text/markdown", "ready"),
        ("Résumé\n".encode(), "notes.txt", "text/plain", "ready"),
        (
            DOCX,
            "essay.bin",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "failed",  # its XML uses an undeclared prefix: malformed, no text
        ),
    ],
)
def test_types_and_text_status(client, user, subject, data, filename, content_type, text_status):
    response = upload(client, user, subject, data, filename, title="Mine")
    assert response.status_code == 201, response.json
    assert response.json["content_type"] == content_type
    assert response.json["text_status"] == text_status
    assert response.json["title"] == "Mine"


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"<!doctype html><html><script>alert(1)</script>", "paper.pdf"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "a.png"),
        (b"\x00\x01binary", "a.txt"),
    ],
)
def test_unsupported_types_are_415_and_leave_nothing(app, client, user, subject, data, filename):
    body = assert_error_shape(upload(client, user, subject, data, filename), 415)
    assert "not supported" in body["message"]
    assert stored_keys(app) == set()
    assert usage(client, user)["used_bytes"] == 0


def test_missing_file_and_bad_title_are_422(client, user, subject):
    response = client.post(
        f"{SUBJECTS}{subject}/documents",
        data={"title": "no file"},
        headers=user.headers,
        content_type="multipart/form-data",
    )
    assert "file" in assert_error_shape(response, 422)["errors"]["files"]
    body = assert_error_shape(upload(client, user, subject, title="x" * 201), 422)
    assert "title" in body["errors"]["files"]
    body = assert_error_shape(upload(client, user, subject, colour="red"), 422)
    assert "colour" in body["errors"]["files"]


def test_a_json_body_is_415(client, user, subject):
    response = client.post(f"{SUBJECTS}{subject}/documents", json={}, headers=user.headers)
    assert_error_shape(response, 415)


@pytest.mark.config(DOCUMENT_MAX_MB=1)
def test_too_large_is_413(app, client, user, subject):
    big = b"a" * (MB + 1)
    body = assert_error_shape(upload(client, user, subject, big, "big.txt"), 413)
    assert "1 MB" in body["message"]
    # Far beyond the limit, the body itself is refused before it is read.
    assert_error_shape(upload(client, user, subject, b"a" * (2 * MB), "big.txt"), 413)
    assert stored_keys(app) == set()
    # Exactly the limit is fine (the multipart envelope is not counted).
    assert upload(client, user, subject, b"a" * MB, "max.txt").status_code == 201


@pytest.mark.config(MAX_UPLOAD_MB=1)
def test_the_document_limit_is_not_the_picture_limit(client, user, subject):
    assert upload(client, user, subject, b"a" * (2 * MB), "two.txt").status_code == 201


@pytest.mark.config(STORAGE_QUOTA_MB=1)
def test_quota_is_413_with_quota_in_the_message(app, client, user, subject):
    assert upload(client, user, subject, b"a" * (MB - 10), "a.txt").status_code == 201
    body = assert_error_shape(upload(client, user, subject, b"b" * 11, "b.txt"), 413)
    assert "quota" in body["message"]
    assert len(stored_keys(app)) == 1
    assert upload(client, user, subject, b"c" * 10, "c.txt").status_code == 201
    assert usage(client, user)["used_bytes"] == MB


def test_another_users_subject_is_404(client, user, other):
    theirs = make_subject(client, other)
    assert_error_shape(upload(client, user, theirs), 404)
    assert_error_shape(upload(client, user, 2147483647), 404)


def test_storage_failure_leaves_no_row(app, client, user, subject, monkeypatch):
    def broken(*_args, **_kwargs):
        raise StorageError("down")

    with app.app_context():
        backend_type = type(app.extensions["eleva.storage"])
    monkeypatch.setattr(backend_type, "save_stream", broken)
    assert_error_shape(upload(client, user, subject), 503)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Document)) == 0
    assert usage(client, user)["used_bytes"] == 0


def test_commit_failure_deletes_the_object(app, client, user, subject, monkeypatch):
    def failing_commit():
        raise RuntimeError("database went away")

    monkeypatch.setattr(documents_service, "commit", failing_commit)
    response = upload(client, user, subject)
    assert_error_shape(response, 500)
    assert stored_keys(app) == set()
    monkeypatch.undo()
    counted = usage(client, user)
    assert (counted["used_bytes"], counted["documents"]) == (0, 0)


# -- list, get, patch, delete --------------------------------------------------------------


def test_list_sorts_and_paginates(client, user, subject):
    for name, size in (("b.txt", 3), ("A.txt", 1), ("c.txt", 2)):
        assert upload(client, user, subject, b"x" * size, name).status_code == 201
    url = f"{SUBJECTS}{subject}/documents"
    default = client.get(url, headers=user.headers)
    assert default.status_code == 200
    assert [d["filename"] for d in default.json] == ["c.txt", "A.txt", "b.txt"]  # newest first
    assert json.loads(default.headers["X-Pagination"])["total"] == 3
    by_title = client.get(url + "?sort=title", headers=user.headers).json
    assert [d["title"] for d in by_title] == ["A", "b", "c"]
    by_size = client.get(url + "?sort=-size", headers=user.headers).json
    assert [d["size"] for d in by_size] == [3, 2, 1]
    page = client.get(url + "?sort=size&page=2&page_size=2", headers=user.headers)
    assert [d["size"] for d in page.json] == [3]
    assert json.loads(page.headers["X-Pagination"])["page"] == 2
    empty = client.get(url + "?page=9", headers=user.headers)
    assert empty.status_code == 200 and empty.json == []


@pytest.mark.parametrize("query", ["?sort=name", "?page=0", "?page_size=101", "?sort="])
def test_list_bad_query_is_422(client, user, subject, query):
    assert_error_shape(
        client.get(f"{SUBJECTS}{subject}/documents{query}", headers=user.headers), 422
    )


def test_list_of_another_users_subject_is_404(client, user, other):
    theirs = make_subject(client, other)
    upload(client, other, theirs)
    assert_error_shape(client.get(f"{SUBJECTS}{theirs}/documents", headers=user.headers), 404)


def test_patch_renames_and_moves(client, user, subject):
    doc = upload(client, user, subject).json
    second = make_subject(client, user, "Physics")
    response = client.patch(
        f"{DOCS}{doc['id']}",
        json={"title": " Renamed ", "subject_id": second},
        headers=user.headers,
    )
    assert response.status_code == 200, response.json
    assert response.json["title"] == "Renamed"
    assert response.json["subject_id"] == second
    assert (
        client.get(f"{SUBJECTS}{second}/documents", headers=user.headers).json[0]["id"] == doc["id"]
    )


def test_patch_to_a_subject_not_yours_is_a_field_error(client, user, other, subject):
    doc = upload(client, user, subject).json
    theirs = make_subject(client, other)
    for target in (theirs, 2147483647):
        response = client.patch(
            f"{DOCS}{doc['id']}", json={"subject_id": target}, headers=user.headers
        )
        assert "subject_id" in assert_error_shape(response, 422)["errors"]["json"]
    assert client.get(f"{DOCS}{doc['id']}", headers=user.headers).json["subject_id"] == subject


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "   "},
        {"subject_id": "1"},
        {"subject_id": True},  # a bool is not a subject id (Python's True == 1)
        {"subject_id": 1.0},
        {"size": 3},
        {"status": "ready"},
        {"owner_id": 1},
    ],
)
def test_patch_bad_input_is_422(client, user, subject, body):
    doc = upload(client, user, subject).json
    assert_error_shape(client.patch(f"{DOCS}{doc['id']}", json=body, headers=user.headers), 422)


def test_delete_removes_row_object_and_bytes(app, client, user, subject):
    doc = upload(client, user, subject).json
    assert len(stored_keys(app)) == 1
    assert client.delete(f"{DOCS}{doc['id']}", headers=user.headers).status_code == 204
    assert stored_keys(app) == set()
    assert usage(client, user)["used_bytes"] == 0
    assert_error_shape(client.get(f"{DOCS}{doc['id']}", headers=user.headers), 404)


def test_delete_survives_a_storage_failure(app, client, user, subject, monkeypatch):
    doc = upload(client, user, subject).json

    def broken(*_args):
        raise StorageError("down")

    with app.app_context():
        monkeypatch.setattr(type(app.extensions["eleva.storage"]), "delete", broken)
    assert client.delete(f"{DOCS}{doc['id']}", headers=user.headers).status_code == 204
    assert usage(client, user)["documents"] == 0
    assert len(stored_keys(app)) == 1  # left for the sweep


def test_deleting_a_subject_deletes_its_documents_and_files(app, client, user, subject):
    upload(client, user, subject)
    upload(client, user, subject, PNG, "a.png")
    keep = make_subject(client, user, "Kept")
    kept = upload(client, user, keep).json
    assert client.delete(f"{SUBJECTS}{subject}", headers=user.headers).status_code == 204
    counted = usage(client, user)
    assert (counted["used_bytes"], counted["documents"]) == (len(PDF), 1)
    with app.app_context():
        assert stored_keys(app) == {db.session.get(Document, kept["id"]).storage_key}


# -- downloads -----------------------------------------------------------------------------


def test_local_download_url_serves_an_attachment(client, user, subject):
    html_ish = b"<b>bold</b> is still plain text here\n"
    doc = upload(client, user, subject, b"x" + html_ish, "notes.md").json
    response = client.get(f"{DOCS}{doc['id']}/download", headers=user.headers)
    assert response.status_code == 200
    expires = datetime.fromisoformat(response.json["expires_at"])
    assert timedelta(seconds=290) < expires - datetime.now(UTC) <= timedelta(seconds=300)
    url = urlsplit(response.json["url"])
    served = client.get(url.path)  # no bearer token: the signed URL is the credential
    assert served.status_code == 200
    assert served.get_data() == b"x" + html_ish
    assert served.mimetype == "text/markdown"
    assert served.headers["Content-Disposition"].startswith("attachment")
    assert "notes.md" in served.headers["Content-Disposition"]
    assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_local_download_url_expires_and_cannot_be_forged(app, client, user, subject, monkeypatch):
    doc = upload(client, user, subject).json
    path = urlsplit(
        client.get(f"{DOCS}{doc['id']}/download", headers=user.headers).json["url"]
    ).path
    assert_error_shape(client.get(path[:-3] + "abc"), 404)
    real_time = __import__("time").time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() + 301)
    assert_error_shape(client.get(path), 404)


def test_documents_are_not_public_media(app, client, user, subject):
    doc = upload(client, user, subject).json
    with app.app_context():
        key = db.session.get(Document, doc["id"]).storage_key
    assert_error_shape(client.get(f"/media/{key}"), 404)


# -- direct uploads (local backend) --------------------------------------------------------


def start(client, account, subject_id, size, filename="paper.pdf", **extra):
    return client.post(
        f"{SUBJECTS}{subject_id}/documents/uploads",
        json={"filename": filename, "size": size, **extra},
        headers=account.headers,
    )


def send(client, upload_form, data, filename="paper.pdf"):
    return client.post(
        urlsplit(upload_form["url"]).path,
        data={**upload_form["fields"], "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def test_direct_upload_on_the_local_backend(app, client, user, subject):
    started = start(client, user, subject, len(PDF), title="Paper")
    assert started.status_code == 201, started.json
    doc, form = started.json["document"], started.json["upload"]
    assert doc["status"] == "uploading" and doc["title"] == "Paper"
    assert set(form) == {"url", "fields", "expires_at"}
    assert usage(client, user)["used_bytes"] == len(PDF)  # reserved at once
    complete = f"{DOCS}{doc['id']}/complete"
    assert_error_shape(client.post(complete, headers=user.headers), 409)  # nothing yet
    assert send(client, form, PDF).status_code == 204
    assert_error_shape(send(client, form, PDF), 409)  # single use
    done = client.post(complete, headers=user.headers)
    assert done.status_code == 200, done.json
    assert done.json["status"] == "ready"
    assert done.json["content_type"] == "application/pdf"
    assert done.json["text_status"] == "failed"  # the text job ran at once (no Redis)
    assert client.post(complete, headers=user.headers).json == done.json  # idempotent


def test_direct_upload_of_another_size_is_refused_and_can_be_retried(client, user, subject):
    started = start(client, user, subject, len(PDF)).json
    assert_error_shape(send(client, started["upload"], PDF + b"x"), 413)
    assert_error_shape(send(client, started["upload"], PDF[:-1]), 422)
    assert send(client, started["upload"], PDF).status_code == 204


def test_direct_upload_of_a_refused_type_is_deleted_on_complete(app, client, user, subject):
    html = b"<html><script>alert(1)</script></html>"
    started = start(client, user, subject, len(html), "paper.pdf").json
    assert send(client, started["upload"], html).status_code == 204
    doc_id = started["document"]["id"]
    assert_error_shape(client.post(f"{DOCS}{doc_id}/complete", headers=user.headers), 415)
    assert stored_keys(app) == set()
    assert_error_shape(client.get(f"{DOCS}{doc_id}", headers=user.headers), 404)
    assert usage(client, user)["used_bytes"] == 0


def test_forged_upload_url_is_404(client, user, subject):
    started = start(client, user, subject, len(PDF)).json
    form = {**started["upload"], "url": started["upload"]["url"] + "x"}
    assert_error_shape(send(client, form, PDF), 404)


@pytest.mark.config(DOCUMENT_MAX_MB=1, STORAGE_QUOTA_MB=2)
def test_direct_upload_limits(client, user, subject, other):
    assert "1 MB" in assert_error_shape(start(client, user, subject, MB + 1), 413)["message"]
    assert start(client, user, subject, MB).status_code == 201
    assert start(client, user, subject, MB).status_code == 201
    assert "quota" in assert_error_shape(start(client, user, subject, 1), 413)["message"]
    theirs = make_subject(client, other)
    assert_error_shape(start(client, user, theirs, 10), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.pdf"},
        {"size": 3},
        {"filename": "a.pdf", "size": 0},
        {"filename": "a.pdf", "size": "3"},
        {"filename": "", "size": 3},
        {"filename": "a.pdf", "size": 3, "status": "ready"},
    ],
)
def test_direct_upload_bad_input_is_422(client, user, subject, body):
    response = client.post(
        f"{SUBJECTS}{subject}/documents/uploads", json=body, headers=user.headers
    )
    assert_error_shape(response, 422)


def test_download_of_an_upload_in_progress_is_409(client, user, subject):
    doc = start(client, user, subject, 10).json["document"]
    assert_error_shape(client.get(f"{DOCS}{doc['id']}/download", headers=user.headers), 409)


# -- quota under concurrency ---------------------------------------------------------------


@requires_postgres
@pytest.mark.config(STORAGE_QUOTA_MB=1)
def test_two_uploads_that_together_pass_the_quota_one_succeeds(app, user, subject):
    """Each fits alone; together they do not: exactly one is stored and counted."""
    size = MB // 2 + 1
    barrier = threading.Barrier(2)
    results: list[int] = []

    def one(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = upload(client, user, subject, bytes([97 + n]) * size, f"{n}.txt")
        results.append(response.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 413]
    with app.app_context():
        assert db.session.scalar(select(User.storage_used).where(User.id == user.id)) == size
        assert db.session.scalar(select(db.func.count()).select_from(Document)) == 1
    assert len(stored_keys(app)) == 1


@requires_postgres
@pytest.mark.config(STORAGE_QUOTA_MB=1)
def test_the_reservation_itself_is_exact_under_concurrency(app, user):
    """Eight threads reserve at once through the service: only what fits passes."""
    size = MB // 3 + 1  # two fit, three do not
    barrier = threading.Barrier(8)
    passed: list[bool] = []

    def one() -> None:
        with app.app_context():
            barrier.wait()
            try:
                documents_service._reserve(user.id, size)
                db.session.commit()
                passed.append(True)
            except Exception:
                db.session.rollback()
                passed.append(False)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert passed.count(True) == 2
    with app.app_context():
        assert db.session.scalar(select(User.storage_used).where(User.id == user.id)) == 2 * size
        db.session.execute(update(User).values(storage_used=0))
        db.session.commit()


# -- the S3 backend (moto in process; a moto server over real HTTP for direct uploads) -----

BUCKET = "eleva-test-documents"
S3_CONFIG = {"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_REGION": "us-east-1"}


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def bucket_keys(s3) -> set[str]:
    return {obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


@pytest.mark.config(**S3_CONFIG)
def test_s3_upload_download_and_delete(app, client, user, subject, aws):
    doc = upload(client, user, subject, DOCX, "essay.docx").json
    (key,) = bucket_keys(aws)
    assert key.startswith(f"documents/{user.id}/")
    head = aws.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == doc["content_type"]
    assert head["ContentLength"] == len(DOCX)
    url = client.get(f"{DOCS}{doc['id']}/download", headers=user.headers).json["url"]
    query = urlsplit(url).query
    assert "response-content-disposition=attachment" in query
    assert "essay.docx" in query
    assert "response-content-type=application%2Fvnd.openxmlformats" in query
    assert "X-Amz-Expires=300" in query
    assert client.delete(f"{DOCS}{doc['id']}", headers=user.headers).status_code == 204
    assert bucket_keys(aws) == set()


@pytest.mark.config(**S3_CONFIG)
def test_s3_outage_is_503_and_leaves_no_row(app, client, user, subject, aws):
    aws.delete_bucket(Bucket=BUCKET)  # every put now fails: NoSuchBucket
    assert_error_shape(upload(client, user, subject), 503)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Document)) == 0


@pytest.mark.config(**S3_CONFIG)
def test_s3_direct_upload_form_and_complete_sniffing_by_ranges(app, client, user, subject, aws):
    started = start(client, user, subject, len(DOCX), "essay.docx").json
    form = started["upload"]
    with app.app_context():
        key = db.session.get(Document, started["document"]["id"]).storage_key
    assert form["fields"]["key"] == key
    policy = json.loads(__import__("base64").b64decode(form["fields"]["policy"]))
    assert ["content-length-range", len(DOCX), len(DOCX)] in policy["conditions"]
    complete = f"{DOCS}{started['document']['id']}/complete"
    assert_error_shape(client.post(complete, headers=user.headers), 409)
    aws.put_object(Bucket=BUCKET, Key=key, Body=DOCX)  # as the browser would
    done = client.post(complete, headers=user.headers)
    assert done.status_code == 200, done.json
    assert done.json["content_type"].endswith("wordprocessingml.document")


@pytest.mark.config(**S3_CONFIG)
def test_s3_complete_refuses_and_deletes_a_wrong_object(app, client, user, subject, aws):
    html = b"<!doctype html><script>alert(1)</script>"
    started = start(client, user, subject, len(html), "paper.pdf").json
    with app.app_context():
        key = db.session.get(Document, started["document"]["id"]).storage_key
    aws.put_object(Bucket=BUCKET, Key=key, Body=html)
    response = client.post(f"{DOCS}{started['document']['id']}/complete", headers=user.headers)
    assert_error_shape(response, 415)
    assert bucket_keys(aws) == set()
    assert usage(client, user)["used_bytes"] == 0


@pytest.fixture
def moto_server(aws_env):
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint, s3
    finally:
        server.stop()


def test_s3_direct_upload_over_real_http(app, user, moto_server):
    """The client POSTs the bytes to the presigned form itself (requests, real HTTP);
    the API never sees them."""
    import requests

    endpoint, s3 = moto_server
    app.config.update(S3_CONFIG, S3_ENDPOINT_URL=endpoint)
    with app.app_context():
        from eleva.data.storage import build_backend

        app.extensions["eleva.storage"] = build_backend(app.config)
    client = app.test_client()
    subject_id = make_subject(client, user)
    started = start(client, user, subject_id, len(PDF)).json
    form = started["upload"]
    assert form["url"].startswith(endpoint)
    # Real S3 refuses this body (the policy's content-length-range); moto does not
    # enforce policies, which lets the check at complete be seen: 413, all deleted.
    requests.post(
        form["url"], data=form["fields"], files={"file": ("p.pdf", PDF + b"x")}, timeout=10
    )
    complete = f"{DOCS}{started['document']['id']}/complete"
    assert_error_shape(client.post(complete, headers=user.headers), 413)
    assert bucket_keys(s3) == set()
    assert_error_shape(client.get(f"{DOCS}{started['document']['id']}", headers=user.headers), 404)

    started = start(client, user, subject_id, len(PDF)).json
    form = started["upload"]
    sent = requests.post(
        form["url"], data=form["fields"], files={"file": ("p.pdf", PDF)}, timeout=10
    )
    assert sent.status_code in (200, 201, 204), sent.text
    done = client.post(f"{DOCS}{started['document']['id']}/complete", headers=user.headers)
    assert done.status_code == 200, done.json
    assert done.json["status"] == "ready"
    assert done.json["content_type"] == "application/pdf"


# -- the sweep and purges ------------------------------------------------------------------


def test_storage_sweep(app, client, user, subject):
    import os
    import time

    kept = upload(client, user, subject).json
    stale = start(client, user, subject, 100).json["document"]
    fresh = start(client, user, subject, 50).json["document"]
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    old_orphan = root / f"documents/{user.id}/{'a' * 32}"
    young_orphan = root / f"documents/{user.id}/{'b' * 32}"
    for path in (old_orphan, young_orphan):
        path.write_bytes(b"left behind")
    two_hours_ago = time.time() - 7200
    os.utime(old_orphan, (two_hours_ago, two_hours_ago))
    with app.app_context():
        db.session.execute(
            update(Document)
            .where(Document.id == stale["id"])
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
        db.session.commit()
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["storage", "sweep", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 upload(s) never completed; 1 unreferenced object(s)" in dry.output
    assert old_orphan.exists()

    result = runner.invoke(args=["storage", "sweep"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 upload(s) and 1 unreferenced object(s)." in result.output
    assert not old_orphan.exists()
    assert young_orphan.exists()  # its row may be committing right now
    assert_error_shape(client.get(f"{DOCS}{stale['id']}", headers=user.headers), 404)
    for doc in (kept, fresh):
        assert client.get(f"{DOCS}{doc['id']}", headers=user.headers).status_code == 200
    assert usage(client, user)["used_bytes"] == len(PDF) + 50


def test_purging_a_user_deletes_their_documents(app, client, user, other, subject):
    upload(client, user, subject)
    theirs = upload(client, other, make_subject(client, other)).json
    result = app.test_cli_runner().invoke(args=["users", "purge", "ada", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert stored_keys(app) == {db.session.get(Document, theirs["id"]).storage_key}


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_UPLOAD="3 per minute")
def test_document_uploads_are_rate_limited_per_user(client, user, other, subject):
    # Uploads through the API and direct starts share one budget (issue 32).
    assert upload(client, user, subject).status_code == 201
    assert start(client, user, subject, 10).status_code == 201
    assert upload(client, user, subject).status_code == 201
    for response in (upload(client, user, subject), start(client, user, subject, 10)):
        assert_error_shape(response, 429)
        assert "Retry-After" in response.headers
    # Another user has their own allowance.
    assert upload(client, other, make_subject(client, other)).status_code == 201


def test_the_spec_documents_the_document_routes(client):
    spec = client.get("/openapi.json").json
    upload_op = spec["paths"]["/api/v1/subjects/{subject_id}/documents"]["post"]
    assert {"201", "404", "413", "415", "422"} <= set(upload_op["responses"])
    complete = spec["paths"]["/api/v1/documents/{document_id}/complete"]["post"]
    assert {"200", "404", "409", "413", "415"} <= set(complete["responses"])
    patch = spec["paths"]["/api/v1/documents/{document_id}"]["patch"]
    assert {"200", "404", "412", "422"} <= set(patch["responses"])
    assert "/api/v1/users/me/storage" in spec["paths"]


# -- issue 32: local URLs are built on PUBLIC_BASE_URL, never the Host header ---------------


def _urls(client, user, subject, headers) -> tuple[str, str]:
    created = upload(client, user, subject)
    assert created.status_code == 201
    download = client.get(
        f"/api/v1/documents/{created.json['id']}/download", headers={**user.headers, **headers}
    )
    started = client.post(
        f"{SUBJECTS}{subject}/documents/uploads",
        json={"filename": "paper.pdf", "size": len(PDF)},
        headers={**user.headers, **headers},
    )
    return download.json["url"], started.json["upload"]["url"]


@pytest.mark.config(PUBLIC_BASE_URL="https://api.eleva.test")
def test_local_download_and_upload_urls_are_built_on_public_base_url(client, user, subject):
    download, target = _urls(client, user, subject, {"Host": "evil.example"})
    assert download.startswith("https://api.eleva.test/api/v1/documents/files/"), download
    assert target.startswith("https://api.eleva.test/api/v1/documents/uploads/"), target
    assert client.get(urlsplit(download).path).status_code == 200


@pytest.mark.config(ELEVA_ENV="production")
def test_without_public_base_url_production_hands_out_relative_urls(client, user, subject):
    download, target = _urls(client, user, subject, {"Host": "evil.example"})
    assert download.startswith("/api/v1/documents/files/"), download
    assert target.startswith("/api/v1/documents/uploads/"), target
