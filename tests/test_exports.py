"""Exports: a user takes everything away — one ZIP, checked item by item against the
API's own answers; never a hash or a token in it; one per interval; expired by the
sweep; and no partial archive left by a failed attempt (storage down, a worker killed),
with a real RQ worker, a real SMTP server, and S3 through moto (over HTTP where a
client downloads)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select, text, update

from eleva import create_app
from eleva.data import jobs, mail
from eleva.data.db import db
from eleva.data.models import AccountToken, Export, LoginSession, User
from eleva.data.storage import LocalBackend, StorageError, storage
from eleva.services import archive
from tests import test_documents
from tests.conftest import (
    ON_POSTGRES,
    PASSWORD,
    AuthActions,
    CheckedClient,
    assert_error_shape,
    empty_tables,
    make_config,
    requires_postgres,
)
from tests.test_documents import BUCKET, S3_CONFIG, make_subject, start, upload
from tests.test_filetypes import PDF, PNG
from tests.test_pictures import photo

# S3 through moto: in process, and a server over real HTTP (tests/test_documents.py).
aws, aws_env, moto_server = test_documents.aws, test_documents.aws_env, test_documents.moto_server
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "export.schema.json").read_text())
ME = "/api/v1/users/me"
EXPORT = f"{ME}/export"
DOWNLOAD = f"{ME}/export/download"
NOTE_BODY = "# Équations\n\nLa *dérivée* de $x^2$ est $2x$. 数学 🧮\n\n" + "Lorem ipsum. " * 2000


# -- giving a user every kind of data ---------------------------------------------------


def give_everything(app, client, auth: AuthActions, username: str = "ada") -> dict:
    """A user with every kind of data the API keeps: subjects (one archived), notes,
    documents (ready, and an upload never completed), a picture, sessions (one ended),
    reset and verification tokens. Returns the account and what was made."""
    account = auth.account(username, full_name="Ada Lovelace")
    other_login = auth.login(username).json  # a second session…
    ended = auth.login(username).json  # …and a third, ended
    client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {ended['access_token']}"})
    client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    client.patch(ME, json={"bio": "Notes on the Analytical Engine."}, headers=account.headers)
    picture = client.put(
        f"{ME}/picture",
        headers=account.headers,
        data={"file": (io.BytesIO(photo((80, 60))), "me.jpg")},
        content_type="multipart/form-data",
    )
    assert picture.status_code == 200, picture.json
    algebra = make_subject(client, account, "Algèbre linéaire")
    history = make_subject(client, account, "History / of ideas")
    client.patch(
        f"/api/v1/subjects/{history}",
        json={"is_archived": True, "description": "Old notes", "color": "#3A7BD5"},
        headers=account.headers,
    )
    notes = []
    for subject_id, title, body in (
        (algebra, "Vecteurs: ../intro", NOTE_BODY),
        (algebra, "Empty", ""),
        (history, "Babbage", "*The* engine."),
    ):
        response = client.post(
            f"/api/v1/subjects/{subject_id}/notes",
            json={"title": title, "body": body},
            headers=account.headers,
        )
        assert response.status_code == 201, response.json
        notes.append(response.json["id"])
    documents = [
        upload(client, account, algebra, PDF, "slides.pdf").json["id"],
        upload(client, account, algebra, PNG, "diagram.png").json["id"],
        upload(client, account, history, "# Sources\n\nÉcrits.".encode(), "sources.md").json["id"],
    ]
    uploading = start(client, account, history, 1234, "later.pdf").json["document"]["id"]
    client.patch(
        f"/api/v1/subjects/{algebra}", json={"exam_date": "2027-01-15"}, headers=account.headers
    )
    client.patch(ME, json={"study": {"timezone": "Europe/Paris"}}, headers=account.headers)
    cards = client.post(
        f"/api/v1/subjects/{algebra}/cards/bulk",
        json={
            "cards": [{"front": "dim ℝ³?", "back": "3", "note_id": notes[0]}, {"front": "Rank?"}]
        },
        headers=account.headers,
    ).json["ids"]
    cards.append(
        client.post(
            f"/api/v1/subjects/{history}/cards", json={"front": "1843?"}, headers=account.headers
        ).json["id"]
    )
    for rating in (3, 1, 4):  # a history, and an idempotency key kept with it
        response = client.post(
            f"/api/v1/cards/{cards[0]}/reviews",
            json={"rating": rating, "duration_ms": 4000},
            headers={**account.headers, "Idempotency-Key": f"review-{rating}"},
        )
        assert response.status_code == 201, response.json
    client.post(f"/api/v1/cards/{cards[2]}/reviews", json={"rating": 2}, headers=account.headers)
    return {
        "account": account,
        "other_session": other_login,
        "subjects": [algebra, history],
        "notes": notes,
        "documents": documents,
        "uploading": uploading,
        "cards": cards,
    }


# -- reading an archive -----------------------------------------------------------------


def fetch(client, url: str) -> bytes:
    """The bytes behind a download URL the API handed out (the local backend's own)."""
    parts = urlsplit(url)
    response = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert response.status_code == 200, response.data[:200]
    return response.data


def download_archive(client, account) -> tuple[zipfile.ZipFile, bytes, dict]:
    response = client.get(DOWNLOAD, headers=account.headers)
    assert response.status_code == 200, response.json
    data = fetch(client, response.json["url"])
    return zipfile.ZipFile(io.BytesIO(data)), data, response.json


def export_json(zip_file: zipfile.ZipFile) -> dict:
    document = json.loads(zip_file.read(archive.JSON_NAME))
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    return document


def all_pages(client, account, path: str) -> list[dict]:
    items, page = [], 1
    while True:
        sep = "&" if "?" in path else "?"
        response = client.get(f"{path}{sep}page={page}&page_size=100", headers=account.headers)
        assert response.status_code == 200, response.json
        items += response.json
        if len(response.json) < 100:
            return items
        page += 1


def front_matter_and_body(markdown: str) -> tuple[dict, str]:
    assert markdown.startswith("---\n")
    head, _, body = markdown[4:].partition("\n---\n\n")
    fields = {}
    for line in head.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = json.loads(value)
    return fields, body


def without(item: dict, *keys: str) -> dict:
    return {k: v for k, v in item.items() if k not in keys}


# -- the round trip ---------------------------------------------------------------------


def test_the_archive_holds_every_item_as_the_api_answers_it(app, client, auth):
    made = give_everything(app, client, auth)
    account = made["account"]
    requested = client.post(EXPORT, headers=account.headers)
    assert requested.status_code == 202, requested.json
    assert requested.json["status"] == "pending"  # as asked: the job then built it at once
    latest = client.get(EXPORT, headers=account.headers).json
    assert latest["id"] == requested.json["id"] and latest["status"] == "ready"
    zip_file, data, _ = download_archive(client, account)
    assert latest["size"] == len(data)
    exported = export_json(zip_file)
    assert exported["format_version"] == 1

    me = client.get(ME, headers=account.headers).json
    picture_url = me.pop("profile_picture_url")
    assert without(exported["user"], "profile_picture") == me
    assert zip_file.read(exported["user"]["profile_picture"]) == fetch(client, picture_url)

    live = client.get(f"{ME}/sessions", headers=account.headers).json
    sessions = {s["id"]: s for s in exported["sessions"]}
    assert len(sessions) == 3 and len(live) == 2
    for session in live:
        assert without(session, "current") == without(
            sessions[session["id"]], "expires_at", "ended_at", "ended_reason"
        )
    (ended,) = [s for s in sessions.values() if s["ended_at"]]
    assert ended["ended_reason"] == "logout"

    subjects = all_pages(client, account, "/api/v1/subjects/?archived=all&sort=created_at")
    parts = [part.key for part in archive.SUBJECT_PARTS]
    assert [without(s, *parts) for s in exported["subjects"]] == subjects
    paths = {archive.JSON_NAME, exported["user"]["profile_picture"]}
    for subject in exported["subjects"]:
        listed = all_pages(client, account, f"/api/v1/subjects/{subject['id']}/notes")
        assert {n["id"] for n in subject["notes"]} == {n["id"] for n in listed}
        for note in subject["notes"]:
            answered = client.get(f"/api/v1/notes/{note['id']}", headers=account.headers).json
            assert without(note, "path") == answered
            fields, body = front_matter_and_body(zip_file.read(note["path"]).decode())
            assert body == answered["body"]
            assert fields["title"] == answered["title"] and fields["subject"] == subject["name"]
            assert note["path"].startswith("notes/") and note["path"].endswith(".md")
            paths.add(note["path"])
        listed = all_pages(client, account, f"/api/v1/subjects/{subject['id']}/documents")
        assert [without(d, "path") for d in subject["documents"]] == sorted(
            listed, key=lambda d: d["id"]
        )
        for document in subject["documents"]:
            if document["status"] == "uploading":
                assert document["path"] is None  # no bytes to give
                continue
            url = client.get(
                f"/api/v1/documents/{document['id']}/download", headers=account.headers
            ).json["url"]
            assert zip_file.read(document["path"]) == fetch(client, url)
            assert document["path"].startswith("documents/")
            paths.add(document["path"])
        listed = all_pages(client, account, f"/api/v1/subjects/{subject['id']}/cards")
        assert [without(c, "reviews") for c in subject["cards"]] == sorted(
            listed, key=lambda c: c["id"]
        )
        for card in subject["cards"]:
            reviews = all_pages(client, account, f"/api/v1/cards/{card['id']}/reviews")
            assert card["reviews"] == reviews
    assert set(zip_file.namelist()) == paths  # and nothing else
    assert sum(len(s["notes"]) for s in exported["subjects"]) == len(made["notes"])
    assert sum(len(s["documents"]) for s in exported["subjects"]) == len(made["documents"]) + 1
    assert sum(len(s["cards"]) for s in exported["subjects"]) == len(made["cards"])
    assert sum(len(c["reviews"]) for s in exported["subjects"] for c in s["cards"]) == 4
    assert zip_file.testzip() is None


def test_the_download_is_an_attachment_of_the_zip(client, auth):
    account = auth.account()
    client.post(EXPORT, headers=account.headers)
    link = client.get(DOWNLOAD, headers=account.headers).json
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(seconds=290) < expires - datetime.now(UTC) <= timedelta(seconds=300)
    parts = urlsplit(link["url"])
    served = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
    assert served.status_code == 200
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert (
        f"eleva-export-ada-{datetime.now(UTC):%Y-%m-%d}.zip"
        in served.headers["Content-Disposition"]
    )
    assert served.mimetype == "application/zip"
    assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_exports_are_private_objects(app, client, auth):
    account = auth.account()
    client.post(EXPORT, headers=account.headers)
    with app.app_context():
        key = db.session.scalar(select(Export.storage_key))
    assert key.startswith(f"exports/{account.id}/") and key.endswith(".zip")
    assert_error_shape(client.get(f"/media/{key}"), 404)  # never a public permanent link


def secrets_of(app, client, made: dict) -> set[bytes]:
    """Every secret the account has: its password and hash, tokens handed out, the
    sessions' token ids, link tokens (their digests, and the tokens in the emails)."""
    account = made["account"]
    found = {
        PASSWORD.encode(),
        account.access_token.encode(),
        account.refresh_token.encode(),
        made["other_session"]["access_token"].encode(),
        made["other_session"]["refresh_token"].encode(),
    }
    with app.app_context():
        user = db.session.get(User, account.id)
        found.add(user.password_hash.encode())
        for session in db.session.scalars(
            select(LoginSession).where(LoginSession.user_id == account.id)
        ):
            found.add(session.refresh_jti.encode())
            if session.previous_jti:
                found.add(session.previous_jti.encode())
        digests = list(
            db.session.scalars(select(AccountToken.digest).where(AccountToken.user_id == user.id))
        )
        assert len(digests) >= 2  # a verification and a reset token at least
        found |= {digest.encode() for digest in digests}
        for message in mail.outbox():
            found |= {t.encode() for t in re.findall(r"token=([A-Za-z0-9_-]+)", message.body)}
    return found


def test_no_password_hash_token_or_token_hash_is_in_the_archive(app, client, auth):
    made = give_everything(app, client, auth)
    account = made["account"]
    client.post(EXPORT, headers=account.headers)
    zip_file, data, _ = download_archive(client, account)
    contents = [data] + [zip_file.read(name) for name in zip_file.namelist()]
    secrets = secrets_of(app, client, made)
    assert len(secrets) > 8
    for content in contents:
        assert b"$2b$" not in content and b"$2a$" not in content
        for secret in secrets:
            assert secret not in content


@requires_postgres
def test_on_postgres_the_archive_is_read_from_one_read_only_snapshot(
    app, client, auth, monkeypatch
):
    """A note moved to another subject while the archive is written appears once."""
    seen = []
    original = archive.write_archive

    def spy(out, scratch, user_id):
        settings = "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"
        seen.append(tuple(db.session.execute(text(settings)).one()))
        return original(out, scratch, user_id)

    monkeypatch.setattr(archive, "write_archive", spy)
    account = auth.account()
    client.post(EXPORT, headers=account.headers)
    assert seen == [("repeatable read", "on")]
    assert client.get(EXPORT, headers=account.headers).json["status"] == "ready"


# -- asking, one per interval -----------------------------------------------------------


def test_nothing_asked_is_404_and_an_export_needs_a_token(client, auth):
    account = auth.account()
    assert_error_shape(client.get(EXPORT, headers=account.headers), 404)
    assert_error_shape(client.get(DOWNLOAD, headers=account.headers), 404)
    for method, path in (("post", EXPORT), ("get", EXPORT), ("get", DOWNLOAD)):
        assert_error_shape(client.open(path, method=method.upper()), 401)


def test_one_export_per_interval_with_retry_after(app, client, auth):
    account, other = auth.account("ada"), auth.account("grace")
    assert client.post(EXPORT, headers=account.headers).status_code == 202
    again = client.post(EXPORT, headers=account.headers)
    assert_error_shape(again, 429)
    assert 86000 < int(again.headers["Retry-After"]) <= 86400
    assert client.post(EXPORT, headers=other.headers).status_code == 202  # per user
    with app.app_context():  # counted from the request, in the database
        db.session.execute(
            update(Export)
            .where(Export.user_id == account.id)
            .values(requested_at=datetime.now(UTC) - timedelta(hours=23, minutes=59))
        )
        db.session.commit()
    response = client.post(EXPORT, headers=account.headers)
    assert_error_shape(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    with app.app_context():
        db.session.execute(
            update(Export)
            .where(Export.user_id == account.id)
            .values(requested_at=datetime.now(UTC) - timedelta(hours=24, seconds=1))
        )
        db.session.commit()
    assert client.post(EXPORT, headers=account.headers).status_code == 202


@requires_postgres
def test_two_requests_at_once_make_one_export(app, auth):
    """The interval holds under concurrency: the user's row is locked while it is
    checked, so of two requests at once exactly one is accepted."""
    import threading

    account = AuthActions(app.test_client()).account()
    barrier = threading.Barrier(2)
    statuses = []

    def ask():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(EXPORT, headers=account.headers).status_code)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [202, 429]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Export)) == 1


