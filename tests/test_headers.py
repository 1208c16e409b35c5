"""What every response carries: CORS for the SPA, security headers, request ids."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from tests.conftest import mark_migrated

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- CORS and headers --------------------------------------------------------------------


def test_cors_allows_configured_origins_with_credentials(client):
    response = client.get("/health", headers={"Origin": "http://localhost:5173"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert exposed >= {"x-pagination", "etag", "location", "retry-after"}


@pytest.mark.parametrize("origin", [None, "http://localhost:5173", "https://evil.example"])
def test_api_answers_vary_by_origin_once(client, origin):
    headers = {"Origin": origin} if origin else {}
    response = client.get("/health", headers=headers)
    vary = [v.strip().lower() for v in response.headers.get("Vary", "").split(",")]
    assert vary.count("origin") == 1, response.headers


def test_cors_preflight_allows_the_spa_headers(client):
    response = client.options(
        "/api/v1/subjects/1",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match, If-None-Match",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed >= {"authorization", "content-type", "if-match", "if-none-match"}
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "http://localhost:5173.evil.com",
        "null",
        "http://localhost:51730",
    ],
)
def test_cors_sends_nothing_to_other_origins(client, origin):
    response = client.get("/health", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize("path", ["/health", "/no/such/page", "/api/v1/users/me", "/openapi.json"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert "Strict-Transport-Security" not in response.headers  # production only


def test_security_headers_on_a_500(failing_app):
    response = failing_app.test_client().get("/_test/crash")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_store_on_auth_and_authenticated_responses(client, user):
    assert (
        client.get("/api/v1/users/me", headers=user.headers).headers["Cache-Control"] == "no-store"
    )
    assert (
        client.post("/api/v1/auth/login", json={"login": "x", "password": "y"}).headers[
            "Cache-Control"
        ]
        == "no-store"
    )
    assert "no-store" not in client.get("/health").headers.get("Cache-Control", "")


def _through_response_headers(path: str, app_headers: list, **environ: str) -> dict:
    """What ResponseHeaders makes of an app's headers, as the server receives them."""
    from werkzeug.test import EnvironBuilder

    from eleva.http.web import ResponseHeaders

    def inner(_environ, start_response):
        start_response("200 OK", list(app_headers))
        return [b"{}"]

    sent: list = []
    middleware = ResponseHeaders(inner, hsts=True, docs_paths=frozenset({"/docs"}))
    environ_ = EnvironBuilder(path=path).get_environ()
    environ_.update(environ)
    body = middleware(environ_, lambda status, headers, exc_info=None: sent.extend(headers))
    assert list(body) == [b"{}"]
    names = [name.lower() for name, _ in sent]
    return {"names": names, **{name.lower(): value for name, value in sent}}


def test_the_apps_own_headers_are_replaced_or_merged_not_doubled():
    app_headers = [
        ("Content-Type", "application/json"),
        ("Vary", "Accept-Encoding"),
        ("Cache-Control", "public, max-age=60"),
        ("Content-Security-Policy", "default-src *"),
        ("X-Request-ID", "from-the-view"),
    ]
    sent = _through_response_headers(
        "/api/v1/subjects/", app_headers, HTTP_AUTHORIZATION="Bearer x"
    )
    for name in ("vary", "cache-control", "content-security-policy", "x-request-id"):
        assert sent["names"].count(name) == 1, sent
    assert sent["vary"] == "Accept-Encoding, Origin"
    assert sent["cache-control"] == "no-store"
    assert sent["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert re.fullmatch(r"[0-9a-f]{32}", sent["x-request-id"])
    assert sent["strict-transport-security"].startswith("max-age=")


def test_without_credentials_the_apps_cache_control_and_media_vary_stand():
    app_headers = [("Cache-Control", "public, max-age=31536000, immutable"), ("Vary", "Accept")]
    media = _through_response_headers("/media/a.webp", app_headers)
    assert media["cache-control"] == "public, max-age=31536000, immutable"
    assert media["vary"] == "Accept"  # stored files answer every origin the same
    api = _through_response_headers("/health", [("Vary", "Origin")])
    assert api["names"].count("vary") == 1 and api["vary"] == "Origin"
    assert "script-src" in _through_response_headers("/docs", [])["content-security-policy"]


# -- request ids and the access log ------------------------------------------------------


def test_request_id_is_generated_and_echoed(client):
    generated = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (
        client.get("/health", headers={"X-Request-ID": "spa-42.abc"}).headers["X-Request-ID"]
        == "spa-42.abc"
    )


def test_forked_workers_make_different_request_ids():
    from eleva.http.web import new_request_id

    ids = {new_request_id()}
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker, forked as gunicorn forks them
            os.write(write, new_request_id().encode())
            os._exit(0)
        os.waitpid(pid, 0)
        ids.add(os.read(read, 64).decode())
        os.close(read)
        os.close(write)
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


@pytest.mark.parametrize("bad", ["has spaces", "x" * 200, "tab\there", "<script>"])
def test_unsafe_request_ids_are_replaced(client, bad):
    assert client.get("/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"] != bad


def test_the_apps_request_line_is_for_debugging(app, client, caplog):
    mark_migrated(app)
    # The access log is the server's (gunicorn.conf.py); the app's line only at DEBUG.
    with caplog.at_level(logging.INFO, logger="eleva.request"):
        client.get("/health")
    assert [r for r in caplog.records if r.name == "eleva.request"] == []
    with caplog.at_level(logging.DEBUG, logger="eleva.request"):
        client.get("/health/ready?token=should-not-be-logged", headers={"X-Request-ID": "trace-1"})
    lines = [r for r in caplog.records if r.name == "eleva.request"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert re.fullmatch(r"GET /health/ready 200 \d+\.\dms", message), message
    assert lines[0].request_id == "trace-1"
    assert "should-not-be-logged" not in message


def test_the_apps_request_line_names_the_route_not_a_signed_urls_token(client, caplog):
    token = "eyJrIjoiZG9jdW1lbnRzLzEvYWJjIn0.ZZZZZZ.signature-of-the-token"
    with caplog.at_level(logging.DEBUG, logger="eleva.request"):
        client.get(f"/api/v1/documents/files/{token}")
        client.get(f"/api/v1/documents/files/{token}/extra")  # no rule matches
    lines = [r.getMessage() for r in caplog.records if r.name == "eleva.request"]
    assert lines[0].startswith("GET /api/v1/documents/files/<token> 404 "), lines
    assert lines[1].startswith("GET /api/v1/documents/files/…/extra 404 "), lines
    assert all(token not in line for line in lines)
