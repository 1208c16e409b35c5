"""Holding under abuse (issue 16): what an attacker sends, and the limits that stop them.

Spellings that must mean the same account or the same password (NFKC), forged tokens,
passwords of any content at login, and the rate limits keyed on the account.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import socket
import struct
import threading
import time
import uuid
import zlib

import jwt as pyjwt
import pytest

from config import ConfigError, load_config
from tests.conftest import PASSWORD, PRODUCTION_ENV, assert_error_shape, mark_migrated

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"


def full_width(text: str) -> str:
    """The full-width copy of ASCII text (what NFKC folds back to ASCII)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# -- item 8: password rules judged after NFKC --------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        (full_width("password123"), "too common"),
        (full_width("adalovelace"), "username"),
        (full_width("AdaLovelace"), "username"),
    ],
)
def test_a_full_width_copy_of_a_refused_password_is_refused(auth, password, problem):
    response = auth.register("adalovelace", password=password)
    body = assert_error_shape(response, 422)
    assert problem in " ".join(body["errors"]["json"]["password"])
    # And so the plain ASCII one never gets in either.
    assert auth.login("adalovelace", "password123").status_code == 401


# -- item 9: emails NFKC + lower ---------------------------------------------------------


def test_a_full_width_local_part_is_the_same_address(auth, client):
    assert auth.register("ada", email="ada@example.com").status_code == 201
    response = auth.register("ada2", email=full_width("ada") + "@example.com")
    body = assert_error_shape(response, 409)
    assert "email" in body["errors"]["json"]
    # The same account at login, whichever spelling is typed.
    assert auth.login(full_width("ADA") + "@example.com").status_code == 200


# -- item 11: a password of any content at login is 401 ----------------------------------


@pytest.mark.parametrize("password", ["nul\x00inside", "\ud800lone", "\udfff", "\x00" * 9, " "])
def test_a_password_of_any_content_at_login_is_401(auth, client, password):
    auth.register("ada")
    # json.dumps escapes them (\u0000, \ud800): valid JSON that decodes to these strings.
    assert_error_shape(auth.login("ada", password), 401)


# -- item 12: the contract's claims are required ------------------------------------------


def _good_claims(app, user_id: int, sid: str) -> dict:
    now = int(time.time())
    return {
        "sub": str(user_id), "sid": sid, "type": "access", "jti": str(uuid.uuid4()),
        "iat": now, "nbf": now, "exp": now + 600, "iss": "eleva", "aud": "eleva-api",
    }  # fmt: skip


@pytest.mark.parametrize(
    "case", ["no-exp", "exp-as-string", "no-type", "sub-beyond-64-bits", "sub-beyond-32-bits"]
)
def test_tokens_without_the_contracts_claims_are_401(app, client, user, case):
    key = app.config["JWT_SECRET_KEY"]
    options = {"verify_signature": False}
    sid = pyjwt.decode(user.access_token, options=options)["sid"]
    good = _good_claims(app, user.id, sid)
    # The well-formed one passes: the cases below fail for their one difference.
    assert client.get(ME, headers=_bearer(pyjwt.encode(good, key))).status_code == 200
    claims = {
        "no-exp": {k: v for k, v in good.items() if k != "exp"},
        "exp-as-string": {**good, "exp": str(good["exp"])},
        "no-type": {k: v for k, v in good.items() if k != "type"},
        "sub-beyond-64-bits": {**good, "sub": str(2**64 + 1)},
        "sub-beyond-32-bits": {**good, "sub": str(2**31)},
    }[case]
    response = client.get(ME, headers=_bearer(pyjwt.encode(claims, key)))
    assert_error_shape(response, 401)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- items 1–5: rate limits keyed on the account -------------------------------------------

LIMITS = {"RATELIMIT_ENABLED": True, "TRUSTED_PROXY_COUNT": 1}