@pytest.mark.parametrize(
    ("name", "context", "link"),
    [
        ("export_ready", {"size": "3.2 MB", "expires": "2026-12-15 10:00 UTC"}, "/export"),
        ("export_failed", {}, "/export"),
        ("erasure_scheduled", {"erase_date": "2027-01-06 10:00"}, "/cancel-erasure?token=T"),
        ("account_erased", {}, "/register"),
    ],
)
def test_every_privacy_email_has_its_link_in_text_and_html(app, name, context, link):
    with app.app_context():
        mail.send(
            name,
            "ada@example.com",
            username="<b>ada</b>",
            link=f"https://app.example{link}",
            **context,
        )
        (message,) = mail.outbox()
    assert "Eléva" in message.subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "&lt;b&gt;ada&lt;/b&gt;" in html
    for part in (message.body, html):
        assert f"https://app.example{link}" in part
        for value in context.values():
            assert value in part or value in message.subject


@pytest.mark.config(EXPORT_INTERVAL_HOURS=0)
def test_an_interval_of_zero_hours_is_no_limit(client, auth):
    account = auth.account()
    ids = [client.post(EXPORT, headers=account.headers).json["id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert client.get(EXPORT, headers=account.headers).json["id"] == ids[-1]


def test_privacy_settings_and_their_defaults():
    config = make_config()
    assert (config.EXPORT_INTERVAL_HOURS, config.EXPORT_KEEP_DAYS) == (24, 7)
    assert config.ERASURE_GRACE_DAYS == 30
    env = (ROOT / ".env.example").read_text()
    for name in ("EXPORT_INTERVAL_HOURS", "EXPORT_KEEP_DAYS", "ERASURE_GRACE_DAYS"):
        assert f"\n{name}=" in env
    from config import ConfigError

    with pytest.raises(ConfigError, match="EXPORT_KEEP_DAYS"):
        make_config(EXPORT_KEEP_DAYS="0")


# -- storage down: every attempt fails, then ``failed`` and one email -------------------


def break_reads(monkeypatch):
    def down(self, key, chunk_size=0):
        raise StorageError("local storage read failed: Input/output error")
        yield b""  # a generator, as the real one

    monkeypatch.setattr(LocalBackend, "read_chunks", down)


def exports_stored(app) -> list[str]:
    with app.app_context():
        return [obj.key for obj in storage.list_objects("exports/")]


def partials_left(app) -> list[str]:
    with app.app_context():
        return [p.key for p in storage.partial_uploads("exports/")]


def test_storage_down_fails_the_export_after_its_retries_with_one_email(
    app, client, auth, monkeypatch
):
    account = auth.account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    with app.app_context():
        before = len(mail.outbox())
    break_reads(monkeypatch)
    response = client.post(EXPORT, headers=account.headers)
    assert response.status_code == 202
    assert client.get(EXPORT, headers=account.headers).json["status"] == "failed"
    assert_error_shape(client.get(DOWNLOAD, headers=account.headers), 404)
    assert exports_stored(app) == [] and partials_left(app) == []
    with app.app_context():
        emails = mail.outbox()[before:]
    assert [m.subject for m in emails] == ["Your Eléva export could not be made"]
    assert "http://localhost:5173/export" in emails[0].body
    monkeypatch.undo()
    # A failed export does not count: the user asks again at once.
    again = client.post(EXPORT, headers=account.headers)
    assert again.status_code == 202
    assert client.get(EXPORT, headers=account.headers).json["status"] == "ready"


def test_a_write_that_fails_midway_leaves_no_partial_archive(app, client, auth, monkeypatch):
    account = auth.account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    original = LocalBackend.save_stream

    class Cut(io.RawIOBase):
        def __init__(self, inner):
            self.inner, self.read_bytes = inner, 0

        def readable(self):
            return True

        def read(self, n=-1):
            if self.read_bytes:
                raise OSError(5, "Input/output error")
            data = self.inner.read(50)
            self.read_bytes += len(data)
            return data

    def cut_short(self, key, fileobj, content_type, *, sequential=False):
        return original(self, key, Cut(fileobj), content_type, sequential=sequential)

    monkeypatch.setattr(LocalBackend, "save_stream", cut_short)
    client.post(EXPORT, headers=account.headers)
    assert client.get(EXPORT, headers=account.headers).json["status"] == "failed"
    assert exports_stored(app) == [] and partials_left(app) == []


# -- expiry and the sweep ---------------------------------------------------------------


def sweep(app, *args):
    result = app.test_cli_runner().invoke(args=["storage", "sweep", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_sweep_deletes_an_export_keep_days_after_it_was_ready(app, client, auth):
    account = auth.account()
    client.post(EXPORT, headers=account.headers)
    (key,) = exports_stored(app)
    assert "0 to expire" in sweep(app)
    assert exports_stored(app) == [key]
    with app.app_context():
        export = db.session.scalar(select(Export))
        assert export.expires_at - export.ready_at == timedelta(days=7)
        export.ready_at -= timedelta(days=7, seconds=1)
        export.expires_at -= timedelta(days=7, seconds=1)
        db.session.commit()
    assert "1 to expire" in sweep(app, "--dry-run")
    assert exports_stored(app) == [key]
    assert "1 expired" in sweep(app)
    assert exports_stored(app) == []
    assert client.get(EXPORT, headers=account.headers).json["status"] == "expired"
    assert_error_shape(client.get(DOWNLOAD, headers=account.headers), 404)


def test_the_sweep_fails_a_stalled_export_and_removes_what_its_attempts_left(
    app, client, auth, monkeypatch
):
    account = auth.account()
    monkeypatch.setattr(jobs, "run_here", lambda name, kwargs: None)  # a job never run
    client.post(EXPORT, headers=account.headers)
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    folder = root / f"exports/{account.id}"
    folder.mkdir(parents=True)
    with app.app_context():
        export = db.session.scalar(select(Export))
        # A killed attempt: its key on the row, its half-written file beside it.
        export.storage_key = f"exports/{account.id}/{'c' * 32}.zip"
        export.requested_at -= timedelta(days=1)
        db.session.commit()
        before = len(mail.outbox())
    monkeypatch.undo()  # jobs run again (the failure email)
    attempt = folder / f".{'c' * 32}.zip.partial"
    orphan, young = folder / f"{'a' * 32}.zip", folder / f"{'b' * 32}.zip"
    for path in (attempt, orphan, young):
        path.write_bytes(b"PK\x03\x04 half an archive")
    two_hours_ago = datetime.now(UTC).timestamp() - 7200
    for path in (attempt, orphan):
        os.utime(path, (two_hours_ago, two_hours_ago))
    output = sweep(app)
    assert "1 stalled" in output and "1 stalled marked failed" in output
    assert not attempt.exists() and not orphan.exists()
    assert young.exists()  # an attempt may be writing it right now
    assert client.get(EXPORT, headers=account.headers).json["status"] == "failed"
    with app.app_context():
        assert db.session.scalar(select(Export.storage_key)) is None
        (email,) = mail.outbox()[before:]
    assert email.subject == "Your Eléva export could not be made"


# -- S3, through moto -------------------------------------------------------------------


@pytest.mark.config(**S3_CONFIG)
def test_s3_storage_down_fails_the_export_and_stores_nothing(app, client, auth, aws):
    account = auth.account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    aws.delete_object(Bucket=BUCKET, Key=aws.list_objects_v2(Bucket=BUCKET)["Contents"][0]["Key"])
    aws.delete_bucket(Bucket=BUCKET)  # every read and write now fails
    assert client.post(EXPORT, headers=account.headers).status_code == 202
    assert client.get(EXPORT, headers=account.headers).json["status"] == "failed"
    aws.create_bucket(Bucket=BUCKET)
    assert aws.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_s3_a_large_archive_is_uploaded_in_parts_and_downloaded_over_http(
    app, client, auth, moto_server
):
    """An archive over 8 MB goes up as a multipart upload; the presigned URL serves it
    to a client over real HTTP, as an attachment."""
    import requests

    endpoint, s3 = moto_server
    app.config.update(S3_CONFIG, S3_ENDPOINT_URL=endpoint)
    with app.app_context():
        from eleva.data.storage import build_backend

        app.extensions["eleva.storage"] = build_backend(app.config)
    account = auth.account()
    subject = make_subject(client, account)
    big = PNG + os.urandom(9 * 1024 * 1024)  # incompressible, as real images are
    assert upload(client, account, subject, big, "big.png").status_code == 201
    client.post(EXPORT, headers=account.headers)
    export = client.get(EXPORT, headers=account.headers).json
    assert export["status"] == "ready" and export["size"] > len(big)
    with app.app_context():
        key = db.session.scalar(select(Export.storage_key))
    assert re.search(r"-\d+\"?$", s3.head_object(Bucket=BUCKET, Key=key)["ETag"])  # parts
    assert s3.head_object(Bucket=BUCKET, Key=key)["CacheControl"] == "private, no-store"
    link = client.get(DOWNLOAD, headers=account.headers).json["url"]
    assert link.startswith(endpoint)
    served = requests.get(link, timeout=30)
    assert served.status_code == 200
    assert served.headers["Content-Disposition"].startswith("attachment;")
    zip_file = zipfile.ZipFile(io.BytesIO(served.content))
    document = export_json(zip_file)["subjects"][0]["documents"][0]
    assert zip_file.read(document["path"]) == big


# -- a real RQ worker, a real SMTP server, a worker killed ------------------------------


@pytest.fixture
def worker_app(redis_url, tmp_path, postgres_schema):
    """``worker_app(**overrides)``: the app with a job queue on Redis; on SQLite a
    database file, which a worker's forked work horse opens too."""
    made = []

    def make(**overrides):
        settings = {
            "REDIS_URL": redis_url,
            "JOB_RETRIES": 2,
            "JOB_RETRY_INTERVALS": [0],
            "LOCAL_STORAGE_PATH": str(tmp_path / "media"),
            **overrides,
        }
        if not ON_POSTGRES:
            settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
        app = create_app(make_config(), settings)
        app.test_client_class = CheckedClient
        with app.app_context():
            if not ON_POSTGRES:
                db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            empty_tables()
            db.engine.dispose()


def test_a_real_worker_builds_the_export_and_a_real_smtp_server_gets_the_link(
    worker_app, smtp_server
):
    host, port, inbox = smtp_server
    app = worker_app(MAIL_BACKEND="smtp", MAIL_SERVER=host, MAIL_PORT=port)
    client = app.test_client()
    account = AuthActions(client).account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    assert client.post(EXPORT, headers=account.headers).json["status"] == "pending"
    assert client.get(EXPORT, headers=account.headers).json["status"] == "pending"
    with app.app_context():
        queued = [job.description for job in jobs.queue().jobs]
        assert "eleva.services.exports.build_export" in queued
        jobs.work(burst=True)
    export = client.get(EXPORT, headers=account.headers).json
    assert export["status"] == "ready"
    ready = [m for m in inbox.messages if "export is ready" in m["Subject"]]
    (message,) = ready
    assert message["To"] == account.email
    text = message.get_body(("plain",)).get_content()
    assert "http://localhost:5173/export" in text
    zip_file, _, _ = download_archive(client, account)
    assert len(export_json(zip_file)["subjects"]) == 1


def test_a_real_worker_retries_an_attempt_storage_failed_and_emails_once_at_the_end(
    worker_app, monkeypatch
):
    app = worker_app()
    client = app.test_client()
    account = AuthActions(client).account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    client.post(EXPORT, headers=account.headers)
    break_reads(monkeypatch)
    with app.app_context():
        jobs.work(burst=True, worker_class=SimpleWorker)
        failed = Queue(jobs.QUEUE_NAME, connection=jobs.connection()).failed_job_registry
        assert failed.count == 1  # three attempts, then RQ's failed registry
        subjects = [m.subject for m in mail.outbox()]
    assert subjects.count("Your Eléva export could not be made") == 1
    assert client.get(EXPORT, headers=account.headers).json["status"] == "failed"
    assert exports_stored(app) == [] and partials_left(app) == []


class KillAfter(io.RawIOBase):
    """A reader that kills its process (SIGKILL: no cleanup runs) once ``limit`` bytes
    were read, the first time only (``marker`` remembers)."""

    def __init__(self, inner, limit: int, marker: Path) -> None:
        self.inner, self.limit, self.marker, self.read_bytes = inner, limit, marker, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.read_bytes >= self.limit and not self.marker.exists():
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        data = self.inner.read(min(len(buffer), 256 * 1024))
        buffer[: len(data)] = data
        self.read_bytes += len(data)
        return len(data)


def kill_the_first_archive_write(monkeypatch, backend_class, marker: Path, limit: int):
    original = backend_class.save_stream

    def killing(self, key, fileobj, content_type, *, sequential=False):
        if key.startswith("exports/"):
            fileobj = io.BufferedReader(KillAfter(fileobj, limit, marker))
        return original(self, key, fileobj, content_type, sequential=sequential)

    monkeypatch.setattr(backend_class, "save_stream", killing)


def test_a_worker_killed_while_storing_the_archive_is_retried_and_leaves_no_partial(
    worker_app, monkeypatch, tmp_path
):
    app = worker_app()
    client = app.test_client()
    account = AuthActions(client).account()
    data = PNG + os.urandom(3 * 1024 * 1024)
    upload(client, account, make_subject(client, account), data, "scan.png")
    client.post(EXPORT, headers=account.headers)
    marker = tmp_path / "killed"
    # Killed with a megabyte of the archive written: a partial file left behind.
    kill_the_first_archive_write(monkeypatch, LocalBackend, marker, limit=3 * 1024 * 1024 // 2)
    with app.app_context():
        jobs.work(burst=True)  # the default worker: each job in a forked work horse
    assert marker.exists()  # the first attempt was killed midway
    export = client.get(EXPORT, headers=account.headers).json
    assert export["status"] == "ready"
    with app.app_context():
        key = db.session.scalar(select(Export.storage_key))
    assert exports_stored(app) == [key]
    assert partials_left(app) == []  # the retry removed the killed attempt's file
    zip_file, _, _ = download_archive(client, account)
    assert zip_file.testzip() is None


def test_s3_a_worker_killed_during_a_multipart_upload_is_retried_and_aborts_it(
    worker_app, monkeypatch, tmp_path, moto_server
):
    endpoint, s3 = moto_server
    app = worker_app(**S3_CONFIG, S3_ENDPOINT_URL=endpoint)
    client = app.test_client()
    account = AuthActions(client).account()
    big = PNG + os.urandom(9 * 1024 * 1024)
    assert upload(client, account, make_subject(client, account), big, "big.png").status_code == 201
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    client.post(EXPORT, headers=account.headers)
    marker = tmp_path / "killed"
    from eleva.data.storage import S3Backend

    # Killed after the first 8 MB part went up: a multipart upload left open.
    kill_the_first_archive_write(monkeypatch, S3Backend, marker, limit=8 * 1024 * 1024 + 1)
    with app.app_context():
        jobs.work(burst=True)
    assert marker.exists()
    assert client.get(EXPORT, headers=account.headers).json["status"] == "ready"
    with app.app_context():
        key = db.session.scalar(select(Export.storage_key))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]} - before
    assert keys == {key}  # moto's server keeps earlier tests' objects: only the new ones
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
