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
from tests.conftest import make_config

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
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"  # production needs a shared counter store
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
    config = load_config(
        {
            "ELEVA_ENV": "production",
            "SECRET_KEY": STRONG,
            "JWT_SECRET_KEY": STRONG_JWT,
            "RATELIMIT_STORAGE_URI": "memory://",  # explicitly: see tests/test_abuse.py
        }
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
