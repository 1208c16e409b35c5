"""Erasure: deactivated at once, erased for good after the grace period unless the
emailed link cancels it; then nothing of the account remains in any table or in the
storage, and its email and username can register again. Resumable: a run stopped by a
fault (storage down) is finished by the next, the last email sent once. The operator's
purge and the worker's hourly job share the same code."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, tuple_, update

from eleva.data import jobs, mail
from eleva.data.db import db
from eleva.data.models import Document, Erasure, Export, OutboxJob, User
from eleva.data.storage import LocalBackend, S3Backend, StorageError, storage
from eleva.services import erasure
from tests import test_documents, test_exports
from tests.conftest import PASSWORD, AuthActions, assert_error_shape, requires_postgres
from tests.test_documents import BUCKET, S3_CONFIG, make_subject, upload
from tests.test_exports import EXPORT, give_everything
from tests.test_filetypes import PDF
from tests.test_pictures import photo

# Fixtures: S3 through moto (in process), and the app with a real job queue.
aws, aws_env = test_documents.aws, test_documents.aws_env
worker_app = test_exports.worker_app
ME = "/api/v1/users/me"
CANCEL = "/api/v1/auth/erasure/cancel"


def ask_erasure(client, account, **body):
    return client.delete(
        ME, json={"password": PASSWORD, "erase": True, **body}, headers=account.headers
    )


def cancel_token(app, email: str) -> str:
    with app.app_context():
        message = [m for m in mail.outbox() if "will be erased" in m.subject and m.to == [email]][
            -1
        ]
    return re.search(r"cancel-erasure\?token=([A-Za-z0-9_-]+)", message.body).group(1)


def make_due(app, user_id: int) -> None:
    with app.app_context():
        db.session.execute(
            update(Erasure)
            .where(Erasure.user_id == user_id)
            .values(erase_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()


def erase_due(app, *args, code: int = 0):
    result = app.test_cli_runner().invoke(args=["users", "erase-due", *args])
    assert result.exit_code == code, result.output
    return result.output


def user_exists(app, user_id: int) -> bool:
    with app.app_context():
        return db.session.get(User, user_id) is not None


# -- asking, the email, cancelling ------------------------------------------------------


def test_asking_deactivates_ends_every_session_and_emails_the_date_and_a_cancel_link(
    app, client, auth
):
    account = auth.account()
    other_session = auth.login("ada").json
    response = ask_erasure(client, account)
    assert response.status_code == 202, response.json
    erase_at = datetime.fromisoformat(response.json["erase_at"])
    assert timedelta(days=29, hours=23) < erase_at - datetime.now(UTC) <= timedelta(days=30)
    for token in (account.access_token, other_session["access_token"]):
        assert_error_shape(client.get(ME, headers={"Authorization": f"Bearer {token}"}), 401)
    assert_error_shape(auth.login("ada"), 403)
    with app.app_context():
        (message,) = [m for m in mail.outbox() if "will be erased" in m.subject]
    assert message.to == ["ada@example.com"]
    assert f"{erase_at:%Y-%m-%d}" in message.subject and f"{erase_at:%Y-%m-%d}" in message.body
    assert re.search(
        r"http://localhost:5173/cancel-erasure\?token=[A-Za-z0-9_-]{40,}", message.body
    )
    with app.app_context():  # the token is stored only as its hash
        digest = db.session.scalar(select(Erasure.cancel_digest))
    assert len(digest) == 64 and cancel_token(app, "ada@example.com") != digest
    assert user_exists(app, account.id)  # nothing erased before its time
    assert "0 account(s) to erase" in erase_due(app)


@pytest.mark.parametrize("body", [{"password": "wrong password!"}, {"erase": "yes"}])
def test_a_wrong_password_or_a_bad_flag_is_422_and_changes_nothing(app, client, auth, body):
    account = auth.account()
    response = client.delete(
        ME, json={"password": PASSWORD, "erase": True, **body}, headers=account.headers
    )
    assert_error_shape(response, 422)
    assert client.get(ME, headers=account.headers).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Erasure)) == 0


def test_without_erase_deleting_me_only_deactivates(app, client, auth):
    account = auth.account()
    response = client.delete(ME, json={"password": PASSWORD}, headers=account.headers)
    assert response.status_code == 204
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Erasure)) == 0


def test_the_cancel_link_keeps_the_account_once(app, client, auth):
    account = auth.account()
    ask_erasure(client, account)
    token = cancel_token(app, account.email)
    for bad in ("x" * 43, token[:-1]):
        body = assert_error_shape(client.post(CANCEL, json={"token": bad}), 422)
        assert "token" in body["errors"]["json"]
    assert client.post(CANCEL, json={"token": token}).status_code == 204
    assert_error_shape(client.get(ME, headers=account.headers), 401)  # sessions stay ended
    assert auth.login("ada").status_code == 200
    assert_error_shape(client.post(CANCEL, json={"token": token}), 422)  # used
    make_due(app, account.id)  # there is nothing left to erase
    assert "0 account(s) to erase" in erase_due(app)
    assert user_exists(app, account.id)


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, {"token": "t", "x": 1}])
def test_a_malformed_cancel_is_422(client, body):
    assert_error_shape(client.post(CANCEL, json=body), 422)


def test_each_email_sent_makes_the_earlier_links_stop_working(app, client, auth):
    account = auth.account()
    ask_erasure(client, account)
    first = cancel_token(app, account.email)
    with app.app_context():
        from eleva.services import emails

        emails.send_erasure_scheduled(account.id)  # the job run again (a retry)
    second = cancel_token(app, account.email)
    assert first != second
    assert_error_shape(client.post(CANCEL, json={"token": first}), 422)
    assert client.post(CANCEL, json={"token": second}).status_code == 204


@pytest.mark.config(ERASURE_GRACE_DAYS=0)
def test_a_grace_of_zero_days_erases_at_the_next_run(app, client, auth):
    account = auth.account()
    response = ask_erasure(client, account)
    assert datetime.fromisoformat(response.json["erase_at"]) <= datetime.now(UTC)
    token = cancel_token(app, account.email)
    assert "erased ada" in erase_due(app)
    assert not user_exists(app, account.id)
    # Once erased there is nothing left to cancel.
    assert_error_shape(client.post(CANCEL, json={"token": token}), 422)


def test_the_operator_reactivating_an_account_cancels_its_erasure(app, client, auth):
    account = auth.account()
    ask_erasure(client, account)
    result = app.test_cli_runner().invoke(args=["users", "activate", "ada"])
    assert result.exit_code == 0, result.output
    assert "its erasure due" in result.output and "is cancelled" in result.output
    make_due(app, account.id)
    erase_due(app)
    assert user_exists(app, account.id)
    assert auth.login("ada").status_code == 200


def test_an_erasure_cancelled_after_the_run_listed_it_is_not_done(app, client, auth, monkeypatch):
    account = auth.account()
    ask_erasure(client, account)
    make_due(app, account.id)
    with app.app_context():
        listed = erasure.due_erasures()
    assert client.post(CANCEL, json={"token": cancel_token(app, account.email)}).status_code == 204
    monkeypatch.setattr(erasure, "due_erasures", lambda: listed)  # the run listed it before
    output = erase_due(app)
    assert "kept ada" in output and "its erasure was cancelled" in output
    assert "Erased 0 account(s)." in output
    assert user_exists(app, account.id) and auth.login("ada").status_code == 200


def _cancel_and_erase_at_once(app, username: str) -> tuple[int, bool, bool]:
    """(the cancel's status, whether the erasure erased, whether the user exists)."""
    import threading

    client = app.test_client()
    account = AuthActions(client).account(username)
    ask_erasure(client, account)
    make_due(app, account.id)
    token = cancel_token(app, account.email)
    barrier = threading.Barrier(2)
    answers = {}

    def cancel():
        barrier.wait()
        answers["cancel"] = app.test_client().post(CANCEL, json={"token": token}).status_code

    def erase():
        barrier.wait()
        with app.app_context():
            answers["erased"] = erasure.erase_account(account.id, due_only=True) is not None

    threads = [threading.Thread(target=cancel), threading.Thread(target=erase)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    exists = user_exists(app, account.id)
    if exists:
        with app.app_context():
            assert db.session.get(User, account.id).is_active
    return answers["cancel"], answers["erased"], exists


@requires_postgres
def test_cancel_and_erase_at_once_one_wins_and_nothing_is_half_done(app, auth):
    """The cancel link and the erasure meet on the user's row (locked by both, in the
    same order): either the account is kept and active, or it is gone and the link is
    refused; never a deadlock, never both."""
    for round_ in range(6):
        outcome = _cancel_and_erase_at_once(app, f"racer{round_}")
        assert outcome in ((204, False, True), (422, True, False)), outcome


# -- nothing remains --------------------------------------------------------------------


def owned_rows(user_id: int) -> dict[str, set[tuple]]:
    """Every row that refers to the user, directly or through other rows, by table:
    followed along every foreign key of the metadata (and any owner_id or user_id
    column), so a table added later is walked too."""
    owned: dict[str, set[tuple]] = {"users": {(user_id,)}}
    tables = db.metadata.sorted_tables
    changed = True
    while changed:
        changed = False
        for table in tables:
            key = list(table.primary_key.columns)
            found: set[tuple] = set()
            for name in ("owner_id", "user_id"):
                if name in table.c:
                    found |= set(db.session.execute(select(*key).where(table.c[name] == user_id)))
            for fk in table.foreign_key_constraints:
                parent = fk.referred_table
                if not owned.get(parent.name):
                    continue
                referred = [element.column for element in fk.elements]
                local = [element.parent for element in fk.elements]
                parent_key = list(parent.primary_key.columns)
                values = set(
                    db.session.execute(
                        select(*referred).where(tuple_(*parent_key).in_(owned[parent.name]))
                    )
                )
                if values:
                    found |= set(db.session.execute(select(*key).where(tuple_(*local).in_(values))))
            new = {tuple(row) for row in found} - owned.get(table.name, set())
            if new:
                owned.setdefault(table.name, set()).update(new)
                changed = True
    return owned


def remaining(owned: dict[str, set[tuple]], user_id: int) -> dict[str, int]:
    """How many of ``owned`` still exist, and rows referring to the user by any column
    that is a foreign key to users.id or is named owner_id or user_id, per table."""
    left = {}
    for table in db.metadata.sorted_tables:
        key = list(table.primary_key.columns)
        count = 0
        if owned.get(table.name):
            count += db.session.scalar(
                select(func.count()).select_from(table).where(tuple_(*key).in_(owned[table.name]))
            )
        for column in table.columns:
            refers = any(fk.column.table.name == "users" for fk in column.foreign_keys)
            if refers or column.name in ("owner_id", "user_id"):
                count += db.session.scalar(
                    select(func.count()).select_from(table).where(column == user_id)
                )
        if count:
            left[table.name] = count
    return left


def stored_under(user_id: int) -> list[str]:
    keys = []
    for prefix in ("profile-pictures/", "documents/", "exports/"):
        keys += [o.key for o in storage.list_objects(prefix) if f"/{user_id}/" in o.key]
        keys += [p.key for p in storage.partial_uploads(prefix) if f"/{user_id}/" in p.key]
    return keys


def every_kind_of_data(app, client, auth, username="zoe"):
    made = give_everything(app, client, auth, username)
    account = made["account"]
    assert client.post(EXPORT, headers=account.headers).status_code == 202
    assert client.get(EXPORT, headers=account.headers).json["status"] == "ready"
    with app.app_context():  # an email about the account its queue never got (Redis down)
        db.session.add(
            OutboxJob(
                name="eleva.services.emails.notify_password_changed",
                arguments=f'{{"user_id": {account.id}}}',
                queue=jobs.EMAIL_QUEUE,
                user_id=account.id,
                created_at=datetime.now(UTC),
            )
        )
        db.session.commit()
    # A write killed midway: a partial file beside the documents.
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    (root / f"documents/{account.id}/.{'d' * 32}.partial").write_bytes(b"half")
    return made


def test_nothing_of_an_erased_account_remains_and_it_can_register_again(app, client, auth):
    keep = auth.account("grace")
    kept_doc = upload(client, keep, make_subject(client, keep), PDF, "kept.pdf").json["id"]
    made = every_kind_of_data(app, client, auth, "zoe")
    account = made["account"]
    assert ask_erasure(client, account).status_code == 202
    with app.app_context():
        owned = owned_rows(account.id)
        # Every table holds some of the account's rows: every kind of data is here.
        assert set(owned) == set(db.metadata.tables), set(db.metadata.tables) - set(owned)
        assert stored_under(account.id)
        db.session.rollback()
    make_due(app, account.id)

    dry = erase_due(app, "--dry-run")
    assert "1 account(s) to erase" in dry and f"would erase zoe (id {account.id}" in dry
    assert "documents 4" in dry and "Dry run: nothing erased." in dry
    assert user_exists(app, account.id)

    output = erase_due(app)
    assert "erased zoe" in output and "Erased 1 account(s)." in output
    with app.app_context():
        assert remaining(owned, account.id) == {}
        assert stored_under(account.id) == []
        last = [m for m in mail.outbox() if m.to == [account.email]][-1]
    assert last.subject == "Your Eléva account is being erased"

    # Another account is untouched.
    assert client.get(f"/api/v1/documents/{kept_doc}", headers=keep.headers).status_code == 200
    # The same email and username register again: a new account, with nothing old.
    again = auth.register("zoe")
    assert again.status_code == 201, again.json
    fresh = auth.account("zoe")
    assert client.get("/api/v1/subjects/", headers=fresh.headers).json == []
    assert_error_shape(client.get(EXPORT, headers=fresh.headers), 404)


def test_only_accounts_whose_time_has_come_are_erased(app, client, auth):
    due, later = auth.account("ada"), auth.account("grace")
    ask_erasure(client, due)
    ask_erasure(client, later)
    make_due(app, due.id)
    output = erase_due(app)
    assert "1 account(s) to erase" in output
    assert not user_exists(app, due.id) and user_exists(app, later.id)


# -- resumable: faults midway -----------------------------------------------------------


def fail_documents_deletion(monkeypatch, backend_class):
    original = backend_class.delete_prefix

    def failing(self, prefix):
        if prefix.startswith("documents/"):
            raise StorageError("storage is down")
        return original(self, prefix)

    monkeypatch.setattr(backend_class, "delete_prefix", failing)


def test_storage_down_midway_leaves_it_marked_and_the_next_run_finishes(
    app, client, auth, monkeypatch
):
    made = every_kind_of_data(app, client, auth, "zoe")
    account = made["account"]
    ask_erasure(client, account)
    token = cancel_token(app, account.email)
    with app.app_context():
        owned = owned_rows(account.id)
        db.session.rollback()
    make_due(app, account.id)
    fail_documents_deletion(monkeypatch, LocalBackend)

    output = erase_due(app, code=1)
    assert "not finished: storage is down" in output and "run this command again" in output
    assert user_exists(app, account.id)
    root = Path(app.config["LOCAL_STORAGE_PATH"])
    assert not (root / f"profile-pictures/{account.id}").exists()  # begun…
    assert any((root / f"documents/{account.id}").iterdir())  # …not finished
    with app.app_context():
        assert db.session.scalar(select(Erasure.started_at)) is not None
        assert not db.session.get(User, account.id).is_active
    # Begun: no way back, and no way in.
    assert_error_shape(client.post(CANCEL, json={"token": token}), 422)
    assert_error_shape(auth.login("zoe"), 403)
    assert "begun, to finish" in erase_due(app, "--dry-run")

    monkeypatch.undo()  # storage is back
    assert "erased zoe" in erase_due(app)
    with app.app_context():
        assert remaining(owned, account.id) == {}
        assert stored_under(account.id) == []
        last_emails = [
            m for m in mail.outbox() if m.subject == "Your Eléva account is being erased"
        ]
    assert len(last_emails) == 1  # sent by the first run, not again


@pytest.mark.config(**S3_CONFIG)
def test_s3_storage_down_midway_then_finished(app, client, auth, aws, monkeypatch):
    account = auth.account()
    subject = make_subject(client, account)
    upload(client, account, subject, PDF, "a.pdf")
    client.put(
        f"{ME}/picture",
        headers=account.headers,
        data={"file": (io.BytesIO(photo((40, 40))), "me.jpg")},
        content_type="multipart/form-data",
    )
    # An upload of theirs never completed (a process killed midway).
    aws.create_multipart_upload(Bucket=BUCKET, Key=f"documents/{account.id}/x")
    ask_erasure(client, account)
    make_due(app, account.id)
    fail_documents_deletion(monkeypatch, S3Backend)
    erase_due(app, code=1)
    assert user_exists(app, account.id)
    monkeypatch.undo()
    erase_due(app)
    assert not user_exists(app, account.id)
    keys = aws.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert keys == []
    assert aws.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_export_finishing_after_the_erasure_began_stores_nothing(app, client, auth, monkeypatch):
    """The export job's last step finds its export failed (the erasure's first step)
    and deletes the archive it just stored."""
    account = auth.account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    original = LocalBackend.save_stream

    def then_the_erasure_begins(self, key, fileobj, content_type, *, sequential=False):
        original(self, key, fileobj, content_type, sequential=sequential)
        if key.startswith("exports/"):
            db.session.execute(update(Export).values(status="failed"))
            db.session.commit()

    monkeypatch.setattr(LocalBackend, "save_stream", then_the_erasure_begins)
    client.post(EXPORT, headers=account.headers)
    with app.app_context():
        assert list(storage.list_objects("exports/")) == []
        assert db.session.scalar(select(Export.status)) == "failed"


# -- the operator's purge: the same code ------------------------------------------------


def test_purge_erases_everything_now_without_the_last_email(app, client, auth):
    made = every_kind_of_data(app, client, auth, "zoe")
    account = made["account"]
    with app.app_context():
        owned = owned_rows(account.id)
        before = len(mail.outbox())
        db.session.rollback()
    result = app.test_cli_runner().invoke(args=["users", "purge", "zoe", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Purged zoe" in result.output
    with app.app_context():
        assert remaining(owned, account.id) == {}
        assert stored_under(account.id) == []
        assert len(mail.outbox()) == before


def test_a_purge_stopped_by_storage_is_finished_by_erase_due(app, client, auth, monkeypatch):
    account = auth.account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    fail_documents_deletion(monkeypatch, LocalBackend)
    result = app.test_cli_runner().invoke(args=["users", "purge", "ada", "--yes"])
    assert result.exit_code == 1
    assert "marked for erasure" in result.output
    assert_error_shape(auth.login("ada"), 403)
    monkeypatch.undo()
    assert "erased ada" in erase_due(app)
    assert not user_exists(app, account.id)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Document)) == 0


# -- the worker: the hourly job, and the email through a real SMTP server ---------------


def test_the_hourly_job_erases_what_is_due_and_schedules_its_next_run(worker_app):
    app = worker_app(ERASURE_GRACE_DAYS=0)
    client = app.test_client()
    account = AuthActions(client).account()
    upload(client, account, make_subject(client, account), PDF, "a.pdf")
    assert ask_erasure(client, account).status_code == 202
    with app.app_context():
        scheduled = ScheduledJobRegistry(queue=jobs.queue())
        assert erasure.schedule_next_run() and erasure.schedule_next_run()
        (first,) = scheduled.get_job_ids()  # asked twice: scheduled once
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        assert first == f"eleva-erase-due-{hour:%Y%m%d%H}"
        jobs.enqueue(erasure.erase_due_job)  # the hour has come
        jobs.work(burst=True, worker_class=SimpleWorker)
        assert not user_exists(app, account.id)
        assert scheduled.get_job_ids() == [first]  # the next run, still scheduled once
        assert list(storage.list_objects(f"documents/{account.id}/")) == []


def test_the_erasure_email_through_a_real_worker_and_smtp_server(worker_app, smtp_server):
    host, port, inbox = smtp_server
    app = worker_app(MAIL_BACKEND="smtp", MAIL_SERVER=host, MAIL_PORT=port)
    client = app.test_client()
    auth = AuthActions(client)
    account = auth.account()
    assert ask_erasure(client, account).status_code == 202
    with app.app_context():
        jobs.work(burst=True)
    (message,) = [m for m in inbox.messages if "will be erased" in m["Subject"]]
    assert message["To"] == account.email
    link = re.search(
        r"http://localhost:5173/cancel-erasure\?token=([A-Za-z0-9_-]+)",
        message.get_body(("plain",)).get_content(),
    )
    assert client.post(CANCEL, json={"token": link.group(1)}).status_code == 204
    assert auth.login("ada").status_code == 200


def test_with_the_queue_down_asking_is_503_and_changes_nothing(app, client, auth):
    account = auth.account()
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with app.app_context():
        jobs.init_app(app)
    assert_error_shape(client.post(EXPORT, headers=account.headers), 503)
    assert_error_shape(ask_erasure(client, account), 503)
    with app.app_context():
        assert db.session.get(User, account.id).is_active
        assert db.session.scalar(select(func.count()).select_from(Erasure)) == 0
        assert db.session.scalar(select(func.count()).select_from(Export)) == 0


def test_the_spec_documents_the_privacy_routes(client):
    spec = client.get("/openapi.json").json
    paths = spec["paths"]
    assert {"202", "401", "429", "503"} <= set(paths[f"{ME}/export"]["post"]["responses"])
    assert {"200", "401", "404"} <= set(paths[f"{ME}/export"]["get"]["responses"])
    assert {"200", "401", "404", "503"} <= set(paths[f"{ME}/export/download"]["get"]["responses"])
    assert {"204", "422"} <= set(paths[CANCEL]["post"]["responses"])
    delete_me = paths[ME]["delete"]
    assert {"202", "204", "422", "429"} <= set(delete_me["responses"])
    body = delete_me["requestBody"]["content"]["application/json"]["schema"]
    assert "erase" in body["properties"]  # request bodies are inline in the spec
