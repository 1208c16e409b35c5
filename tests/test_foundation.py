"""The skeleton: configuration, one error shape, health, docs, CORS, headers, request ids."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from flask_smorest import abort
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from config import (
    DEV_JWT_SECRET_KEY,
    DEV_SECRET_KEY,
    ConfigError,
    DevelopmentConfig,
    ProductionConfig,
    database_url,
    load_config,
)
from config import (
    TestingConfig as _TestingConfig,  # not a test class
)
from eleva import create_app
from eleva.errors import Conflict, NotFound
from eleva.extensions import db
from eleva.models import Subject, User
from tests.conftest import assert_error_shape, make_config

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("development", DevelopmentConfig),
        ("testing", _TestingConfig),
        ("production", ProductionConfig),
    ],
)
def test_eleva_env_picks_the_config_class(name, cls):
    env = {"ELEVA_ENV": name, "SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG_JWT}
    assert type(load_config(env)) is cls


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="ELEVA_ENV"):
        load_config({"ELEVA_ENV": "staging"})


def test_defaults_follow_the_contract():
    config = DevelopmentConfig({})
    assert (
        config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
        and "instance" in config.SQLALCHEMY_DATABASE_URI
    )
    assert config.CORS_ORIGINS == ["http://localhost:5173", "http://localhost:3000"]
    assert config.STORAGE_BACKEND == "local"
    assert config.MAX_UPLOAD_MB == 10
    assert config.JWT_ACCESS_TOKEN_EXPIRES.total_seconds() == 30 * 60
    assert config.JWT_REFRESH_TOKEN_EXPIRES.days == 7
    assert config.BCRYPT_ROUNDS == 12
    assert config.RATELIMIT_ENABLED is True
    assert config.RATELIMIT_STORAGE_URI == "memory://"
    assert (
        config.RATELIMIT_LOGIN,
        config.RATELIMIT_REGISTER,
        config.RATELIMIT_REFRESH,
        config.RATELIMIT_UPLOAD,
    ) == (
        "10 per minute",
        "5 per minute",
        "30 per minute",
        "10 per minute",
    )
    assert config.TRUSTED_PROXY_COUNT == 0
    assert config.API_DOCS_ENABLED is True
    assert config.LOG_LEVEL == "INFO"


def test_testing_config_lowers_bcrypt_cost_and_disables_limits():
    config = _TestingConfig({})
    assert config.BCRYPT_ROUNDS == 4
    assert config.RATELIMIT_ENABLED is False


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@db.example.com:5432/eleva",
            "postgresql+psycopg://u:p@db.example.com:5432/eleva",
        ),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_paas_database_urls_map_to_psycopg3(given, expected):
    assert database_url(given) == expected
    assert expected == DevelopmentConfig({"DATABASE_URL": given}).SQLALCHEMY_DATABASE_URI


def test_postgres_gets_pool_safety_settings():
    options = ProductionConfig(
        {"DATABASE_URL": "postgres://u@h/d", "SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG_JWT}
    ).SQLALCHEMY_ENGINE_OPTIONS
    # Liveness is checked at checkout without a round trip (tests/test_database.py).
    assert options["pool_pre_ping"] is False
    assert options["pool_recycle"] > 0
    assert options["connect_args"]["tcp_user_timeout"] > 0
    assert "statement_timeout" in options["connect_args"]["options"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is missing"),
        ({"SECRET_KEY": STRONG}, "JWT_SECRET_KEY is missing"),
        (
            {"SECRET_KEY": DEV_SECRET_KEY, "JWT_SECRET_KEY": STRONG_JWT},
            "SECRET_KEY is the development default",
        ),
        (
            {"SECRET_KEY": STRONG, "JWT_SECRET_KEY": DEV_JWT_SECRET_KEY},
            "JWT_SECRET_KEY is the development default",
        ),
        ({"SECRET_KEY": "short", "JWT_SECRET_KEY": STRONG_JWT}, "SECRET_KEY is too short"),
        ({"SECRET_KEY": STRONG, "JWT_SECRET_KEY": "x" * 31}, "JWT_SECRET_KEY is too short"),
        ({"SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG}, "must differ"),
    ],
)
def test_production_refuses_weak_secrets(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"ELEVA_ENV": "production", **env})


def test_production_with_strong_secrets_starts_without_docs_and_with_hsts():
    config = load_config(
        {"ELEVA_ENV": "production", "SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG_JWT}
    )
    assert config.API_DOCS_ENABLED is False
    app = create_app(
        config, {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404


def test_wsgi_refuses_to_start_in_production_with_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    env.update(
        {"ELEVA_ENV": "production", "SECRET_KEY": DEV_SECRET_KEY, "JWT_SECRET_KEY": STRONG_JWT}
    )
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "eleva: refusing to start: SECRET_KEY is the development default: set a random production value"
    ]


@pytest.mark.parametrize(
    "origins", ["*", "", " , ", "http://localhost:5173,*", "https://.*\\.example\\.com"]
)
def test_cors_refuses_wildcards_and_patterns(origins):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        DevelopmentConfig({"CORS_ORIGINS": origins})


@pytest.mark.parametrize(
    ("name", "value"),
    [("RATELIMIT_ENABLED", "maybe"), ("BCRYPT_ROUNDS", "twelve"), ("BCRYPT_ROUNDS", "3")],
)
def test_malformed_settings_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=name):
        DevelopmentConfig({name: value})


def test_extensions_are_initialised_in_the_factory(app):
    # (Flask-Limiter registers itself only when enabled: see the rate-limit tests.)
    for name in ("sqlalchemy", "migrate", "flask-jwt-extended", "flask-smorest", "eleva.storage"):
        assert name in app.extensions
    other = create_app(make_config())
    assert other.extensions["sqlalchemy"] is app.extensions["sqlalchemy"]  # one bare instance...
    assert other.config is not app.config  # ...and one config per app


# -- one error shape ---------------------------------------------------------------------

ALL_ERROR_STATUSES = [400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428, 429, 500, 503]


@pytest.fixture
def failing_app():
    """An app with routes that fail in every way a real route can."""
    app = create_app(
        make_config(), {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )

    @app.get("/_test/abort/<int:code>")
    def aborting(code):
        abort(code)

    @app.get("/_test/crash")
    def crash():
        raise RuntimeError("secret internals: password=hunter2 at /srv/eleva")

    @app.get("/_test/domain")
    def domain():
        raise NotFound("No such thing.")

    @app.get("/_test/conflict")
    def conflict():
        raise Conflict.taken("email", "email address")

    return app


@pytest.mark.parametrize("status", ALL_ERROR_STATUSES)
def test_every_error_status_has_the_contract_shape(failing_app, status):
    response = failing_app.test_client().get(f"/_test/abort/{status}")
    body = assert_error_shape(response, status)
    assert body["status"]  # the reason phrase, e.g. "Unprocessable Entity"


def test_domain_errors_have_the_shape(failing_app):
    client = failing_app.test_client()
    assert assert_error_shape(client.get("/_test/domain"), 404)["message"] == "No such thing."
    body = assert_error_shape(client.get("/_test/conflict"), 409)
    assert body["errors"] == {"json": {"email": ["That email address is already taken."]}}


def test_unhandled_exception_is_a_500_without_internals(failing_app, caplog):
    with caplog.at_level(logging.ERROR, logger="eleva"):
        response = failing_app.test_client().get("/_test/crash")
    body = assert_error_shape(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "Traceback" not in text
    assert body["message"] == "An unexpected error occurred."
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records), (
        "traceback not logged"
    )


def test_unknown_url_is_json_404(client):
    body = assert_error_shape(client.get("/no/such/page"), 404)
    assert body["status"] == "Not Found"


def test_wrong_method_is_json_405_with_allow(client):
    response = client.delete("/health")
    assert_error_shape(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "OPTIONS"}


def test_body_over_the_limit_is_json_413(client):
    response = client.post(
        "/api/v1/auth/login",
        data=b"{" + b" " * (100 * 1024) + b"}",
        content_type="application/json",
    )
    assert_error_shape(response, 413)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"login": "a", "password": ',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"login": 1' + b"1" * 5000 + b"}",
    ],
    ids=["malformed", "truncated", "invalid-utf8", "deeply-nested", "huge-integer"],
)
def test_unparseable_json_is_400(client, body):
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    if response.status_code == 413:  # the nested payload may exceed the JSON body limit
        assert_error_shape(response, 413)
    else:
        assert_error_shape(response, 400)


@pytest.mark.config(MAX_CONTENT_LENGTH=1024 * 1024)
def test_deeply_nested_json_within_the_limit_is_400(client):
    body = b"[" * 200_000 + b"]" * 200_000
    assert_error_shape(
        client.post("/api/v1/auth/login", data=body, content_type="application/json"), 400
    )


def test_non_json_body_is_415(client):
    response = client.post(
        "/api/v1/auth/login",
        data="login=a&password=b",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error_shape(response, 415)


def test_validation_error_lists_fields_by_location(client):
    body = assert_error_shape(client.post("/api/v1/auth/login", json={"login": "a"}), 422)
    assert body["errors"] == {"json": {"password": ["Missing data for required field."]}}


# -- health, docs ------------------------------------------------------------------------


def test_health_answers_without_touching_the_database(app, client, count_queries):
    with count_queries() as statements:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert statements == []


def test_ready_checks_the_database(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


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


# -- CORS and headers --------------------------------------------------------------------


def test_cors_allows_configured_origins_with_credentials(client):
    response = client.get("/health", headers={"Origin": "http://localhost:5173"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {
        h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert exposed >= {"x-pagination", "etag", "location", "retry-after"}


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


# -- request ids and the access log ------------------------------------------------------


def test_request_id_is_generated_and_echoed(client):
    generated = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (
        client.get("/health", headers={"X-Request-ID": "spa-42.abc"}).headers["X-Request-ID"]
        == "spa-42.abc"
    )


def test_forked_workers_make_different_request_ids():
    from eleva.web import new_request_id

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


def test_the_apps_request_line_is_for_debugging(client, caplog):
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


# -- models ------------------------------------------------------------------------------


def test_timestamps_are_utc_aware_and_updated_at_moves(app):
    with app.app_context():
        user = User(email="t@example.com", username="tim", password_hash="x")
        db.session.add(user)
        db.session.commit()
        subject = Subject(owner_id=user.id, name="Physics")
        db.session.add(subject)
        db.session.commit()
        created, updated = subject.created_at, subject.updated_at
        db.session.expire_all()
        reloaded = db.session.get(Subject, subject.id)
        assert (
            reloaded.created_at.tzinfo is not None
            and reloaded.created_at.utcoffset().total_seconds() == 0
        )
        assert reloaded.created_at == created
        time.sleep(0.002)
        reloaded.name = "Quantum physics"
        db.session.commit()
        db.session.expire_all()
        again = db.session.scalar(select(Subject))
        assert again.updated_at > updated
        assert again.created_at == created
        assert again.updated_at.tzinfo == UTC or again.updated_at.utcoffset().total_seconds() == 0


def test_timestamps_serialise_as_iso8601_with_offset(client, user):
    created = user.body["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", created), created
    assert json.loads(json.dumps(user.body))["updated_at"].endswith("+00:00")


def test_pagination_metadata_is_smorests():
    """Blueprint._make_pagination_metadata skips smorest's per-request schema only."""
    import flask_smorest

    from eleva.api import Blueprint

    for item_count in (0, 1, 19, 20, 21, 100, 101):
        for page_size in (1, 20, 100):
            for page in (1, 2, 5, 6, 10**6):
                ours = Blueprint._make_pagination_metadata(page, page_size, item_count)
                theirs = flask_smorest.Blueprint._make_pagination_metadata(
                    page, page_size, item_count
                )
                assert ours == theirs, (page, page_size, item_count)


