"""Accounts and tokens: registration, login, JWT claims, rotation, reuse, logout, limits."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt as pyjwt
import pytest
from sqlalchemy import func, select, update

from eleva import create_app
from eleva.core.passwords import hash_password, verify_password
from eleva.data.db import db
from eleva.data.models import LoginSession, User
from tests.conftest import PASSWORD, assert_error_shape, make_config, requires_postgres

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def decode(app, token: str, **options) -> dict:
    return pyjwt.decode(
        token,
        app.config["JWT_SECRET_KEY"],
        algorithms=["HS256"],
        audience=app.config["JWT_DECODE_AUDIENCE"],
        issuer=app.config["JWT_DECODE_ISSUER"],
        **options,
    )


def forge(
    app, claims: dict, *, key: str | None = None, algorithm: str = "HS256", headers=None
) -> str:
    return pyjwt.encode(
        claims, key or app.config["JWT_SECRET_KEY"], algorithm=algorithm, headers=headers
    )


# -- registration ------------------------------------------------------------------------


def test_register_returns_the_private_user(auth):
    response = auth.register("Ada.L", email="  Ada.Lovelace@Example.COM ", full_name="Ada Lovelace")
    assert response.status_code == 201
    body = response.json
    assert body["email"] == "ada.lovelace@example.com"  # stored lower-cased
    assert body["username"] == "Ada.L"  # case kept
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["privacy"] == {"profile_visibility": "public", "show_email": False}
    assert body["profile_picture_url"] is None
    assert body["email_verified"] is False  # until the link sent to it comes back
    assert set(body) == {
        "id", "email", "email_verified", "username", "full_name", "bio", "profile_picture_url",
        "is_active", "privacy", "study", "created_at", "updated_at",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        (
            {"username": "ada", "email": "ada@example.com"},
            {"username": "other", "email": "ADA@example.com"},
            "email",
        ),
        (
            {"username": "ada", "email": "ada@example.com"},
            {"username": "ADA", "email": "x@example.com"},
            "username",
        ),
        (
            {"username": "Émile", "email": "e@example.com"},
            {"username": "émile", "email": "f@example.com"},
            None,
        ),
    ],
)
def test_taken_email_or_username_in_any_case_is_409(auth, first, second, field):
    response = auth.register(**first)
    if field is None:  # non-ASCII usernames are not allowed at all
        assert_error_shape(response, 422)
        return
    assert response.status_code == 201
    body = assert_error_shape(auth.register(**second), 409)
    assert list(body["errors"]["json"]) == [field]


LONG = "a" * 128


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"email": "a@" + "b" * 250 + ".com"}, "email"),
        ({"email": None}, "email"),
        ({"username": "ab"}, "username"),
        ({"username": "a" * 31}, "username"),
        ({"username": "ada lovelace"}, "username"),
        ({"username": "ada@home"}, "username"),
        ({"username": "ädå"}, "username"),
        ({"username": "me"}, "username"),
        ({"username": 12345}, "username"),
        ({"password": "short7!"}, "password"),
        ({"password": LONG + "b"}, "password"),
        ({"password": "password"}, "password"),
        ({"password": "Password1"}, "password"),
        ({"password": "qwertyuiop"}, "password"),
        ({"password": "iloveyou"}, "password"),
        ({"password": "grace_h.0"}, "password"),  # = the username
        ({"password": "grace@example.org"}, "password"),  # = the email
        ({"password": None}, "password"),
        ({"password": 12345678}, "password"),
        ({"full_name": "x" * 101}, "full_name"),
        ({"id": 7}, "id"),
        ({"is_active": False}, "is_active"),
        ({"created_at": "2026-01-01T00:00:00+00:00"}, "created_at"),
        ({"bio": "unknown on register"}, "bio"),
    ],
)
def test_registration_validation(client, changes, field):
    body = {"username": "grace_h.0", "email": "grace@example.org", "password": PASSWORD, **changes}
    response = client.post(REGISTER, json=body)
    errors = assert_error_shape(response, 422)["errors"]["json"]
    assert field in errors, errors
    with client.application.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


@pytest.mark.parametrize("missing", ["email", "username", "password"])
def test_registration_requires_fields(client, missing):
    body = {"username": "grace", "email": "grace@example.org", "password": PASSWORD}
    del body[missing]
    errors = assert_error_shape(client.post(REGISTER, json=body), 422)["errors"]["json"]
    assert errors == {missing: ["Missing data for required field."]}


@pytest.mark.parametrize(
    "password",
    [
        "exactly8",
        "x" * 128,
        "pässwörd-ünïcödé",
        "密码密码密码密码",
        "🔐🔑🗝️🔒🔓🔏🔐🔑",
        "correct horse battery staple",
    ],
)
def test_any_unicode_password_of_8_to_128_characters_is_accepted(auth, password):
    assert auth.register("grace", password=password).status_code == 201
    assert auth.login("grace", password).status_code == 200


def test_passwords_are_never_truncated(app, auth):
    # Same first 72 bytes (bcrypt's own limit), different ends.
    base = "é" * 36  # 72 bytes in UTF-8
    assert len(base.encode()) == 72
    assert auth.register("grace", password=base + "-first").status_code == 201
    assert auth.login("grace", base + "-second").status_code == 401
    assert auth.login("grace", base + "-first").status_code == 200
    assert not verify_password("b" * 72 + "x", hash_password("b" * 72 + "y", rounds=4))


def test_password_hash_is_bcrypt_over_a_keyed_prehash(app, auth):
    auth.register("grace")
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash))
    assert stored.startswith("$2b$04$")
    # Not plain bcrypt of the password: the pre-hash is keyed by the salt.
    assert not bcrypt.checkpw(PASSWORD.encode(), stored.encode())


# -- login -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "login", ["ada", "ADA", "Ada", "ada@example.com", "ADA@EXAMPLE.COM", "  ada@Example.com "]
)
def test_login_by_email_or_username_in_any_case(auth, login):
    auth.register("ada")
    response = auth.login(login)
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800


def test_unknown_login_and_wrong_password_get_the_same_401(auth):
    auth.register("ada")
    unknown = auth.login("nobody", PASSWORD)
    wrong = auth.login("ada", "not the password")
    assert_error_shape(unknown, 401)
    assert unknown.json == wrong.json
    assert unknown.headers.get("WWW-Authenticate") == wrong.headers.get("WWW-Authenticate")


def test_unknown_login_costs_a_bcrypt_check_like_a_wrong_password(auth, monkeypatch):
    auth.register("ada")
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: calls.append(1) or real(*a))
    auth.login("nobody", PASSWORD)
    auth.login("ada", "not the password")
    assert calls == [1, 1]


@pytest.mark.parametrize("password", ["", "x", "y" * 5000, "z" * 60_000])
def test_a_password_of_any_length_at_login_is_401(auth, password):
    auth.register("ada")
    assert_error_shape(auth.login("ada", password), 401)


def test_deactivated_account_gets_403_only_with_the_right_password(app, auth):
    auth.register("ada")
    with app.app_context():
        db.session.execute(update(User).values(is_active=False))
        db.session.commit()
    assert_error_shape(auth.login("ada", "wrong password!"), 401)
    body = assert_error_shape(auth.login("ada", PASSWORD), 403)
    assert "deactivated" in body["message"]


def test_low_cost_hashes_are_upgraded_on_login(app, auth):
    auth.register("ada")
    with app.app_context():
        db.session.execute(update(User).values(password_hash=hash_password(PASSWORD, rounds=4)))
        db.session.commit()
    app.config["BCRYPT_ROUNDS"] = 5
    assert auth.login("ada").status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash))
    assert stored.startswith("$2b$05$")
    assert verify_password(PASSWORD, stored)


# -- tokens ------------------------------------------------------------------------------


def test_token_claims_and_lifetimes(app, auth):
    auth.register("ada")
    tokens = auth.login("ada").json
    access = decode(app, tokens["access_token"])
    refresh = decode(app, tokens["refresh_token"])
    with app.app_context():
        user_id = db.session.scalar(select(User.id))
    for claims, kind in ((access, "access"), (refresh, "refresh")):
        assert claims["sub"] == str(user_id)
        assert claims["type"] == kind
        assert claims["iss"] == "eleva" and claims["aud"] == "eleva-api"
        assert {"jti", "iat", "exp", "nbf", "sid"} <= set(claims)
        assert claims["nbf"] <= claims["iat"] + 1
    assert access["exp"] - access["iat"] == 30 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert access["jti"] != refresh["jti"]
    assert pyjwt.get_unverified_header(tokens["access_token"])["alg"] == "HS256"


@pytest.mark.config(
    JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=5), JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=1)
)
def test_token_lifetimes_are_configurable(app, auth):
    auth.register("ada")
    tokens = auth.login("ada").json
    assert tokens["expires_in"] == 300
    refresh = decode(app, tokens["refresh_token"])
    assert refresh["exp"] - refresh["iat"] == 24 * 3600


def _claims(app, user: int, sid: str, **extra) -> dict:
    now = int(time.time())
    base = {
        "sub": str(user), "sid": sid, "type": "access", "jti": str(uuid.uuid4()), "iat": now,
        "nbf": now, "exp": now + 600, "iss": "eleva", "aud": "eleva-api", "fresh": False,
    }  # fmt: skip
    return {**base, **extra}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case
@pytest.mark.parametrize(
    "case",
    [
        "expired", "alg-none", "tampered", "wrong-secret", "foreign-audience", "foreign-issuer",
        "no-audience", "not-yet-valid", "refresh-as-access", "unknown-session", "no-session",
        "garbage", "empty", "basic-scheme", "sub-not-a-number", "hs512",
    ],
)  # fmt: skip
def test_every_token_problem_is_401_in_the_error_shape(app, client, user, case):
    sid = decode(app, user.access_token)["sid"]
    good = _claims(app, user.id, sid)
    tokens = {
        "expired": forge(
            app, {**good, "exp": int(time.time()) - 10, "iat": int(time.time()) - 100}
        ),
        "alg-none": _alg_none(good),
        "tampered": _tamper(user.access_token),
        "wrong-secret": forge(app, good, key="another-secret-of-the-right-length-xx"),
        "foreign-audience": forge(app, {**good, "aud": "someone-else"}),
        "foreign-issuer": forge(app, {**good, "iss": "evil"}),
        "no-audience": forge(app, {k: v for k, v in good.items() if k != "aud"}),
        "not-yet-valid": forge(app, {**good, "nbf": int(time.time()) + 3600}),
        "refresh-as-access": user.refresh_token,
        "unknown-session": forge(app, {**good, "sid": str(uuid.uuid4())}),
        "no-session": forge(app, {k: v for k, v in good.items() if k != "sid"}),
        "garbage": "not.a.jwt",
        "empty": "",
        "basic-scheme": None,
        "sub-not-a-number": forge(app, {**good, "sub": "ada"}),
        "hs512": forge(app, good, algorithm="HS512"),
    }
    headers = (
        {"Authorization": "Basic YWRhOnB3"} if case == "basic-scheme" else bearer(tokens[case])
    )
    response = client.get(ME, headers=headers)
    assert_error_shape(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_verified_token_stops_working_when_it_expires(app, client, user, monkeypatch):
    """Verified claims are kept per token (eleva.http.auth.VerifiedTokens); expiry is
    checked again on every use."""
    sid = decode(app, user.access_token)["sid"]
    token = forge(app, _claims(app, user.id, sid, exp=int(time.time()) + 60))
    assert client.get(ME, headers=bearer(token)).status_code == 200
    assert client.get(ME, headers=bearer(token)).status_code == 200  # from the cache
    later = time.time() + 61 + app.config["JWT_DECODE_LEEWAY"]
    monkeypatch.setattr("eleva.http.auth.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(later))
    body = assert_error_shape(client.get(ME, headers=bearer(token)), 401)
    assert "expired" in body["message"]


class _FrozenDatetime:
    """Stands in for the datetime class in PyJWT, whose "now" it fixes."""

    def __init__(self, timestamp: float) -> None:
        self._now = datetime.fromtimestamp(timestamp, UTC)

    def now(self, tz=None):
        return self._now

    def __getattr__(self, name):
        return getattr(datetime, name)


def test_a_verified_token_still_needs_a_live_session(app, client, user):
    assert client.get(ME, headers=user.headers).status_code == 200  # verified, kept
    assert client.post(LOGOUT, headers=user.headers).status_code == 204
    assert_error_shape(client.get(ME, headers=user.headers), 401)


@pytest.fixture
def protected_views(app):
    """A view per method behind login_required, reporting whom it was given."""
    from flask.views import MethodView

    from eleva.http.api import Blueprint
    from eleva.services.auth import CurrentUser

    blp = Blueprint("protected_test", __name__)
    seen: list[object] = []

    @blp.route("/_test/who")
    class Who(MethodView):
        @blp.login_required
        def get(self, me: CurrentUser):
            seen.append(me)
            return {"id": me.id, "session": str(me.session_id)}

        @blp.login_required
        def post(self, me: CurrentUser):
            seen.append(me)
            return {"id": me.id, "session": str(me.session_id)}

    app.register_blueprint(blp)
    return seen


@pytest.mark.own_app
@pytest.mark.parametrize("method", ["get", "post"])
def test_login_required_hands_every_method_the_same_caller(
    app, client, protected_views, user, method
):
    from eleva.services.auth import CurrentUser

    response = getattr(client, method)("/_test/who", headers=user.headers)
    assert response.json == {"id": user.id, "session": decode(app, user.access_token)["sid"]}
    assert type(protected_views[-1]) is CurrentUser
    assert client.post(LOGOUT, headers=user.headers).status_code == 204
    # Checked before the view, whatever the method: the view never runs.
    calls = len(protected_views)
    assert_error_shape(getattr(client, method)("/_test/who", headers=user.headers), 401)
    assert_error_shape(getattr(client, method)("/_test/who"), 401)
    assert len(protected_views) == calls


def test_verified_tokens_are_bounded_and_expire():
    import uuid

    from eleva.core.tokens import TokenClaims
    from eleva.http.auth import VerifiedTokens

    kept = VerifiedTokens(maxsize=3)
    now = int(time.time())

    def claims(i: int, exp: int) -> TokenClaims:
        return TokenClaims(i, uuid.uuid4(), f"jti-{i}", "access", exp)

    for i in range(5):
        kept.put(f"token-{i}", claims(i, now + 60))
    assert len(kept) == 3
    assert kept.get("token-0", 0) is None and kept.get("token-1", 0) is None
    assert kept.get("token-4", 0).user_id == 4
    kept.put("expired", claims(9, now - 1))
    assert kept.get("expired", 0) is None
    assert kept.get("expired", 0) is None  # and forgotten


@pytest.mark.parametrize(
    "header",
    ["bearer {token}", "BEARER {token}", "  Bearer   {token}  "],
)
def test_the_bearer_scheme_is_case_insensitive(client, user, header):
    headers = {"Authorization": header.format(token=user.access_token)}
    assert client.get(ME, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "Token {token}", "{token}", "Bearer{token}"],
)
def test_a_malformed_authorization_header_is_401(client, user, header):
    headers = {"Authorization": header.format(token=user.access_token)}
    response = client.get(ME, headers=headers)
    assert_error_shape(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _alg_none(claims: dict) -> str:
    import base64
    import json

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{header}.{flipped}.{signature}"


def test_missing_token_is_401(client):
    assert_error_shape(client.get(ME), 401)


def test_tokens_are_not_accepted_from_the_query_string(client, user):
    assert_error_shape(client.get(f"{ME}?jwt={user.access_token}"), 401)
    assert_error_shape(client.get(f"{ME}?access_token={user.access_token}"), 401)


def test_the_access_token_is_not_a_refresh_token(client, user):
    body = assert_error_shape(client.post(REFRESH, headers=user.headers), 401)
    assert "refresh token" in body["message"]


def test_an_authenticated_request_costs_one_query_for_auth(app, client, user, count_queries):
    with count_queries() as statements:
        assert client.get(ME, headers=user.headers).status_code == 200
    assert len(statements) <= 2
    assert len(statements) == 1  # session check and user load are one joined query


# -- rotation and reuse ------------------------------------------------------------------


def test_refresh_rotates_both_tokens(app, client, user):
    response = client.post(REFRESH, headers=user.refresh_headers)
    assert response.status_code == 200
    pair = response.json
    assert pair["token_type"] == "Bearer"
    assert pair["refresh_token"] != user.refresh_token and pair["access_token"] != user.access_token
    assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
    # The new refresh token works once, as the first did.
    again = client.post(REFRESH, headers=bearer(pair["refresh_token"]))
    assert again.status_code == 200
    assert decode(app, pair["refresh_token"])["sid"] == decode(app, user.refresh_token)["sid"]


@pytest.mark.config(REFRESH_REUSE_GRACE_SECONDS=0)  # tests/test_refresh.py: with a grace
def test_reusing_a_rotated_refresh_token_ends_the_whole_session(client, auth, user):
    second = auth.account("ada")  # another login of the same user: its own session
    rotated = client.post(REFRESH, headers=user.refresh_headers).json
    reused = client.post(REFRESH, headers=user.refresh_headers)
    body = assert_error_shape(reused, 401)
    assert "already used" in body["message"]
    # Every token descended from that login is dead now ...
    assert_error_shape(client.get(ME, headers=bearer(rotated["access_token"])), 401)
    assert_error_shape(client.post(REFRESH, headers=bearer(rotated["refresh_token"])), 401)
    assert_error_shape(client.get(ME, headers=user.headers), 401)
    # ... and the other login is untouched.
    assert client.get(ME, headers=second.headers).status_code == 200
    assert client.post(REFRESH, headers=second.refresh_headers).status_code == 200


def test_a_session_never_outlives_its_login_plus_the_refresh_lifetime(app, client, user):
    sid = uuid.UUID(decode(app, user.refresh_token)["sid"])
    soon = datetime.now(UTC) + timedelta(seconds=120)
    with app.app_context():
        db.session.execute(
            update(LoginSession).where(LoginSession.id == sid).values(expires_at=soon)
        )
        db.session.commit()
    pair = client.post(REFRESH, headers=user.refresh_headers).json
    assert decode(app, pair["refresh_token"])["exp"] <= soon.timestamp() + 1
    assert decode(app, pair["access_token"])["exp"] <= soon.timestamp() + 1
    assert pair["expires_in"] <= 120
    with app.app_context():
        past = datetime.now(UTC) - timedelta(seconds=1)
        db.session.execute(
            update(LoginSession).where(LoginSession.id == sid).values(expires_at=past)
        )
        db.session.commit()
    assert_error_shape(client.post(REFRESH, headers=bearer(pair["refresh_token"])), 401)
    assert_error_shape(client.get(ME, headers=bearer(pair["access_token"])), 401)


def test_expired_refresh_token_is_401(app, client, user):
    claims = decode(app, user.refresh_token)
    expired = forge(app, {**claims, "exp": int(time.time()) - 5})
    body = assert_error_shape(client.post(REFRESH, headers=bearer(expired)), 401)
    assert "expired" in body["message"]


@requires_postgres
@pytest.mark.config(REFRESH_REUSE_GRACE_SECONDS=0)  # tests/test_refresh.py: with a grace
def test_concurrent_refreshes_of_one_token_have_one_winner(app, user):
    results: list[int] = []
    barrier = threading.Barrier(6)

    def refresh() -> None:
        client = app.test_client()
        barrier.wait()
        results.append(client.post(REFRESH, headers=user.refresh_headers).status_code)

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 401, 401, 401, 401, 401]


# -- logout ------------------------------------------------------------------------------


def test_logout_ends_this_session_only(client, auth, user):
    other_login = auth.account("ada")
    response = client.post(LOGOUT, headers=user.headers)
    assert response.status_code == 204
    assert response.data == b""
    assert_error_shape(client.get(ME, headers=user.headers), 401)
    assert_error_shape(client.post(REFRESH, headers=user.refresh_headers), 401)
    assert client.get(ME, headers=other_login.headers).status_code == 200


def test_logout_with_a_refresh_token_also_ends_that_session(client, auth, user):
    other_login = auth.account("ada")
    response = client.post(
        LOGOUT, headers=user.headers, json={"refresh_token": other_login.refresh_token}
    )
    assert response.status_code == 204
    assert_error_shape(client.get(ME, headers=other_login.headers), 401)


def test_logout_ignores_someone_elses_refresh_token(client, user, other):
    client.post(LOGOUT, headers=user.headers, json={"refresh_token": other.refresh_token})
    assert client.get(ME, headers=other.headers).status_code == 200


@pytest.mark.parametrize("body", [{"refresh_token": "garbage"}, {}, None])
def test_logout_body_is_optional_and_garbage_is_harmless(client, user, body):
    kwargs = {"json": body} if body is not None else {}
    assert client.post(LOGOUT, headers=user.headers, **kwargs).status_code == 204


def test_logout_rejects_unknown_fields_and_needs_a_token(client, user):
    assert_error_shape(client.post(LOGOUT, headers=user.headers, json={"everything": True}), 422)
    assert_error_shape(client.post(LOGOUT), 401)


def test_revocation_is_shared_between_app_instances(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one = create_app(
        make_config(), {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )
    two = create_app(
        make_config(), {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {}}
    )
    with one.app_context():
        db.create_all()
    a, b = one.test_client(), two.test_client()
    a.post(REGISTER, json={"username": "ada", "email": "ada@example.com", "password": PASSWORD})
    token = a.post(LOGIN, json={"login": "ada", "password": PASSWORD}).json["access_token"]
    assert b.get(ME, headers=bearer(token)).status_code == 200
    assert a.post(LOGOUT, headers=bearer(token)).status_code == 204
    assert_error_shape(b.get(ME, headers=bearer(token)), 401)


@requires_postgres
def test_concurrent_registrations_of_one_email_never_500(app):
    def race(round_: int) -> list[int]:
        results: list[int] = []
        barrier = threading.Barrier(2)

        def register(name: str) -> None:
            client = app.test_client()
            barrier.wait()
            body = {"username": name, "email": f"race{round_}@example.com", "password": PASSWORD}
            results.append(client.post(REGISTER, json=body).status_code)

        threads = [threading.Thread(target=register, args=(f"racer{round_}{n}",)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(results)

    for round_ in range(20):
        assert race(round_) == [201, 409], round_


# -- rate limits -------------------------------------------------------------------------


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute")
def test_login_is_limited_per_address(client, auth):
    for _ in range(3):
        assert auth.login("nobody", "whatever-it-is").status_code == 401
    response = auth.login("someone-else", "whatever-it-is")
    body = assert_error_shape(response, 429)
    assert int(response.headers["Retry-After"]) > 0
    assert "3 per 1 minute" in body["message"]


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute", TRUSTED_PROXY_COUNT=1)
def test_login_is_limited_per_login_name_across_addresses(client):
    for n in range(3):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert (
            client.post(
                LOGIN, json={"login": "Ada", "password": "guess-number-x"}, headers=headers
            ).status_code
            == 401
        )
    headers = {"X-Forwarded-For": "198.51.100.7"}
    response = client.post(
        LOGIN, json={"login": "ada", "password": "guess-number-y"}, headers=headers
    )
    assert_error_shape(response, 429)
    # Another account from that fresh address is not blocked.
    other = client.post(LOGIN, json={"login": "grace", "password": "guess"}, headers=headers)
    assert other.status_code == 401


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute", TRUSTED_PROXY_COUNT=0)
def test_spoofed_forwarded_for_does_not_reset_the_address_limit(client):
    for n in range(3):
        client.post(
            LOGIN,
            json={"login": f"user{n}", "password": "x" * 8},
            headers={"X-Forwarded-For": f"10.0.0.{n}"},
        )
    response = client.post(
        LOGIN, json={"login": "user9", "password": "x" * 8}, headers={"X-Forwarded-For": "10.9.9.9"}
    )
    assert_error_shape(response, 429)


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_REGISTER="2 per minute")
def test_register_is_limited_per_address(auth):
    assert auth.register("one").status_code == 201
    assert auth.register("two").status_code == 201
    response = auth.register("three")
    assert_error_shape(response, 429)
    assert response.headers["Retry-After"]


@pytest.mark.config(
    RATELIMIT_ENABLED=True,
    RATELIMIT_REFRESH="2 per minute",
    RATELIMIT_LOGIN="100 per minute",
    REFRESH_REUSE_GRACE_SECONDS=0,
)
def test_refresh_is_limited_per_token(client, auth):
    account = auth.account("ada")
    pair = client.post(REFRESH, headers=account.refresh_headers).json
    # Every attempt with one token counts, valid or not ...
    assert_error_shape(client.post(REFRESH, headers=account.refresh_headers), 401)
    limited = client.post(REFRESH, headers=account.refresh_headers)
    assert_error_shape(limited, 429)
    assert limited.headers["Retry-After"]
    # ... and each token is its own bucket.
    fresh = auth.account("ada")
    assert client.post(REFRESH, headers=fresh.refresh_headers).status_code == 200
    assert pair["refresh_token"]


OTHER_PROCESS = """
import sys
from eleva import create_app
from eleva.data.db import db
from tests.conftest import make_config
app = create_app(make_config(), {
    "SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {},
    "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": sys.argv[1], "RATELIMIT_LOGIN": "3 per day",
    "TRUSTED_PROXY_COUNT": 1,
})
with app.app_context():
    db.create_all()
