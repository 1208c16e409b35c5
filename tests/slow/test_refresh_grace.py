"""The refresh grace period over real HTTP: gunicorn with two workers on PostgreSQL,
two "tabs" refreshing with one token at the same instant (contract v1.1, Auth)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import PASSWORD, requires_postgres
from tests.slow.support import Api, Server, assert_http_error, libpq_dsn, simultaneously

pytestmark = [pytest.mark.slow, requires_postgres]

GRACE = 2
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"


@pytest.fixture(scope="module")
def server(new_database, gunicorn) -> Server:
    database = new_database()
    server = gunicorn(
        database_url=libpq_dsn(database), workers=2, REFRESH_REUSE_GRACE_SECONDS=str(GRACE)
    )
    server.database = database
    return server


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server.base_url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_two_tabs_refreshing_at_once_both_stay_signed_in(api, server):
    offset = server.log_size()
    for round_ in range(5):
        account = api.account("tabs")
        responses = simultaneously(
            2, lambda _i, account=account: api.post(REFRESH, headers=account.refresh_headers)
        )
        assert [r.status_code for r in responses] == [200, 200], (
            round_,
            [r.text for r in responses],
        )
        for response in responses:
            tokens = response.json()
            assert api.get(ME, headers=bearer(tokens["access_token"])).status_code == 200
        # Both tabs hold a refresh token that works (the session's current one).
        follow = api.post(REFRESH, headers=bearer(responses[0].json()["refresh_token"]))
        assert follow.status_code == 200
    assert server.failures_since(offset) == []


def test_after_the_grace_a_replayed_token_ends_the_session(api, server):
    account = api.account("late")
    first = api.post(REFRESH, headers=account.refresh_headers)
    assert first.status_code == 200
    time.sleep(GRACE + 0.5)
    body = assert_http_error(api.post(REFRESH, headers=account.refresh_headers), 401)
    assert "already used" in body["message"]
    # Every token of that login is dead now, on whichever worker answers.
    for _ in range(4):
        assert_http_error(api.get(ME, headers=bearer(first.json()["access_token"])), 401)


def test_two_tabs_sharing_the_refresh_cookie_refresh_at_once(api, server):
    username = api.account("cookie").username
    browser = requests.Session()
    login = browser.post(
        api.base_url + "/api/v1/auth/login",
        json={"login": username, "password": PASSWORD, "refresh_in_cookie": True},
        timeout=30,
    )
    assert login.status_code == 200 and "refresh_token" not in login.json()
    csrf = login.json()["csrf_token"]
    cookie = browser.cookies.get("eleva_refresh")
    assert cookie

    def refresh(_i: int) -> requests.Response:
        return requests.post(
            api.base_url + REFRESH,
            headers={"X-CSRF-Token": csrf},
            cookies={"eleva_refresh": cookie},
            timeout=30,
        )

    responses = simultaneously(2, refresh)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    for response in responses:
        assert "eleva_refresh=" in response.headers["Set-Cookie"]
        assert "HttpOnly" in response.headers["Set-Cookie"]
        assert api.get(ME, headers=bearer(response.json()["access_token"])).status_code == 200