# -- the JSON encoder (eleva.web.JSONProvider) -------------------------------------------


@dataclasses.dataclass
class _Point:
    x: int
    label: str


JSON_PAYLOADS = [
    {"b": 1, "a": [1, 2.5, None, True, False], "c": {"z": "", "y": {"x": []}}},
    [{"id": 3, "name": "Physics"}, {"id": 1, "name": "Maths", "description": None}],
    {"errors": {"json": {"items": {2: ["Not a valid string."], 10: ["Missing."]}}}},
    {"form": MultiDict([("a", "1"), ("a", "2")])},
    {"lone surrogate": "\ud800"},
    {"when": datetime(2026, 11, 26, 9, 30, tzinfo=UTC), "day": date(2026, 11, 26)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("1.10")},
    {"point": _Point(1, "a"), "floats": [0.1, 1e16, -0.0, 123456.789]},
    {"big": 2**70, "small": -(2**63)},  # beyond orjson's 64 bits: json.dumps takes over
    "a string",
    None,
]


@pytest.mark.parametrize("payload", JSON_PAYLOADS)
@pytest.mark.parametrize("debug", [False, True])
def test_json_responses_are_what_flasks_own_encoder_gives(app, payload, debug):
    from flask.json.provider import DefaultJSONProvider

    app.debug = debug
    with app.app_context():
        ours = app.json.response(payload)
        flasks = DefaultJSONProvider(app).response(payload)
    assert ours.mimetype == flasks.mimetype == "application/json"
    assert json.loads(ours.get_data()) == json.loads(flasks.get_data())
    if not any(isinstance(v, float) for v in _leaves(payload)):  # float spelling may differ
        assert ours.get_data() == flasks.get_data()


def test_json_responses_write_non_ascii_text_as_utf8(app):
    with app.app_context():
        body = app.json.response({"name": "Élève 学生 🎓"}).get_data()
    assert body == '{"name":"Élève 学生 🎓"}\n'.encode()


def test_json_responses_refuse_what_flask_refuses(app):
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"set": {1, 2}})


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif dataclasses.is_dataclass(value):
        yield from _leaves(dataclasses.asdict(value))
    else:
        yield value
