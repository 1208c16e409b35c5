"""Operations (contract v1.2): /metrics, JSON logs, error reports to Sentry, the job
worker's one line and count per job, the readable development emails, the demo data,
and the spec's optional fields. Over real HTTP, with gunicorn's workers and the job
worker: tests/slow/test_operations.py."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from eleva import create_app
from eleva.data import jobs, metrics
from eleva.data.db import db
from eleva.data.models import Document, Note, User
from eleva.http import logs
from tests.conftest import PASSWORD, assert_error_shape, make_config

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-token-for-tests"
NOTE_ROUTE = "/api/v1/notes/<int(min=1, max=2147483647):note_id>"
# An app of its own, on SQLite in memory whatever TEST_DATABASE_URL says.
IN_MEMORY = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}
# What a request to Sentry's test carries (here, far from the code whose source lines an
# event quotes around a frame).
PERSONAL = {
    "email": "ada.lovelace@example.com",
    "password": "correct horse battery",
    "path": "path-token-0123456789abcdef",
    "query": "query-token-abcdef",
    "bearer": "header-token-abcdef",
    "cookie": "cookie-token-abcdef",
    "csrf": "csrf-token-abcdef",
    "address": "203.0.113.7",
}


def ok_job(**_kwargs) -> None:
    """A job that succeeds."""


def failing_job(**_kwargs) -> None:
    raise ConnectionError("refused secret-looking-value")


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# -- /metrics ------------------------------------------------------------------------------


def test_metrics_are_off_unless_a_token_is_set(client):
    assert_error_shape(client.get("/metrics"), 404)


@pytest.mark.config(METRICS_TOKEN=METRICS_TOKEN)
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"]
)
def test_metrics_need_the_token(client, header):
    headers = {"Authorization": header} if header else {}
    assert_error_shape(client.get("/metrics", headers=headers), 401)


@pytest.mark.config(METRICS_TOKEN=METRICS_TOKEN)
def test_requests_are_counted_and_timed_by_route_never_by_raw_path(client, user):
    before = scrape(client)
    for note_id in (1, 2, 3):
        client.get(f"/api/v1/notes/{note_id}", headers=user.headers)
    client.get(f"/no-such-page/{uuid.uuid4().hex}")
    client.open("/health", method="BREW")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eleva_http_requests_total", method="GET", route=NOTE_ROUTE, status="404") == 3
    assert delta("eleva_http_request_duration_seconds_count", method="GET", route=NOTE_ROUTE) == 3
    assert delta("eleva_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    # No rule matched the method: a 405 is unmatched too.
    assert (
        delta("eleva_http_requests_total", method="other", route="<unmatched>", status="405") == 1
    )
    routes = {dict(labels).get("route") for _name, labels in after}
    assert not any(route and ("/notes/1" in route or "no-such-page" in route) for route in routes)
    assert ("eleva_db_pool_connections_open", frozenset()) in after
    assert ("eleva_db_pool_connections_in_use", frozenset()) in after


@pytest.mark.config(METRICS_TOKEN=METRICS_TOKEN)
def test_jobs_run_in_the_web_process_are_counted_there(app, client):
    before = scrape(client)
    with app.app_context():
        jobs.enqueue(ok_job)
        jobs.enqueue(failing_job)  # JOB_RETRIES (3) retries, then it gives up
    after = scrape(client)
    name = f"{__name__}.ok_job"
    failing = f"{__name__}.failing_job"
    assert (
        value(after, "eleva_jobs_total", job=name, outcome="succeeded")
        - value(before, "eleva_jobs_total", job=name, outcome="succeeded")
        == 1
    )
    assert (
        value(after, "eleva_jobs_total", job=failing, outcome="retrying")
        - value(before, "eleva_jobs_total", job=failing, outcome="retrying")
        == 3
    )
    assert (
        value(after, "eleva_jobs_total", job=failing, outcome="failed")
        - value(before, "eleva_jobs_total", job=failing, outcome="failed")
        == 1
    )
    assert value(after, "eleva_job_queue_depth", queue=jobs.QUEUE_NAME) == 0


def test_the_job_workers_counts_and_the_queue_depth_come_from_redis(redis_url):
    app = create_app(
        make_config(METRICS_TOKEN=METRICS_TOKEN),
        {**IN_MEMORY, "REDIS_URL": redis_url, "JOB_RETRIES": 0},
    )
    with app.app_context():
        jobs.init_app(app)
        for _ in range(3):
            jobs.enqueue(ok_job)
        jobs.enqueue(failing_job)
        waiting = scrape(app.test_client())
        from rq import SimpleWorker

        jobs.work(burst=True, worker_class=SimpleWorker)  # counts as the worker process does
        done = scrape(app.test_client())
    assert value(waiting, "eleva_job_queue_depth", queue="eleva") == 4
    assert value(done, "eleva_job_queue_depth", queue="eleva") == 0
    assert value(done, "eleva_jobs_total", job=f"{__name__}.ok_job", outcome="succeeded") == 3
    assert value(done, "eleva_jobs_total", job=f"{__name__}.failing_job", outcome="failed") == 1


def test_a_scrape_answers_while_redis_is_away(caplog):
    app = create_app(
        make_config(METRICS_TOKEN=METRICS_TOKEN),
        {**IN_MEMORY, "REDIS_URL": "redis://127.0.0.1:1/11"},
    )
    with app.app_context():
        jobs.init_app(app)
        samples = scrape(app.test_client())
    assert not any(name.startswith("eleva_job") for name, _ in samples)
    assert any(name == "eleva_http_requests_total" for name, _ in samples)
    assert "job metrics unavailable" in caplog.text


# -- the job worker: one line per attempt, and waiting for Redis ---------------------------


def test_every_job_attempt_is_one_line_with_its_fields(app, caplog):
    caplog.set_level(logging.INFO, logger="eleva.jobs")
    with app.app_context():
        jobs.enqueue(ok_job, to="ada@example.com")
        jobs.enqueue(failing_job, token="s3cret-token-value")
    records = [r for r in caplog.records if r.name == "eleva.jobs"]
    fields = [r.fields for r in records]
    assert [f["outcome"] for f in fields] == [
        "succeeded",
        "retrying",
        "retrying",
        "retrying",
        "failed",
    ]
    assert [f["attempt"] for f in fields] == [1, 1, 2, 3, 4]
    assert {f["job"] for f in fields} == {f"{__name__}.ok_job", f"{__name__}.failing_job"}
    assert all(isinstance(f["duration_ms"], float) for f in fields)
    assert "succeeded in" in records[0].getMessage()
    assert "giving up" in records[-1].getMessage() and "ConnectionError" in records[-1].getMessage()
    for secret in ("ada@example.com", "s3cret-token-value", "secret-looking-value"):
        assert secret not in caplog.text


def test_the_worker_waits_for_redis_one_line_per_try_backing_off(app, caplog):
    import redis

    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 7:
            raise KeyboardInterrupt

    conn = redis.Redis.from_url("redis://:hunter2-password@127.0.0.1:1/11")
    with pytest.raises(KeyboardInterrupt):
        jobs.wait_for_redis(conn, sleep=sleep)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    lines = [r.getMessage() for r in caplog.records if "waiting for Redis" in r.getMessage()]
    assert len(lines) == 7
    assert lines[0] == (
        "waiting for Redis at 127.0.0.1:1/11 (try 1: ConnectionError); next try in 1 s"
    )
    assert "hunter2" not in caplog.text


def test_the_worker_command_waits_for_redis_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELEVA_", "REDIS_"))}
    env.update(
        ELEVA_ENV="development",
        REDIS_URL="redis://127.0.0.1:1/11",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "jobs", "worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text().count("waiting for Redis") < 3:  # tries at 0, 1 and 3 s
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    output = log_path.read_text()
    lines = [line for line in output.splitlines() if line.strip()]
    assert all("waiting for Redis at 127.0.0.1:1/11" in line for line in lines), output
    assert "Traceback" not in output


# -- JSON logs -----------------------------------------------------------------------------


@pytest.fixture
def json_log():
    """The app's log handler writing JSON to a buffer; text again afterwards."""
    buffer = io.StringIO()
    yield buffer
    logs.configure_logging("INFO", "text")