def _from(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{n}"}


@pytest.mark.config(**LIMITS, RATELIMIT_LOGIN="3 per minute")
def test_no_spelling_of_an_account_escapes_its_login_counter(auth, client):
    auth.register("ada")
    spellings = ["\ufeffada\ufeff", " ADA\u3000", full_width("ada") + "@example.com"]
    for n, login in enumerate(spellings):
        response = client.post(
            LOGIN, json={"login": login, "password": "guess-it"}, headers=_from(n)
        )
        assert response.status_code == 401, response.json
    # The account's one counter is spent: its plain name, by the right password, from a
    # fresh address, and its email, are all refused.
    for n, login in enumerate(["ada", "ada@example.com", "\ufeffAda"], start=10):
        response = client.post(LOGIN, json={"login": login, "password": PASSWORD}, headers=_from(n))
        assert_error_shape(response, 429)
    # Another account is not blocked.
    auth.register("grace")
    assert (
        client.post(
            LOGIN, json={"login": "grace", "password": PASSWORD}, headers=_from(20)
        ).status_code
        == 200
    )


@pytest.mark.config(**LIMITS, RATELIMIT_LOGIN="3 per minute")
def test_unknown_names_count_on_their_normalised_form(client):
    for n, login in enumerate(["nobody", "\ufeffNOBODY", full_width("nobody")]):
        client.post(LOGIN, json={"login": login, "password": "guess-it"}, headers=_from(n))
    response = client.post(LOGIN, json={"login": " nobody ", "password": "x"}, headers=_from(9))
    assert_error_shape(response, 429)


@pytest.mark.config(**LIMITS, RATELIMIT_PASSWORD_CHECK="2 per minute")
def test_password_checks_are_limited_per_user(client, user, other):
    wrong = {"current_password": "not-the-password", "new_password": "a brand new secret"}
    assert client.put(ME + "/password", json=wrong, headers=user.headers).status_code == 422
    assert (
        client.delete(ME, json={"password": "nope-nope"}, headers=user.headers).status_code == 422
    )
    for send in (
        lambda: client.put(ME + "/password", json=wrong, headers=user.headers),
        lambda: client.delete(ME, json={"password": PASSWORD}, headers=user.headers),
    ):
        response = send()
        assert_error_shape(response, 429)
        assert int(response.headers["Retry-After"]) > 0
    # Per user: another one is untouched.
    assert client.put(ME + "/password", json=wrong, headers=other.headers).status_code == 422


@pytest.mark.config(
    **LIMITS, RATELIMIT_LOGIN="3 per minute", RATELIMIT_PASSWORD_CHECK="99 per minute"
)
def test_wrong_passwords_at_me_count_against_the_accounts_login_limit(client, user):
    # The user fixture logged in once: one attempt on the account's counter.
    wrong = {"current_password": "not-the-password", "new_password": "a brand new secret"}
    assert client.put(ME + "/password", json=wrong, headers=user.headers).status_code == 422
    assert (
        client.delete(ME, json={"password": "nope-nope"}, headers=user.headers).status_code == 422
    )
    response = client.post(LOGIN, json={"login": "ada", "password": PASSWORD}, headers=_from(7))
    assert_error_shape(response, 429)
    assert_error_shape(client.put(ME + "/password", json=wrong, headers=user.headers), 429)


@pytest.mark.config(**LIMITS, RATELIMIT_EMAIL_CHANGE="2 per minute")
def test_email_changes_are_limited_per_user(client, user, other):
    taken = client.patch(
        ME, json={"email": other.email, "current_password": PASSWORD}, headers=user.headers
    )
    assert_error_shape(taken, 409)
    assert (
        client.patch(
            ME,
            json={"email": "ada2@example.com", "current_password": PASSWORD},
            headers=user.headers,
        ).status_code
        == 200
    )
    limited = client.patch(
        ME, json={"email": "ada3@example.com", "current_password": PASSWORD}, headers=user.headers
    )
    assert_error_shape(limited, 429)
    assert limited.headers["Retry-After"]
    # Other changes are not counted, and other users have their own counter.
    assert client.patch(ME, json={"full_name": "Ada"}, headers=user.headers).status_code == 200
    assert (
        client.patch(
            ME,
            json={"email": "g2@example.com", "current_password": PASSWORD},
            headers=other.headers,
        ).status_code
        == 200
    )


@pytest.mark.config(**LIMITS, RATELIMIT_LOGIN="2 per minute")
def test_retry_after_only_on_429(auth, client):
    auth.register("ada")
    ok = auth.login("ada")
    assert ok.status_code == 200
    wrong = auth.login("ada", "not-the-password")
    assert wrong.status_code == 401
    for response in (ok, wrong):
        assert "Retry-After" not in response.headers
        assert not [k for k, _ in response.headers if k.lower().startswith("x-ratelimit")]
    limited = auth.login("ada")
    assert_error_shape(limited, 429)
    assert 0 < int(limited.headers["Retry-After"]) <= 61  # the window, rounded up


STRONG = {k: v for k, v in PRODUCTION_ENV.items() if k != "RATELIMIT_STORAGE_URI"}


def test_production_refuses_counters_in_memory_unless_asked_for():
    with pytest.raises(ConfigError, match="RATELIMIT_STORAGE_URI"):
        load_config(STRONG)
    # REDIS_URL is the counters' default store ...
    config = load_config({**STRONG, "REDIS_URL": "redis://127.0.0.1:6379/8"})
    assert config.RATELIMIT_STORAGE_URI == "redis://127.0.0.1:6379/8"
    assert config.RATELIMIT_STORAGE_OPTIONS["socket_timeout"] <= 1
    # ... memory:// only when set explicitly, or with limits off.
    assert load_config({**STRONG, "RATELIMIT_STORAGE_URI": "memory://"}).RATELIMIT_STORAGE_URI
    assert load_config({**STRONG, "RATELIMIT_ENABLED": "false"})
    # Development keeps its in-memory default.
    assert load_config({}).RATELIMIT_STORAGE_URI == "memory://"


# -- item 6: Redis down or hung ------------------------------------------------------------


@pytest.fixture
def hung_server():
    """A TCP server that accepts connections and never answers (a hung Redis or S3)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*accepted, listener]:
        sock.close()


def _nothing_listens() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app_with_counters_at(uri: str, tmp_path):
    from eleva import create_app
    from eleva.data.db import db
    from tests.conftest import make_config

    app = create_app(
        make_config(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=uri),
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SQLALCHEMY_ENGINE_OPTIONS": {},
            "LOCAL_STORAGE_PATH": str(tmp_path),
        },
    )
    with app.app_context():
        db.create_all()
    mark_migrated(app)
    return app


@pytest.mark.parametrize("redis", ["refused", "hung"])
def test_redis_out_of_reach_is_a_quick_503_and_other_routes_work(redis, hung_server, tmp_path):
    port = hung_server if redis == "hung" else _nothing_listens()
    client = _app_with_counters_at(f"redis://127.0.0.1:{port}/8", tmp_path).test_client()
    for send in (
        lambda: client.post(LOGIN, json={"login": "ada", "password": PASSWORD}),
        lambda: client.post(
            REGISTER, json={"username": "ada", "email": "a@example.com", "password": "x"}
        ),
        lambda: client.post("/api/v1/auth/refresh", headers=_bearer("x.y.z")),
        lambda: client.get("/health/ready"),
    ):
        started = time.monotonic()
        response = send()
        assert time.monotonic() - started < 1.5
        assert_error_shape(response, 503)
        assert response.headers["Retry-After"]
    # What does not need Redis keeps working.
    assert client.get("/health").status_code == 200
    assert client.get(ME).status_code == 401


def test_rate_limits_recover_when_redis_comes_back(tmp_path):
    from tests.slow.support import TcpProxy

    proxy = TcpProxy(("127.0.0.1", 6379))
    proxy.start()
    try:
        client = _app_with_counters_at(f"redis://127.0.0.1:{proxy.port}/8", tmp_path).test_client()
        body = {"login": f"nobody-{uuid.uuid4().hex}", "password": PASSWORD}
        assert client.post(LOGIN, json=body).status_code == 401
        assert client.get("/health/ready").status_code == 200
        proxy.stop()
        assert_error_shape(client.post(LOGIN, json=body), 503)
        assert_error_shape(client.get("/health/ready"), 503)
        proxy.start()
        # No restart: the next requests reconnect.
        assert client.post(LOGIN, json=body).status_code == 401
        assert client.get("/health/ready").status_code == 200
    finally:
        proxy.stop()


# -- items 14–15: /media/ readable from any origin; URLs never from the Host header ------


def _upload_picture(client, account, **headers):
    from tests.test_pictures import PICTURE, photo

    return client.put(
        PICTURE,
        headers={**account.headers, **headers},
        data={"file": (io.BytesIO(photo((64, 64))), "me.jpg", "image/jpeg")},
        content_type="multipart/form-data",
    )


def test_media_is_readable_from_any_origin_whatever_the_first_request(client, user):
    url = _upload_picture(client, user).json["profile_picture_url"]
    path = url.removeprefix("http://localhost")
    # The same headers with or without an Origin (an <img>, then a fetch() of the cached
    # copy): a wildcard, no credentials, nothing that varies by Origin.
    for headers in (
        {},
        {"Origin": "https://elsewhere.example"},
        {"Origin": "http://localhost:5173"},
    ):
        served = client.get(path, headers=headers)
        assert served.status_code == 200
        assert served.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in served.headers
        assert "Origin" not in served.headers.get("Vary", "")
        assert "immutable" in served.headers["Cache-Control"]


@pytest.mark.parametrize("origin", [None, "http://localhost:5173", "https://evil.example"])
def test_every_api_response_varies_by_origin(client, user, origin):
    headers = {"Origin": origin} if origin else {}
    for response in (
        client.get("/health", headers=headers),
        client.get(ME, headers={**headers, **user.headers}),
        client.get("/api/v1/nowhere", headers=headers),
    ):
        assert "Origin" in response.headers.get("Vary", ""), response.headers


@pytest.mark.config(PUBLIC_BASE_URL="https://api.eleva.test")
def test_picture_urls_are_built_on_public_base_url_not_the_host_header(client, user):
    response = _upload_picture(client, user, Host="evil.example")
    url = response.json["profile_picture_url"]
    assert url.startswith("https://api.eleva.test/media/profile-pictures/"), url
    assert (
        client.get(ME, headers={**user.headers, "Host": "evil.example"}).json["profile_picture_url"]
        == url
    )


@pytest.mark.config(ELEVA_ENV="production")
def test_without_public_base_url_production_never_uses_the_host_header(client, user):
    url = _upload_picture(client, user, Host="evil.example").json["profile_picture_url"]
    assert url.startswith("/media/profile-pictures/"), url


def test_public_base_url_must_be_an_origin():
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_config({"PUBLIC_BASE_URL": "javascript:alert(1)"})
    assert load_config({"PUBLIC_BASE_URL": "https://api.eleva.app/"}).PUBLIC_BASE_URL == (
        "https://api.eleva.app"
    )


# -- item 13: small files, huge decodes ----------------------------------------------------


@functools.cache
def _encoded(mode: str, size: tuple[int, int], fmt: str, **params) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt, **params)
    return out.getvalue()


def _png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG claiming a canvas, with almost no pixel data behind it (read lazily)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BOMBS = {
    # 34 bytes, 4000×3200 pixels of 4 bytes: 49 MB decoded, 4 × that to decode.
    "webp-lossless": lambda: _encoded("RGB", (4000, 3200), "WEBP", lossless=True, method=0),
    "png-rgba": lambda: _png_header(4000, 3000, 8, 6),  # 46 MB decoded (× 2), under 40 MP
    "png-16-bit-grey": lambda: _png_header(5000, 5000, 16, 0),  # 48 MB decoded (× 2)
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_images_are_budgeted_by_decoded_size_before_decoding(client, user, bomb):
    from eleva.core import images

    data = BOMBS[bomb]()
    assert len(data) < 1000
    started = time.perf_counter()
    with pytest.raises(images.ImageTooLarge, match="to be decoded"):
        images.to_profile_jpeg(data)
    assert time.perf_counter() - started < 0.5  # from the header (bench: < 50 ms)
    response = _upload_bytes(client, user, data)
    assert "decoded" in assert_error_shape(response, 413)["message"]


def test_large_photos_within_the_budget_are_still_accepted(client, user):
    from eleva.core import images

    # A JPEG is budgeted at the reduced scale it is decoded at: 4800×3200 (59 MB at full
    # scale) decodes at 1/8.
    assert images.to_profile_jpeg(_encoded("RGB", (4800, 3200), "JPEG"))
    png = _encoded("RGBA", (3000, 3000), "PNG", compress_level=1)  # 34 MB decoded (× 2)
    assert _upload_bytes(client, user, png).status_code == 200
    webp = _encoded("RGB", (2000, 2000), "WEBP", method=0)  # 15 MB decoded (× 4)
    assert _upload_bytes(client, user, webp).status_code == 200


def _upload_bytes(client, account, data: bytes):
    from tests.test_pictures import PICTURE

    return client.put(
        PICTURE,
        headers=account.headers,
        data={"file": (io.BytesIO(data), "me.img", "application/octet-stream")},
        content_type="multipart/form-data",
    )


# -- items 17–18: the docs with no network; a spec that validates ---------------------------


def test_docs_render_from_the_apps_own_files(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.get_data()) > 1000
    csp = page.headers["Content-Security-Policy"]
    assert "http" not in csp  # no other origin: nothing from a CDN


def test_the_spec_validates_and_names_every_operation(client):
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").json
    validate(spec)
    operations = [op for path in spec["paths"].values() for m, op in path.items() if m in METHODS]
    ids = [op.get("operationId") for op in operations]
    assert all(ids) and len(set(ids)) == len(ids), ids
    # Every pattern is one Python's re (and ECMA-262 without the u flag) understands.
    for pattern in _patterns(spec):
        re.compile(pattern)
        assert "\\p{" not in pattern


METHODS = {"get", "post", "put", "patch", "delete"}


def _patterns(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for v in node.values() for p in _patterns(v)]
    if isinstance(node, list):
        return [p for v in node for p in _patterns(v)]
    return []


def _example_body(spec: dict, operation: dict) -> dict | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = content["application/json"]["schema"]
    return _example_of(spec, schema)


def _example_of(spec: dict, schema: dict):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    if "properties" in schema:
        return {k: _example_of(spec, v) for k, v in schema["properties"].items()}
    if "allOf" in schema:
        return _example_of(spec, schema["allOf"][0])
    assert "example" in schema, schema
    return schema["example"]


def test_every_request_body_has_a_complete_example_the_api_accepts(client):
    spec = client.get("/openapi.json").json
    bodies = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                body = _example_body(spec, operation)
                if body is not None:
                    bodies[(method, path)] = body
    assert ("post", "/api/v1/auth/register") in bodies
    # "Try it out", in the order a user would: register, log in, then the rest.
    register = bodies[("post", "/api/v1/auth/register")]
    assert client.post(REGISTER, json=register).status_code == 201
    login = {**bodies[("post", "/api/v1/auth/login")], "login": register["email"]}
    tokens = client.post(LOGIN, json=login).json
    headers = _bearer(tokens["access_token"])
    subject = client.post(
        "/api/v1/subjects/", json=bodies[("post", "/api/v1/subjects/")], headers=headers
    )
    assert subject.status_code == 201
    sid = subject.json["id"]
    sends = {
        ("patch", "/api/v1/subjects/{subject_id}"): f"/api/v1/subjects/{sid}",
        ("patch", "/api/v1/users/me"): ME,
        ("put", "/api/v1/users/me/password"): ME + "/password",
    }
    for (method, path), url in sends.items():
        response = client.open(
            url, method=method.upper(), json=bodies[(method, path)], headers=headers
        )
        assert response.status_code in (200, 204), (path, response.json)
    # After the password change above, this session still works; deactivation needs the
    # new password, so its example is checked for shape only (422 names the password).
    logout = bodies[("post", "/api/v1/auth/logout")]
    assert client.post("/api/v1/auth/logout", json=logout, headers=headers).status_code == 204


# -- issue 32: limits keyed on what an attacker cannot vary ---------------------------------

REFRESH = "/api/v1/auth/refresh"


@pytest.mark.config(**LIMITS, RATELIMIT_REFRESH="3 per minute")
def test_the_refresh_limit_counts_a_session_however_its_header_is_spelled(client, auth, user):
    token = user.refresh_token
    spellings = [f"Bearer {token}", f"bearer {token}", f"BEARER  {token}"]
    for header in spellings:  # the first rotates; the others are within the grace period
        assert client.post(REFRESH, headers={"Authorization": header}).status_code == 200
    for header in (f"bEaReR {token}", f" Bearer {token} "):
        assert_error_shape(client.post(REFRESH, headers={"Authorization": header}), 429)
    # The session's newest refresh token shares its budget; another session has its own.
    latest = client.post(LOGIN, json={"login": "ada", "password": PASSWORD}).json
    second = {"Authorization": f"Bearer {latest['refresh_token']}"}
    assert client.post(REFRESH, headers=second).status_code == 200


@pytest.mark.config(
    **LIMITS, RATELIMIT_EMAIL_RECIPIENT="2 per hour", RATELIMIT_EMAIL_CHANGE="99 per hour"
)
def test_emails_to_an_unverified_address_are_capped_whoever_asks(app, client, auth, user):
    from eleva.data import mail

    def to_victim() -> int:
        with app.app_context():
            return len([m for m in mail.outbox() if m.to == ["victim@example.org"]])

    def change(email: str) -> None:
        body = {"email": email, "current_password": PASSWORD}
        assert client.patch(ME, json=body, headers=user.headers).status_code == 200

    change("victim@example.org")  # a verification link to it
    change("ada.two@example.com")  # a notice to it (the account never verified it)
    change("victim@example.org")  # a third email: over the cap, not sent
    assert to_victim() == 2
    # Per recipient: the account's other address is not affected.
    change("ada.three@example.com")
    with app.app_context():
        assert [m for m in mail.outbox() if m.to == ["ada.three@example.com"]]


@pytest.mark.config(**LIMITS, RATELIMIT_EMAIL_RECIPIENT="1 per hour")
def test_security_notices_to_a_verified_address_are_never_capped(app, client, user):
    from eleva.data import mail
    from eleva.services import emails

    with app.app_context():
        token = emails.new_link_token(user.id, emails.VERIFY, user.email)
    assert client.post("/api/v1/auth/email/verify", json={"token": token}).status_code == 204
    for n in range(3):
        new = f"passphrase number {n} here"
        body = {"current_password": PASSWORD if n == 0 else f"passphrase number {n - 1} here"}
        body["new_password"] = new
        assert client.put(ME + "/password", json=body, headers=user.headers).status_code == 204
    with app.app_context():
        notices = [m for m in mail.outbox() if "password was changed" in m.subject]
    assert len(notices) == 3