body = {"login": sys.argv[2], "password": "whatever-it-is"}
headers = {"X-Forwarded-For": sys.argv[3]}
print(app.test_client().post("/api/v1/auth/login", json=body, headers=headers).status_code)
"""


def test_rate_limit_counters_are_shared_between_processes_through_redis():
    """Two processes (as two gunicorn workers would be) count against the same Redis."""
    import subprocess
    import sys
    from pathlib import Path

    redis = pytest.importorskip("redis")
    uri = "redis://127.0.0.1:6379/14"
    # Counters of this run only (a login name and an address of its own): other test
    # runs may share the Redis database.
    login = f"nobody-{uuid.uuid4().hex[:12]}"
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    try:
        server = redis.Redis.from_url(uri, socket_connect_timeout=1)
        server.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    overrides = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": uri,
        # Per day: a fixed window of a minute could reset between the two processes.
        "RATELIMIT_LOGIN": "3 per day",
        "TRUSTED_PROXY_COUNT": 1,
    }
    app = create_app(make_config(), overrides)
    with app.app_context():
        db.create_all()
    body = {"login": login, "password": "whatever-it-is"}
    client = app.test_client()
    headers = {"X-Forwarded-For": address}
    assert [client.post(LOGIN, json=body, headers=headers).status_code for _ in range(3)] == [
        401
    ] * 3
    root = Path(__file__).resolve().parent.parent
    other = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, uri, login, address],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().splitlines()[-1] == "429"
    keys = list(server.scan_iter(match=f"*addr:{address}/auth.Login*"))
    assert keys, "no counter of this run in Redis"
    server.delete(*keys)