def _eleva_handler() -> logging.StreamHandler:
    for handler in logging.getLogger().handlers + logging.getLogger("eleva").handlers:
        if getattr(handler, "_eleva", False):
            return handler  # type: ignore[return-value]
    raise AssertionError("no eleva handler")


def test_json_logs_are_one_object_per_line_with_the_request_id(json_log, caplog):
    app = create_app(make_config(LOG_FORMAT="json"), IN_MEMORY)

    @app.get("/_test/crash")
    def crash():
        raise RuntimeError("boom")

    _eleva_handler().setStream(json_log)
    response = app.test_client().get("/_test/crash", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 500
    with app.app_context():
        jobs.enqueue(ok_job)
    lines = json_log.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    crash_line = next(e for e in entries if e["message"] == "unhandled exception")
    assert list(crash_line)[:5] == ["ts", "level", "logger", "message", "request_id"]
    assert crash_line["request_id"] == "trace-42" and crash_line["level"] == "ERROR"
    assert "RuntimeError: boom" in crash_line["exc"] and "Traceback" in crash_line["exc"]
    job_line = next(e for e in entries if e["logger"] == "eleva.jobs")
    assert job_line["job"] == f"{__name__}.ok_job" and job_line["outcome"] == "succeeded"
    assert {"job_id", "duration_ms", "attempt"} <= set(job_line)


def test_gunicorns_access_line_names_the_route_in_text_and_json(monkeypatch):
    from gunicorn.config import Config as GunicornConfig

    from eleva.http.serverlog import Logger

    token = "eyJrIjoiZG9jdW1lbnRzLzEvYWJjIn0.Zz9-aB.c2lnbmF0dXJl-of-a-signed-url"
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/v1/documents/files/{token}",
        "RAW_URI": f"/api/v1/documents/files/{token}?download=1",
        "QUERY_STRING": "download=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        logs.ROUTE_KEY: "/api/v1/documents/files/<token>",
        logs.REQUEST_ID_KEY: "rid-1",
        logs.USER_ID_KEY: 7,
    }
    resp = SimpleNamespace(status="200 OK", headers=[], sent=12)
    req = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {token}")])
    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '"%(r)s" %(U)s %(q)s %({raw_uri}e)s %({authorization}i)s %(s)s')
    for fmt in ("text", "json"):
        monkeypatch.setenv("LOG_FORMAT", fmt)
        logger = Logger(cfg)
        stream = io.StringIO()
        for handler in logger.access_log.handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]
        logger.access(resp, req, environ, timedelta(milliseconds=12.3))
        line = stream.getvalue().strip()
        assert token not in line and "download=1" not in line, line
        if fmt == "text":
            assert line.startswith('"GET /api/v1/documents/files/<token> HTTP/1.1" '), line
            # Elsewhere the text line keeps the path, ids and all.
            stream.truncate(0)
            stream.seek(0)
            note = {**environ, "PATH_INFO": "/api/v1/notes/5", logs.ROUTE_KEY: NOTE_ROUTE}
            logger.access(resp, req, note, timedelta(milliseconds=1))
            assert stream.getvalue().startswith('"GET /api/v1/notes/5 HTTP/1.1" '), (
                stream.getvalue()
            )
        else:
            assert json.loads(line) | {"ts": "-"} == {
                "ts": "-",
                "level": "INFO",
                "logger": "gunicorn.access",
                "message": "GET /api/v1/documents/files/<token> 200",
                "request_id": "rid-1",
                "method": "GET",
                "route": "/api/v1/documents/files/<token>",
                "status": 200,
                "duration_ms": 12.3,
                "user_id": 7,
            }


