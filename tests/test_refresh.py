"""Refresh tokens in v1.1: the grace period for concurrent refreshes, and the opt-in
HttpOnly refresh cookie with its CSRF header (contract v1.1, Auth)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from config import DevelopmentConfig, ProductionConfig
from eleva.data.db import db
from eleva.data.models import LoginSession, utcnow
from tests.conftest import PASSWORD, PRODUCTION_ENV, assert_error_shape, requires_postgres

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
COOKIE = "eleva_refresh"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(app, token: str) -> dict:
    from flask_jwt_extended import decode_token

    with app.app_context():
        return decode_token(token)


def age_rotation(app, seconds: float) -> None:
    """Pretend every rotation happened ``seconds`` ago."""
    with app.app_context():
        db.session.execute(
            update(LoginSession).values(refreshed_at=utcnow() - timedelta(seconds=seconds))
        )
        db.session.commit()


# -- grace period ------------------------------------------------------------------------


def test_a_rotated_token_presented_again_within_the_grace_gets_a_pair(app, client, user):
    winner = client.post(REFRESH, headers=user.refresh_headers)
    assert winner.status_code == 200
    late = client.post(REFRESH, headers=user.refresh_headers)  # the other tab
    assert late.status_code == 200, late.json
    for pair in (winner.json, late.json):
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 200
    # Same session, and the late tab holds the session's current refresh token.
    first, second = (
        claims(app, winner.json["refresh_token"]),
        claims(app, late.json["refresh_token"]),
    )
    assert first["sid"] == second["sid"] == claims(app, user.refresh_token)["sid"]
    assert first["jti"] == second["jti"]
    # Which then rotates as usual.
    assert client.post(REFRESH, headers=bearer(late.json["refresh_token"])).status_code == 200


def test_after_the_grace_a_rotated_token_revokes_the_session(app, client, user):
    winner = client.post(REFRESH, headers=user.refresh_headers).json
    age_rotation(app, app.config["REFRESH_REUSE_GRACE_SECONDS"] + 1)
    body = assert_error_shape(client.post(REFRESH, headers=user.refresh_headers), 401)
    assert "already used" in body["message"]
    assert_error_shape(client.get(ME, headers=bearer(winner["access_token"])), 401)
    assert_error_shape(client.post(REFRESH, headers=bearer(winner["refresh_token"])), 401)


def test_only_the_token_just_replaced_has_a_grace(client, user):
    first = client.post(REFRESH, headers=user.refresh_headers).json
    client.post(REFRESH, headers=bearer(first["refresh_token"]))
    # The original token is two rotations old: reuse, whatever the time.
    assert_error_shape(client.post(REFRESH, headers=user.refresh_headers), 401)
    assert_error_shape(client.post(REFRESH, headers=bearer(first["refresh_token"])), 401)


@pytest.mark.config(REFRESH_REUSE_GRACE_SECONDS=0)
def test_a_grace_of_zero_is_v1_reuse_detection(client, user):
    assert client.post(REFRESH, headers=user.refresh_headers).status_code == 200
    assert_error_shape(client.post(REFRESH, headers=user.refresh_headers), 401)
    assert_error_shape(client.get(ME, headers=user.headers), 401)


def test_a_grace_refresh_moves_last_used_not_the_rotation(app, client, user):
    client.post(REFRESH, headers=user.refresh_headers)
    with app.app_context():
        before = db.session.execute(select(LoginSession.refreshed_at)).scalar_one()
    client.post(REFRESH, headers=user.refresh_headers)
    with app.app_context():
        session = db.session.execute(select(LoginSession)).scalar_one()
    assert session.refreshed_at == before  # the grace is counted from the rotation
    assert session.last_used_at >= before


@requires_postgres
def test_concurrent_refreshes_from_several_tabs_all_succeed(app, user):
    results: list = []
    barrier = threading.Barrier(6)

    def refresh() -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        results.append(client.post(REFRESH, headers=user.refresh_headers))

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.status_code for r in results) == [200] * 6
    jtis = {claims(app, r.json["refresh_token"])["jti"] for r in results}
    assert len(jtis) == 1  # one rotation; every tab holds its result
    client = app.test_client()
    for response in results:
        assert client.get(ME, headers=bearer(response.json["access_token"])).status_code == 200


# -- the refresh cookie ------------------------------------------------------------------


def cookie_login(client, username: str = "ada", **extra):
    response = client.post(
        LOGIN, json={"login": username, "password": PASSWORD, "refresh_in_cookie": True}, **extra
    )
    assert response.status_code == 200, response.json
    return response


def set_cookie_header(response) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE)]
    return header


def test_login_can_put_the_refresh_token_in_an_httponly_cookie(app, client, user):
    response = cookie_login(client)
    body = response.json
    assert "refresh_token" not in body
    assert set(body) == {"access_token", "token_type", "expires_in", "csrf_token"}
    header = set_cookie_header(response)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "Path=/api/v1/auth" in header and "SameSite=Strict" in header
    assert "Max-Age=604800" in header
    assert "secure" not in attributes  # testing over plain HTTP
    cookie = client.get_cookie(COOKIE, path="/api/v1/auth")
    assert claims(app, cookie.value)["csrf"] == body["csrf_token"]
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200


def test_body_tokens_are_unchanged_without_the_flag(client, user):
    response = client.post(LOGIN, json={"login": "ada", "password": PASSWORD})
    assert set(response.json) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert not response.headers.getlist("Set-Cookie")


@pytest.mark.parametrize("flag", ["yes", 1, None, "true"])
def test_the_flag_is_a_json_boolean(client, user, flag):
    body = {"login": "ada", "password": PASSWORD, "refresh_in_cookie": flag}
    errors = assert_error_shape(client.post(LOGIN, json=body), 422)["errors"]
    assert "refresh_in_cookie" in errors["json"]


def test_refresh_from_the_cookie_needs_the_csrf_header_and_rotates_both(app, client, user):
    login = cookie_login(client).json
    old_cookie = client.get_cookie(COOKIE, path="/api/v1/auth").value
    assert_error_shape(client.post(REFRESH), 401)  # the cookie alone is not enough
    assert_error_shape(client.post(REFRESH, headers={"X-CSRF-Token": "guess"}), 401)
    response = client.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]})
    assert response.status_code == 200, response.json
    body = response.json
    assert "refresh_token" not in body and body["csrf_token"] != login["csrf_token"]
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200
    new_cookie = client.get_cookie(COOKIE, path="/api/v1/auth").value
    assert new_cookie != old_cookie
    assert "HttpOnly" in set_cookie_header(response)
    # The old CSRF value no longer matches the cookie.
    assert_error_shape(client.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]}), 401)
    again = client.post(REFRESH, headers={"X-CSRF-Token": body["csrf_token"]})
    assert again.status_code == 200


def test_the_cookie_is_only_sent_under_the_auth_path(client, user):
    cookie_login(client)
    cookie = client.get_cookie(COOKIE, path="/api/v1/auth")
    assert cookie.path == "/api/v1/auth"
    assert client.get_cookie(COOKIE, path="/api/v1/users") is None


def test_a_replayed_cookie_after_the_grace_ends_the_session(app, client, user):
    login = cookie_login(client).json
    stolen = client.get_cookie(COOKIE, path="/api/v1/auth").value
    rotated = client.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]}).json
    age_rotation(app, app.config["REFRESH_REUSE_GRACE_SECONDS"] + 1)
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, stolen, path="/api/v1/auth")
    assert_error_shape(attacker.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]}), 401)
    assert_error_shape(client.get(ME, headers=bearer(rotated["access_token"])), 401)


def test_logout_clears_the_cookie_and_ends_its_session(client, user):
    login = cookie_login(client).json
    response = client.post(LOGOUT, headers=bearer(login["access_token"]))
    assert response.status_code == 204
    header = set_cookie_header(response)
    assert "Max-Age=0" in header and "Path=/api/v1/auth" in header
    assert client.get_cookie(COOKIE, path="/api/v1/auth") is None
    assert_error_shape(client.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]}), 401)
    assert client.get(ME, headers=user.headers).status_code == 200  # another session


def test_a_bearer_refresh_wins_over_the_cookie(client, user):
    cookie_login(client)
    response = client.post(REFRESH, headers=user.refresh_headers)
    assert response.status_code == 200 and "refresh_token" in response.json


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_REFRESH="2 per minute")
def test_cookie_refreshes_are_limited_per_cookie(client, user):
    login = cookie_login(client).json
    # Guessing the CSRF value costs attempts of that cookie's bucket ...
    for _ in range(2):
        assert_error_shape(client.post(REFRESH, headers={"X-CSRF-Token": "guess"}), 401)
    limited = client.post(REFRESH, headers={"X-CSRF-Token": login["csrf_token"]})
    assert_error_shape(limited, 429)
    assert limited.headers["Retry-After"]
    # ... and a body-token client is its own bucket.
    assert client.post(REFRESH, headers=user.refresh_headers).status_code == 200


@pytest.mark.config(
    JWT_COOKIE_SAMESITE="None", JWT_COOKIE_SECURE=True, REFRESH_COOKIE_PARTITIONED=True
)
def test_samesite_none_cookies_are_secure_and_partitioned(client, user):
    login = cookie_login(client)
    header = set_cookie_header(login)
    assert "SameSite=None" in header and "Secure" in header
    # A browser that blocks third-party cookies keeps a cross-site SPA's only when
    # Partitioned (tests/slow/test_browser.py) ...
    assert "Partitioned" in header
    # ... and clears it only with a Set-Cookie that names the partitioned cookie.
    logout = client.post(LOGOUT, headers=bearer(login.json["access_token"]))
    assert logout.status_code == 204
    cleared = set_cookie_header(logout)
    assert "Max-Age=0" in cleared and "Partitioned" in cleared and "Secure" in cleared


def test_cookie_settings_follow_the_environment():
    assert DevelopmentConfig({}).JWT_COOKIE_SAMESITE == "Strict"
    assert DevelopmentConfig({}).JWT_COOKIE_SECURE is False
    assert DevelopmentConfig({}).REFRESH_COOKIE_PARTITIONED is False
    none = DevelopmentConfig({"REFRESH_COOKIE_SAMESITE": "none"})
    assert none.JWT_COOKIE_SAMESITE == "None" and none.JWT_COOKIE_SECURE is True
    assert none.REFRESH_COOKIE_PARTITIONED is True
    assert ProductionConfig(PRODUCTION_ENV).REFRESH_COOKIE_PARTITIONED is False
    assert ProductionConfig(PRODUCTION_ENV).JWT_COOKIE_SECURE is True
    assert DevelopmentConfig({"REFRESH_COOKIE_SAMESITE": "lax"}).JWT_COOKIE_SAMESITE == "Lax"
    from config import ConfigError

    with pytest.raises(ConfigError):
        DevelopmentConfig({"REFRESH_COOKIE_SAMESITE": "sometimes"})


def test_cors_lets_the_spa_send_the_csrf_header_with_credentials(client):
    response = client.options(
        REFRESH,
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-CSRF-Token",
        },
    )
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "x-csrf-token" in response.headers["Access-Control-Allow-Headers"].lower()
