"""Health and readiness, and the OpenAPI documentation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eleva import create_app
from tests.conftest import assert_error_shape, make_config, mark_migrated

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- health, docs ------------------------------------------------------------------------


def test_health_answers_without_touching_the_database(app, client, count_queries):
    with count_queries() as statements:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert statements == []


def test_ready_checks_the_database(app, client):
    mark_migrated(app)
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_is_503_while_the_database_lacks_migrations(app, client):
    from sqlalchemy import text

    from eleva.data import migrations
    from eleva.data.db import db

    mark_migrated(app)

    def stamp(*revisions: str) -> None:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM alembic_version"))
            for revision in revisions:
                conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})

    try:
        stamp("0009_search_vectors")  # one migration behind
        body = assert_error_shape(client.get("/health/ready"), 503)
        assert "flask db upgrade" in body["message"]
        assert client.get("/health").status_code == 200
        stamp()  # never migrated at all
        assert_error_shape(client.get("/health/ready"), 503)
        stamp("9999_from_the_future")  # ahead: the code alone was rolled back
        assert client.get("/health/ready").status_code == 200
    finally:
        stamp(*migrations.history()[0])
    assert client.get("/health/ready").status_code == 200


def test_the_migrations_head_is_read_once_at_start_not_per_request(app, client, monkeypatch):
    from alembic.script import ScriptDirectory

    mark_migrated(app)
    calls = []
    monkeypatch.setattr(ScriptDirectory, "get_heads", lambda self: calls.append(1) or ())
    assert client.get("/health/ready").status_code == 200
    assert calls == []


def test_root_points_at_the_docs_and_the_health_checks(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.json == {
        "name": "Eléva API",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
        "ready": "/health/ready",
    }
    assert client.get(response.json["docs"]).status_code == 200


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:1/nothing", "sqlite:////dev/null/not-a-dir/eleva.db"],
    ids=["postgres-down", "sqlite-unopenable"],
)
def test_ready_is_503_in_the_error_shape_when_the_database_is_down(url):
    app = create_app(
        make_config(), {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )
    started = time.monotonic()
    response = app.test_client().get("/health/ready")
    assert time.monotonic() - started < 10
    body = assert_error_shape(response, 503)
    assert "database" in body["message"].lower()
    assert app.test_client().get("/health").status_code == 200


def test_api_requests_are_503_when_the_database_is_down():
    app = create_app(
        make_config(),
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:1/x",
            "SQLALCHEMY_ENGINE_OPTIONS": {},
        },
    )
    response = app.test_client().post(
        "/api/v1/auth/login", json={"login": "ada", "password": "whatever-it-is"}
    )
    assert_error_shape(response, 503)
    assert response.headers["Retry-After"]


def test_openapi_spec_describes_the_api(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec["info"]["title"] == "Eléva API"
    assert spec["info"]["version"] == "v1"
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    for path in (
        "/health",
        "/health/ready",
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/subjects/",
    ):
        assert path in spec["paths"], path


def test_every_operation_documents_its_errors(client):
    spec = client.get("/openapi.json").json
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            if "requestBody" in operation or query:
                assert "422" in responses, (method, path)
            assert operation.get("summary"), (method, path)


def test_swagger_ui_is_served_with_the_bearer_scheme(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert b"swagger-ui" in response.data
    assert "script-src" in response.headers["Content-Security-Policy"]
    spec = client.get("/openapi.json").json
    secured = [
        op
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and op.get("security")
    ]
    assert secured and all(op["security"] == [{"bearerAuth": []}] for op in secured)


@pytest.mark.config(API_DOCS_ENABLED=False, OPENAPI_URL_PREFIX=None)
def test_docs_can_be_turned_off(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404


def test_the_spec_says_what_reset_verify_and_password_change_check(client):
    """Issue 32: a client generating data from the spec meets the API's own rules."""
    import re

    paths = client.get("/openapi.json").json["paths"]

    def body(path: str, method: str = "post") -> dict:  # request bodies are inline
        return paths[path][method]["requestBody"]["content"]["application/json"]["schema"]

    schemas = {
        "PasswordReset": body("/api/v1/auth/password/reset"),
        "EmailVerify": body("/api/v1/auth/email/verify"),
        "EmailRevert": body("/api/v1/auth/email/revert"),
        "PasswordChange": body("/api/v1/users/me/password", "put"),
    }
    for name in ("PasswordReset", "EmailVerify", "EmailRevert"):
        token = schemas[name]["properties"]["token"]
        assert (token["minLength"], token["maxLength"]) == (43, 43)
        assert re.fullmatch(token["pattern"], "Xq3vN0bYfH2kLr8sT1uW5zA7cE9gJ4mP6oR2tV8yB0d")
        assert not re.fullmatch(token["pattern"], "x" * 42)
    for name, field in (("PasswordReset", "new_password"), ("PasswordChange", "new_password")):
        prop = schemas[name]["properties"][field]
        assert (prop["minLength"], prop["maxLength"]) == (8, 128)
        assert "common" in prop["description"] and "username" in prop["description"]
    current = schemas["PasswordChange"]["properties"]["current_password"]
    assert "422" in current["description"]


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/api/v1/auth/password/reset", "x" * 42),
        ("/api/v1/auth/email/verify", "x" * 44),
        ("/api/v1/auth/email/revert", "not+url/safe=43charactersxxxxxxxxxxxxxxxxx"),
    ],
)
def test_a_token_the_spec_refuses_is_refused(client, path, token):
    body = {"token": token, **({"new_password": "a fine passphrase"} if "reset" in path else {})}
    response = client.post(path, json=body)
    assert response.status_code == 422 and "token" in response.json["errors"]["json"]