# -- Sentry --------------------------------------------------------------------------------


class FakeSentry(BaseHTTPRequestHandler):
    """A DSN endpoint that keeps what it receives (envelopes, as sent: maybe compressed)."""

    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        FakeSentry.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def sentry_dsn():
    import sentry_sdk

    FakeSentry.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSentry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.init()  # no DSN: a client that sends nothing, for the tests after this one
    server.shutdown()


def test_an_error_reaches_sentry_with_the_request_id_and_no_personal_data(sentry_dsn):
    import sentry_sdk

    app = create_app(make_config(SENTRY_DSN=sentry_dsn), IN_MEMORY)
    with app.app_context():
        db.create_all()

    @app.post("/_test/crash/<token>")
    def crash(token):
        from flask import request

        email = request.get_json()["email"]  # a local variable a traceback would show
        raise RuntimeError(f"boom\nDETAIL: Key (email)=({email}) already exists.")

    response = app.test_client().post(
        f"/_test/crash/{PERSONAL['path']}?reset_token={PERSONAL['query']}",
        json={"email": PERSONAL["email"], "password": PERSONAL["password"]},
        headers={
            "Authorization": f"Bearer {PERSONAL['bearer']}",
            "Cookie": f"eleva_refresh={PERSONAL['cookie']}",
            "X-CSRF-Token": PERSONAL["csrf"],
            "X-Forwarded-For": PERSONAL["address"],
            "X-Request-ID": "sentry-trace-7",
        },
    )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    raw = b"\n".join(FakeSentry.received)
    events = [
        json.loads(line)
        for line in raw.splitlines()
        if line.startswith(b"{") and b'"exception"' in line
    ]
    assert events, raw[:2000]
    event = events[0]
    assert event["tags"]["request_id"] == "sentry-trace-7"
    assert event["exception"]["values"][-1]["value"] == "boom"
    assert event["request"]["url"].endswith("/_test/crash/<token>")
    for name, secret in PERSONAL.items():
        assert secret.encode() not in raw, name


# -- a newcomer's first hour ---------------------------------------------------------------


