"""Eléva's configuration: the one place that reads the environment.

``ELEVA_ENV`` picks a class (development, testing, production), built from a mapping
(``os.environ`` by default, so that tests can pass a plain dict). The variables and their
defaults are the API contract's Configuration table; `.env.example` lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Values that only ever make sense on a developer's machine. Production refuses them.
DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"  # noqa: S105
DEV_JWT_SECRET_KEY = "dev-only-jwt-secret-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_BYTES = 32

# An origin is scheme://host[:port] and nothing else: flask-cors treats strings holding
# regex characters as patterns, and patterns are how origin checks get bypassed.
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_PUBLIC_BASE_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(RuntimeError):
    """The environment describes a configuration the app must not start with: every
    problem found, in ``problems`` (one sentence each)."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _seconds_list(env: Mapping[str, str], name: str, default: list[int]) -> list[int]:
    """Comma-separated whole seconds, e.g. ``10,60,300``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        values = [int(part) for part in raw.split(",")]
    except ValueError:
        raise ConfigError(
            f"{name} must be whole seconds separated by commas, not {raw!r}"
        ) from None
    if any(value < 0 for value in values):
        raise ConfigError(f"{name} must not be negative: {raw!r}")
    return values


# Production refuses to fall back to these defaults (ProductionConfig.unsafe).
EXPLICIT_IN_PRODUCTION = ("DATABASE_URL", "STORAGE_BACKEND", "CORS_ORIGINS")
LOG_FORMATS = ("text", "json")


def log_format(env: Mapping[str, str], default: str | None = None) -> str:
    """``LOG_FORMAT``: ``json`` by default in production, ``text`` elsewhere (also read by
    the gunicorn logger, eleva.http.logs, before any app exists)."""
    if default is None:
        production = env.get("ELEVA_ENV", "").strip().lower() == "production"
        default = "json" if production else "text"
    value = (env.get("LOG_FORMAT") or default).strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be text or json, not {value!r}")
    return value


def database_url(raw: str) -> str:
    """Map the URLs PaaS hand out (``postgres://``) to SQLAlchemy's psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def cors_origins(raw: str) -> list[str]:
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    if not origins or "*" in origins:
        raise ConfigError(
            "CORS_ORIGINS must list explicit origins: credentials are allowed, "
            "so '*' or an empty list is refused"
        )
    for origin in origins:
        if not _ORIGIN_RE.match(origin):
            raise ConfigError(
                f"CORS_ORIGINS entry {origin!r} is not an origin like https://app.example.com"
            )
    return origins


def _origin(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip().rstrip("/")
    if not _ORIGIN_RE.match(value):
        raise ConfigError(f"{name} must be an origin like https://app.example.com, not {value!r}")
    return value


def public_base_url(raw: str) -> str | None:
    url = raw.strip().rstrip("/")
    if not url:
        return None
    if not _PUBLIC_BASE_URL_RE.match(url):
        raise ConfigError(
            f"PUBLIC_BASE_URL {raw!r} is not an origin like https://api.example.com "
            "(optionally with a path)"
        )
    return url


class Config:
    """Settings shared by every environment, read from ``env``."""

    ENV_NAME = "base"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        # Every problem with the environment, so that one start names them all (an
        # operator fixing one per restart on a PaaS takes many deploys).
        self.problems: list[str] = []
        # What production must see set on purpose, not fall back to a default.
        self._explicit = {name for name in EXPLICIT_IN_PRODUCTION if env.get(name, "").strip()}
        self._raw_secrets = {
            "SECRET_KEY": env.get("SECRET_KEY", ""),
            "JWT_SECRET_KEY": env.get("JWT_SECRET_KEY", ""),
        }
        self.ELEVA_ENV = self.ENV_NAME
        self.SECRET_KEY = env.get("SECRET_KEY") or DEV_SECRET_KEY
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or DEV_JWT_SECRET_KEY
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO").upper()
        # Operations (contract v1.2): JSON lines for a log pipeline, metrics, errors.
        self.LOG_FORMAT = self._check("text", log_format, env, self.LOG_FORMAT_DEFAULT)
        # /metrics is off (404) unless a token guards it.
        self.METRICS_TOKEN = env.get("METRICS_TOKEN", "").strip() or None
        # Set by gunicorn.conf.py for the server's workers (prometheus_client's
        # multiprocess mode); unset, the process counts alone (`flask run`, tests).
        self.PROMETHEUS_MULTIPROC_DIR = env.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.SENTRY_DSN = env.get("SENTRY_DSN", "").strip() or None

        # Database -------------------------------------------------------------------
        default_db = f"sqlite:///{INSTANCE_DIR / 'eleva.sqlite3'}"
        self.SQLALCHEMY_DATABASE_URI = database_url(env.get("DATABASE_URL") or default_db)
        self.SQLALCHEMY_ENGINE_OPTIONS = self.engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        # PostgreSQL, set by every transaction for itself (eleva.data.db): no statement
        # outlives gunicorn's worker timeout, no lock wait most of it.
        self.DATABASE_STATEMENT_TIMEOUT_MS = self._int(
            env, "DATABASE_STATEMENT_TIMEOUT_MS", 15000, minimum=1
        )
        self.DATABASE_LOCK_TIMEOUT_MS = self._int(env, "DATABASE_LOCK_TIMEOUT_MS", 10000, minimum=1)

        # Tokens -----------------------------------------------------------------------
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(
            minutes=self._int(env, "JWT_ACCESS_TOKEN_MINUTES", 30, minimum=1)
        )
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(
            days=self._int(env, "JWT_REFRESH_TOKEN_DAYS", 7, minimum=1)
        )
        self.JWT_ALGORITHM = "HS256"
        self.JWT_DECODE_ALGORITHMS = ["HS256"]  # pinned: never trust the token's header
        # What flask-jwt-extended reads by itself: headers only (access tokens never come
        # from a cookie or the query string; eleva.http.auth reads the refresh cookie).
        self.JWT_TOKEN_LOCATION = ["headers"]
        # Every token carries a csrf claim; only the refresh cookie's is ever checked.
        self.JWT_COOKIE_CSRF_PROTECT = True
        self.JWT_ENCODE_ISSUER = self.JWT_DECODE_ISSUER = env.get("JWT_ISSUER", "eleva")
        self.JWT_ENCODE_AUDIENCE = self.JWT_DECODE_AUDIENCE = env.get("JWT_AUDIENCE", "eleva-api")
        self.JWT_ENCODE_NBF = True
        self.BCRYPT_ROUNDS = self._int(env, "BCRYPT_ROUNDS", 12, minimum=4)

        # HTTP -------------------------------------------------------------------------
        self.CORS_ORIGINS = self._check(
            [],
            cors_origins,
            env.get("CORS_ORIGINS", "http://localhost:5173,http://localhost:3000"),
        )
        self.TRUSTED_PROXY_COUNT = self._int(env, "TRUSTED_PROXY_COUNT", 0)
        self.MAX_UPLOAD_MB = self._int(env, "MAX_UPLOAD_MB", 10, minimum=1)
        # Every body but an upload is small JSON: a tight global limit, raised per
        # request for the upload endpoint only.
        self.MAX_CONTENT_LENGTH = self._int(env, "MAX_JSON_KB", 64, minimum=1) * 1024
        self.API_DOCS_ENABLED = self._bool(env, "API_DOCS_ENABLED", self.DOCS_DEFAULT)
        # The API's public origin, for the URLs it hands out (pictures under /media/):
        # never a client's Host header. Unset: the request's own host in development,
        # URLs relative to the API's origin in production.
        self.PUBLIC_BASE_URL = self._check(None, public_base_url, env.get("PUBLIC_BASE_URL", ""))
        self.HSTS_ENABLED = self.ENV_NAME == "production"

        # Storage ----------------------------------------------------------------------
        self.STORAGE_BACKEND = (env.get("STORAGE_BACKEND") or "local").strip().lower()
        if self.STORAGE_BACKEND not in ("local", "s3"):
            self.problem(f"STORAGE_BACKEND must be local or s3, not {self.STORAGE_BACKEND!r}")
        # Relative to the project, not to wherever the command was started.
        self.LOCAL_STORAGE_PATH = str(
            BASE_DIR / (env.get("LOCAL_STORAGE_PATH") or "instance/media")
        )
        self.S3_BUCKET = env.get("S3_BUCKET") or None
        self.S3_REGION = env.get("S3_REGION") or None
        self.S3_ENDPOINT_URL = env.get("S3_ENDPOINT_URL") or None
        self.S3_PUBLIC_BASE_URL = env.get("S3_PUBLIC_BASE_URL") or None
        if self.STORAGE_BACKEND == "s3" and not self.S3_BUCKET:
            self.problem("STORAGE_BACKEND=s3 needs S3_BUCKET")

        # Documents (a MB is 1,048,576 bytes) ------------------------------------------
        self.DOCUMENT_MAX_MB = self._int(env, "DOCUMENT_MAX_MB", 25, minimum=1)
        self.STORAGE_QUOTA_MB = self._int(env, "STORAGE_QUOTA_MB", 500, minimum=1)
        self.DOWNLOAD_URL_SECONDS = self._int(env, "DOWNLOAD_URL_SECONDS", 300, minimum=1)

        # Rate limits ------------------------------------------------------------------
        self.RATELIMIT_ENABLED = self._bool(
            env, "RATELIMIT_ENABLED", self.RATELIMIT_DEFAULT_ENABLED
        )
        # REDIS_URL (the job queue's) is the counters' default store; production refuses
        # memory:// unless it was asked for (ProductionConfig.validate).
        self.REDIS_URL = env.get("REDIS_URL", "").strip() or None
        explicit_store = env.get("RATELIMIT_STORAGE_URI", "").strip()
        self.RATELIMIT_STORAGE_URI = explicit_store or self.REDIS_URL or "memory://"
        self._ratelimit_store_explicit = bool(explicit_store)
        if self.RATELIMIT_STORAGE_URI.startswith(("redis://", "rediss://", "redis+")):
            # Redis down or hung: a limited request fails (503) within about a second,
            # rather than waiting for the kernel or redis-py's retries with backoff.
            # limits wraps the driver's errors in its StorageError (eleva.http.errors).
            self.RATELIMIT_STORAGE_OPTIONS = {
                "socket_connect_timeout": 0.5,
                "socket_timeout": 0.5,
                "wrap_exceptions": True,
            }
        else:
            self.RATELIMIT_STORAGE_OPTIONS = {"wrap_exceptions": True}
        # RATELIMIT_PASSWORD_CHECK: PUT /users/me/password and DELETE /users/me, per user
        # (each costs a bcrypt check).
        for name, default in self.RATELIMIT_DEFAULTS.items():
            setattr(self, name, env.get(name) or default)
        # Off: Flask-Limiter would put Retry-After (and X-RateLimit-*) on every response of
        # a limited route. The 429 sets its own Retry-After (eleva.http.ratelimit).
        self.RATELIMIT_HEADERS_ENABLED = False
        self.RATELIMIT_KEY_PREFIX = "eleva"

        # Accounts: links in emails, token lifetimes, the refresh cookie -----------------
        self.FRONTEND_URL = self._check(
            "http://localhost:5173", _origin, env, "FRONTEND_URL", "http://localhost:5173"
        )
        self.PASSWORD_RESET_MINUTES = self._int(env, "PASSWORD_RESET_MINUTES", 30, minimum=1)
        self.EMAIL_VERIFY_HOURS = self._int(env, "EMAIL_VERIFY_HOURS", 48, minimum=1)
        # How long the "this wasn't me" link of an email-change notice works (and the old
        # address stays kept for the account).
        self.EMAIL_REVERT_DAYS = self._int(env, "EMAIL_REVERT_DAYS", 7, minimum=1)
        self.REFRESH_REUSE_GRACE_SECONDS = self._int(env, "REFRESH_REUSE_GRACE_SECONDS", 10)
        samesite = env.get("REFRESH_COOKIE_SAMESITE", "").strip().capitalize() or "Strict"
        if samesite not in ("Strict", "Lax", "None"):
            self.problem(f"REFRESH_COOKIE_SAMESITE must be Strict, Lax or None, not {samesite!r}")
            samesite = "Strict"
        self.REFRESH_COOKIE_SAMESITE = samesite
        # flask-jwt-extended's cookie support, for the refresh token only (the access
        # token is read from the Authorization header by eleva.http.auth, never a cookie).
        # The CSRF value is a claim of the refresh token, handed to the SPA in the body
        # (never in a cookie of its own) and required back as X-CSRF-Token.
        self.JWT_REFRESH_COOKIE_NAME = "eleva_refresh"
        self.JWT_REFRESH_COOKIE_PATH = "/api/v1/auth"
        self.JWT_COOKIE_SAMESITE = samesite
        # A browser drops a SameSite=None cookie that is not Secure.
        self.JWT_COOKIE_SECURE = self.ENV_NAME == "production" or samesite == "None"
        # SameSite=None means the SPA is on another site, where the cookie is a third-party
        # one: browsers that block those (Chromium here, Safari, Firefox's strict mode)
        # still keep it when Partitioned (CHIPS), in a jar of the SPA's site — the only
        # place the SPA ever refreshes from (tests/slow/test_browser.py). Browsers that
        # do not know the attribute ignore it.
        self.REFRESH_COOKIE_PARTITIONED = samesite == "None"
        self.JWT_CSRF_IN_COOKIES = False
        self.JWT_REFRESH_CSRF_HEADER_NAME = "X-CSRF-Token"
        self.JWT_SESSION_COOKIE = False  # Max-Age: the refresh lifetime

        # Email (Flask-Mailman) and background jobs (RQ) ------------------------------
        self.MAIL_BACKEND = env.get("MAIL_BACKEND", "").strip() or self.MAIL_BACKEND_DEFAULT
        self.MAIL_SERVER = env.get("MAIL_SERVER", "localhost")
        self.MAIL_PORT = self._int(env, "MAIL_PORT", 25, minimum=1)
        self.MAIL_USE_TLS = self._bool(env, "MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = self._bool(env, "MAIL_USE_SSL", False)
        if self.MAIL_USE_TLS and self.MAIL_USE_SSL:
            self.problem("MAIL_USE_TLS and MAIL_USE_SSL are exclusive: set one")
        self.MAIL_USERNAME = env.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = env.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = env.get("MAIL_DEFAULT_SENDER") or "Eléva <no-reply@localhost>"
        # An SMTP server that stops answering must not hold a job (or a request) forever.
        self.MAIL_TIMEOUT = self._int(env, "MAIL_TIMEOUT", 10, minimum=1)
        self.JOB_RETRIES = self._int(env, "JOB_RETRIES", 3)
        self.JOB_RETRY_INTERVALS = self._seconds_list(env, "JOB_RETRY_INTERVALS", [10, 60, 300])
        self.JOB_TIMEOUT = self._int(env, "JOB_TIMEOUT", 60, minimum=1)
        # A document's text extraction stops reading after this long (then ``failed``);
        # the worker kills a job still running TEXT_EXTRACTION_SECONDS + 30 s later.
        self.TEXT_EXTRACTION_SECONDS = self._int(env, "TEXT_EXTRACTION_SECONDS", 30, minimum=1)
        # How many of one user's documents may be in the extraction queue at a time; the
        # others wait, pending, and each extraction that ends queues its owner's next.
        self.TEXT_EXTRACTION_QUEUED = self._int(env, "TEXT_EXTRACTION_QUEUED", 3, minimum=1)
        # How much the worker's job process may grow (address space) while it reads a
        # file; past that an allocation fails and the text is failed.
        self.TEXT_EXTRACTION_MEMORY_MB = self._int(
            env, "TEXT_EXTRACTION_MEMORY_MB", 200, minimum=16
        )

        # Privacy: exports of one's data and erasure of one's account ---------------------
        # One export per EXPORT_INTERVAL_HOURS (0: no limit), counted from the last request
        # that did not fail; an archive is deleted EXPORT_KEEP_DAYS after it is ready.
        self.EXPORT_INTERVAL_HOURS = self._int(env, "EXPORT_INTERVAL_HOURS", 24)
        self.EXPORT_KEEP_DAYS = self._int(env, "EXPORT_KEEP_DAYS", 7, minimum=1)
        # The worker stops an attempt at building an archive after this many seconds.
        self.EXPORT_JOB_TIMEOUT = self._int(env, "EXPORT_JOB_TIMEOUT", 1800, minimum=1)
        # Days between an erasure request and the erasure (0: the next `erase-due`).
        self.ERASURE_GRACE_DAYS = self._int(env, "ERASURE_GRACE_DAYS", 30)

        # OpenAPI (flask-smorest) ------------------------------------------------------
        self.API_TITLE = "Eléva API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/" if self.API_DOCS_ENABLED else None
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        # Served by the app (eleva.http.api, the pinned flask-swagger-ui package): no CDN.
        self.OPENAPI_SWAGGER_UI_URL = "/docs/assets/"
        self.OPENAPI_SWAGGER_UI_CONFIG = {"persistAuthorization": False}

        self.problems += self.unsafe()
        if self.problems:
            raise ConfigError(*self.problems)

    def _check(self, fallback: Any, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``read(*args)``, or ``fallback`` with its problem noted."""
        try:
            return read(*args, **kwargs)
        except ConfigError as exc:
            self.problems += exc.problems
            return fallback

    def _int(self, env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
        value: int = self._check(default, _int, env, name, default, minimum=minimum)
        return value

    def _bool(self, env: Mapping[str, str], name: str, default: bool) -> bool:
        value: bool = self._check(default, _bool, env, name, default)
        return value

    def _seconds_list(self, env: Mapping[str, str], name: str, default: list[int]) -> list[int]:
        value: list[int] = self._check(default, _seconds_list, env, name, default)
        return value

    def problem(self, message: str) -> None:
        self.problems.append(message)

    DOCS_DEFAULT = True
    LOG_FORMAT_DEFAULT = "text"
    RATELIMIT_DEFAULT_ENABLED = True
    # The contract's table: production's and the tests'.
    RATELIMIT_DEFAULTS: ClassVar[dict[str, str]] = {
        "RATELIMIT_LOGIN": "10 per minute",
        "RATELIMIT_REGISTER": "5 per minute",
        "RATELIMIT_REFRESH": "30 per minute",
        "RATELIMIT_UPLOAD": "10 per minute",
        "RATELIMIT_PASSWORD_FORGOT": "5 per hour",
        "RATELIMIT_VERIFY_RESEND": "3 per hour",
        "RATELIMIT_PASSWORD_CHECK": "5 per 15 minutes",
        "RATELIMIT_EMAIL_CHANGE": "10 per hour",
        # Emails to one address the account has not verified (verification links, and
        # notices and resets while unverified), whichever accounts ask: past it they are
        # not sent (logged).
        "RATELIMIT_EMAIL_RECIPIENT": "5 per hour",
        # Note creations and changes, per user.
        "RATELIMIT_NOTE_WRITE": "60 per minute",
    }
    MAIL_BACKEND_DEFAULT = "console"  # development: each email printed to the log

    @staticmethod
    def engine_options(url: str) -> dict:
        # A failed statement's message and traceback never carry its parameters (a
        # document's text, an email address): they end up in logs and error reports.
        if url.startswith("sqlite"):
            return {"hide_parameters": True}
        return {
            "hide_parameters": True,
            # A connection killed by the server or a failover is noticed before use, by
            # eleva.data.db's checkout hook: no ping round trip on every request.
            "pool_pre_ping": False,
            # Under most PaaS idle-connection reapers (often 10–30 min).
            "pool_recycle": 300,
            "pool_timeout": 10,
            "connect_args": {
                "connect_timeout": 5,
                # Notice a silently vanished server (network blackhole) within ~40 s,
                # instead of waiting for the kernel's two-hour default.
                "keepalives": 1,
                "keepalives_idle": 20,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": 20000,
                # No server-side prepared statements: behind a transaction pooler the next
                # execution may reach a server connection that never prepared it (or one
                # where another client's statement took the name).
                "prepare_threshold": None,
            },
        }

    def unsafe(self) -> list[str]:
        """What this environment must not start with (production overrides)."""
        return []

    def validate(self) -> None:
        """Refuse settings that are unsafe in this environment, all in one ConfigError."""
        problems = self.unsafe()
        if problems:
            raise ConfigError(*problems)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    # A person trying the API by hand (signing up a few accounts, mistyping passwords)
    # should not meet production's limits; tests and production keep the contract's.
    RATELIMIT_DEFAULTS: ClassVar[dict[str, str]] = {
        "RATELIMIT_LOGIN": "100 per minute",
        "RATELIMIT_REGISTER": "50 per minute",
        "RATELIMIT_REFRESH": "300 per minute",
        "RATELIMIT_UPLOAD": "100 per minute",
        "RATELIMIT_PASSWORD_FORGOT": "50 per hour",
        "RATELIMIT_VERIFY_RESEND": "30 per hour",
        "RATELIMIT_PASSWORD_CHECK": "50 per 15 minutes",
        "RATELIMIT_EMAIL_CHANGE": "100 per hour",
        "RATELIMIT_EMAIL_RECIPIENT": "50 per hour",
        "RATELIMIT_NOTE_WRITE": "600 per minute",
    }


class TestingConfig(Config):
    ENV_NAME = "testing"
    MAIL_BACKEND_DEFAULT = "locmem"  # kept in memory: tests read the outbox
    RATELIMIT_DEFAULT_ENABLED = False  # tests that exercise limits turn them on

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        super().__init__(env)
        self.TESTING = True
        self.SQLALCHEMY_DATABASE_URI = database_url(env.get("TEST_DATABASE_URL") or "sqlite://")
        self.SQLALCHEMY_ENGINE_OPTIONS = self.engine_options(self.SQLALCHEMY_DATABASE_URI)
        # The cost only matters against attackers; tests run thousands of hashes.
        self.BCRYPT_ROUNDS = self._int(env, "BCRYPT_ROUNDS", 4, minimum=4)


class ProductionConfig(Config):
    ENV_NAME = "production"
    DOCS_DEFAULT = False
    MAIL_BACKEND_DEFAULT = "smtp"
    LOG_FORMAT_DEFAULT = "json"

    def unsafe(self) -> list[str]:
        """Everything that would lose data, leak secrets or weaken security on a PaaS."""
        problems = []
        for name, value in self._raw_secrets.items():
            if not value:
                problems.append(
                    f"{name} is missing: set it to a random value of at least {MIN_SECRET_BYTES} bytes"
                )
            elif value in (DEV_SECRET_KEY, DEV_JWT_SECRET_KEY):
                problems.append(f"{name} is the development default: set a random production value")
            elif len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(f"{name} is too short: use at least {MIN_SECRET_BYTES} bytes")
        if self._raw_secrets["SECRET_KEY"] and (
            self._raw_secrets["SECRET_KEY"] == self._raw_secrets["JWT_SECRET_KEY"]
        ):
            problems.append("SECRET_KEY and JWT_SECRET_KEY must differ")
        # A PaaS's disk is new at every deploy: a SQLite file or local uploads vanish.
        if "DATABASE_URL" not in self._explicit:
            problems.append(
                "DATABASE_URL is missing: production would use a SQLite file in instance/, "
                "lost at the next deploy; set it to your PostgreSQL database"
            )
        elif self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            problems.append("DATABASE_URL is SQLite: use PostgreSQL in production")
        if self.STORAGE_BACKEND == "local" and "STORAGE_BACKEND" not in self._explicit:
            problems.append(
                "STORAGE_BACKEND is not set: files would go to the local disk, lost at the "
                "next deploy on a PaaS; set STORAGE_BACKEND=s3 (or STORAGE_BACKEND=local for "
                "a persistent disk)"
            )
        local = [origin for origin in self.CORS_ORIGINS if _is_local(origin)]
        if self.CORS_ORIGINS and (local or "CORS_ORIGINS" not in self._explicit):
            problems.append(
                f"CORS_ORIGINS names local origins ({', '.join(local or self.CORS_ORIGINS)}): "
                "list the SPA's public origins"
            )
        if _is_local(self.FRONTEND_URL):
            problems.append(
                f"FRONTEND_URL is {self.FRONTEND_URL}: links in emails would point there; set "
                "the SPA's public origin"
            )
        if self.MAIL_BACKEND == "console":
            problems.append(
                "MAIL_BACKEND=console prints every email, reset links included, to the log: "
                "use smtp"
            )
        if (
            self.RATELIMIT_ENABLED
            and self.RATELIMIT_STORAGE_URI.startswith("memory://")
            and not self._ratelimit_store_explicit
        ):
            # Each worker would count alone: a limit of 10 would let 10 × workers through.
            problems.append(
                "Rate limits need a shared counter store in production: set REDIS_URL or "
                "RATELIMIT_STORAGE_URI (RATELIMIT_STORAGE_URI=memory:// if you mean it)"
            )
        return problems


def _is_local(origin: str) -> bool:
    host = origin.split("://", 1)[-1].rsplit(":", 1)[0]
    return host == "localhost" or host.endswith(".localhost") or host.startswith("127.")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build and validate the config class that ``ELEVA_ENV`` names."""
    env = os.environ if env is None else env
    name = env.get("ELEVA_ENV", "development").strip().lower()
    try:
        cls = CONFIGS[name]
    except KeyError:
        raise ConfigError(f"ELEVA_ENV must be one of {', '.join(CONFIGS)}, not {name!r}") from None
    return cls(env)  # raises every problem at once
