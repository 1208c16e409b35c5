"""Configuration: defaults from the contract, production refusing unsafe settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
from tests.conftest import PRODUCTION_ENV, make_config

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
    env = {**PRODUCTION_ENV, "ELEVA_ENV": name}
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
    # The contract's limits are production's (and the tests'); development's are looser.
    for limited in (ProductionConfig(PRODUCTION_ENV), _TestingConfig({})):
        assert (
            limited.RATELIMIT_LOGIN,
            limited.RATELIMIT_REGISTER,
            limited.RATELIMIT_REFRESH,
            limited.RATELIMIT_UPLOAD,
            limited.RATELIMIT_PASSWORD_FORGOT,
            limited.RATELIMIT_VERIFY_RESEND,
            limited.RATELIMIT_PASSWORD_CHECK,
            limited.RATELIMIT_EMAIL_CHANGE,
        ) == (
            "10 per minute",
            "5 per minute",
            "30 per minute",
            "10 per minute",
            "5 per hour",
            "3 per hour",
            "5 per 15 minutes",
            "10 per hour",
        )
    assert config.LOG_FORMAT == "text" and config.METRICS_TOKEN is None
    assert config.SENTRY_DSN is None
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
        {**PRODUCTION_ENV, "DATABASE_URL": "postgres://u@h/d"}
    ).SQLALCHEMY_ENGINE_OPTIONS
    # Liveness is checked at checkout without a round trip (tests/test_database.py).
    assert options["pool_pre_ping"] is False
    assert options["pool_recycle"] > 0
    assert options["connect_args"]["tcp_user_timeout"] > 0
    # Nothing a transaction pooler would lose: no startup options, no prepared statements
    # (timeouts are set per transaction, tests/test_database.py).
    assert "options" not in options["connect_args"]
    assert options["connect_args"]["prepare_threshold"] is None


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
    config = load_config(PRODUCTION_ENV)
    assert config.API_DOCS_ENABLED is False
    assert config.LOG_FORMAT == "json"
    app = create_app(
        config, {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404


def _clean_env(**extra: str) -> dict[str, str]:
    names = ("ELEVA_", "SECRET_KEY", "JWT_", "DATABASE_URL", "CORS_", "STORAGE_", "FRONTEND_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(extra)
    return env


PROBLEMS = [
    "eleva: refusing to start: SECRET_KEY is the development default: set a random production value",
    "eleva: refusing to start: DATABASE_URL is missing: production would use a SQLite file in "
    "instance/, lost at the next deploy; set it to your PostgreSQL database",
    "eleva: refusing to start: STORAGE_BACKEND is not set: files would go to the local disk, "
    "lost at the next deploy on a PaaS; set STORAGE_BACKEND=s3 (or STORAGE_BACKEND=local for a "
    "persistent disk)",
    "eleva: refusing to start: CORS_ORIGINS names local origins (http://localhost:5173, "
    "http://localhost:3000): list the SPA's public origins",
    "eleva: refusing to start: FRONTEND_URL is http://localhost:5173: links in emails would point "
    "there; set the SPA's public origin",
    "eleva: refusing to start: Rate limits need a shared counter store in production: set "
    "REDIS_URL or RATELIMIT_STORAGE_URI (RATELIMIT_STORAGE_URI=memory:// if you mean it)",
]


@pytest.mark.parametrize(
    "command",
    [["-c", "import wsgi"], ["-m", "flask", "db", "current"]],
    ids=["wsgi (gunicorn)", "flask CLI"],
)
def test_production_refuses_to_start_naming_every_problem_once_one_line_each(command):
    env = _clean_env(ELEVA_ENV="production", SECRET_KEY=DEV_SECRET_KEY, JWT_SECRET_KEY=STRONG_JWT)
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == PROBLEMS
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is missing"),
        ({"DATABASE_URL": "sqlite:////srv/eleva.db"}, "DATABASE_URL is SQLite"),
        ({"STORAGE_BACKEND": ""}, "STORAGE_BACKEND is not set"),
        ({"CORS_ORIGINS": ""}, "CORS_ORIGINS"),
        ({"CORS_ORIGINS": "https://app.example.com,http://localhost:5173"}, "local origins"),
        ({"CORS_ORIGINS": "http://127.0.0.1:3000"}, "local origins"),
        ({"FRONTEND_URL": ""}, "FRONTEND_URL is http://localhost:5173"),
        ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND=console"),
        ({"RATELIMIT_STORAGE_URI": ""}, "shared counter store"),
        ({"SECRET_KEY": "x" * 40, "JWT_SECRET_KEY": "x" * 40}, "must differ"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json"),
    ],
)
def test_production_refuses_each_unsafe_setting_by_name(change, named):
    with pytest.raises(ConfigError) as refused:
        load_config({**PRODUCTION_ENV, **change})
    (problem,) = refused.value.problems
    assert named in problem


def test_local_storage_is_accepted_in_production_when_asked_for_explicitly():
    assert load_config(PRODUCTION_ENV).STORAGE_BACKEND == "local"  # set in the environment
    assert load_config({**PRODUCTION_ENV, "STORAGE_BACKEND": "s3", "S3_BUCKET": "b"})


def test_malformed_settings_are_all_named_at_once():
    with pytest.raises(ConfigError) as refused:
        DevelopmentConfig(
            {"BCRYPT_ROUNDS": "twelve", "RATELIMIT_ENABLED": "maybe", "MAX_JSON_KB": "0"}
        )
    assert [p.split()[0] for p in refused.value.problems] == [
        "BCRYPT_ROUNDS",
        "MAX_JSON_KB",
        "RATELIMIT_ENABLED",
    ]


def test_log_format_follows_the_environment():
    assert DevelopmentConfig({}).LOG_FORMAT == "text"
    assert DevelopmentConfig({"LOG_FORMAT": "JSON"}).LOG_FORMAT == "json"
    assert ProductionConfig(PRODUCTION_ENV).LOG_FORMAT == "json"
    assert ProductionConfig({**PRODUCTION_ENV, "LOG_FORMAT": "text"}).LOG_FORMAT == "text"


def test_development_limits_leave_room_to_try_things():
    config = DevelopmentConfig({})
    assert config.RATELIMIT_REGISTER == "50 per minute"
    assert config.RATELIMIT_LOGIN == "100 per minute"
    assert DevelopmentConfig({"RATELIMIT_REGISTER": "2 per minute"}).RATELIMIT_REGISTER == (
        "2 per minute"
    )


@pytest.mark.parametrize("url", ["sqlite://", "postgresql://u@h/d"])
def test_sql_parameters_never_reach_an_error_message(url):
    assert DevelopmentConfig({"DATABASE_URL": url}).SQLALCHEMY_ENGINE_OPTIONS["hide_parameters"]


@pytest.mark.parametrize(
    "origins", ["*", "", " , ", "http://localhost:5173,*", "https://.*\\.example\\.com"]
)
def test_cors_refuses_wildcards_and_patterns(origins):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        DevelopmentConfig({"CORS_ORIGINS": origins})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATELIMIT_ENABLED", "maybe"),
        ("BCRYPT_ROUNDS", "twelve"),
        ("BCRYPT_ROUNDS", "3"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "0"),
    ],
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