def test_development_emails_are_printed_readably_with_where_to_use_the_token(capsys):
    app = create_app(make_config(MAIL_BACKEND="console"), IN_MEMORY)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    body = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    capsys.readouterr()
    client.post("/api/v1/auth/password/forgot", json={"email": "ada@example.com"})
    printed = capsys.readouterr().out
    assert "Subject: Reset your Eléva password" in printed
    assert "MIME-Version" not in printed and "Content-Transfer-Encoding" not in printed
    link = next(line for line in printed.splitlines() if "/reset-password?token=" in line)
    token = link.rsplit("token=", 1)[1].strip()
    assert f'POST /api/v1/auth/password/reset with {{"token": "{token}"' in printed
    reset = {"token": token, "new_password": "a brand new passphrase"}
    assert client.post("/api/v1/auth/password/reset", json=reset).status_code == 204


def test_seed_gives_the_demo_user_notes_and_a_document_and_users_means_in_all(app, runner):
    result = runner.invoke(args=["seed", "--users", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("Log in as demo with the password")
    again = runner.invoke(args=["seed", "--users", "3"])
    assert again.exit_code == 0, again.output
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(User)) == 3
        demo = db.session.scalars(select(User).where(User.username == "demo")).one()
        notes = db.session.scalars(select(Note).where(Note.owner_id == demo.id)).all()
        documents = db.session.scalars(select(Document).where(Document.owner_id == demo.id)).all()
    assert len(notes) == 3 and {n.title for n in notes} >= {"Eigenvalues"}
    assert [d.filename for d in documents] == ["titration-lab.txt"]
    assert documents[0].text_status == "ready"  # extracted by the job, in process here


def test_request_fields_with_a_default_are_optional_for_generated_clients(client):
    spec = client.get("/openapi.json").json

    def body_schema(path: str) -> dict:
        return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    login = body_schema("/api/v1/auth/login")
    note = body_schema("/api/v1/subjects/{subject_id}/notes")
    # Inline, not a component: generators read a component's default as "always present".
    assert "$ref" not in login and "$ref" not in note
    assert login["properties"]["refresh_in_cookie"]["default"] is False
    assert "refresh_in_cookie" not in login["required"]
    assert note["properties"]["body"]["default"] == ""
    assert note["required"] == ["title"]
    assert "TokenPair" in spec["components"]["schemas"]  # responses stay components


def test_a_failed_statement_never_carries_its_parameters(app):
    with app.app_context():
        with pytest.raises(sa_exc.DBAPIError) as failed:
            db.session.execute(
                text("SELECT * FROM no_such_table WHERE x = :x"),
                {"x": "the extracted text of a document"},
            )
        db.session.rollback()
    assert "the extracted text" not in str(failed.value)
    assert "hidden" in str(failed.value)


def test_metrics_collector_reads_nothing_at_registration():
    assert metrics.Jobs(None, {"eleva": None}).describe() == []


def test_the_development_servers_request_line_hides_tokens_and_query_strings():
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '127.0.0.1 - - [now] "%s" %s %s',  # werkzeug.serving's request line
        ("GET /api/v1/documents/files/eyJrIjoiZG9jdW1lbnRz.Zz9aB.c2ln?x=y HTTP/1.1", "200", "-"),
        None,
    )
    logs.RequestLineFilter().filter(record)
    assert (
        record.getMessage() == '127.0.0.1 - - [now] "GET /api/v1/documents/files/… HTTP/1.1" 200 -'
    )


def test_gunicorns_error_lines_hide_the_requests_uri(monkeypatch, caplog):
    from gunicorn.config import Config as GunicornConfig

    from eleva.http.serverlog import Logger

    monkeypatch.setenv("LOG_FORMAT", "text")
    logger = Logger(GunicornConfig())
    logger.error_log.propagate = True  # to caplog
    token = "eyJrIjoiZG9jdW1lbnRzLzEvYWJjIn0.Zz9-aB.c2lnbmF0dXJl"
    try:
        raise OSError("connection reset")
    except OSError:
        logger.exception("Error handling request %s", f"/api/v1/documents/files/{token}?a=b")
    assert "Error handling request /api/v1/documents/files/…" in caplog.text
    assert token not in caplog.text and "a=b" not in caplog.text


def test_a_job_whose_process_died_gets_its_line_and_count(app, caplog):
    from datetime import UTC, datetime

    caplog.set_level(logging.INFO, logger="eleva.jobs")
    job = SimpleNamespace(
        id="job-1",
        args=("eleva.services.document_text.extract_document_text", {"document_id": 1}),
        description="eleva.services.document_text.extract_document_text",
        started_at=datetime.now(UTC) - timedelta(seconds=2),
        retries_left=3,
    )
    with app.app_context():
        jobs._work_horse_killed(job, 123, 9, None)  # killed by SIGKILL: status 9
    (record,) = [r for r in caplog.records if r.name == "eleva.jobs"]
    assert record.fields["outcome"] == "retrying" and record.fields["attempt"] == 1
    assert record.fields["duration_ms"] >= 2000
    assert "its process died by signal 9" in record.getMessage()
