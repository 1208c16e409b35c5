"""Login sessions: the list (device, address, last use, current), ending one, ending
all the others (contract v1.1, Users)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from eleva.data.db import db
from eleva.data.models import LoginSession
from tests.conftest import PASSWORD, assert_error_shape

SESSIONS = "/api/v1/users/me/sessions"
ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def login(client, username="ada", user_agent=None, **headers):
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    response = client.post(
        "/api/v1/auth/login", json={"login": username, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.json
    body = response.json
    return {
        "headers": {"Authorization": f"Bearer {body['access_token']}"},
        "refresh": {"Authorization": f"Bearer {body['refresh_token']}"},
    }


def listed(client, headers) -> list[dict]:
    response = client.get(SESSIONS, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_the_list_shows_device_address_times_and_the_current_session(client, user):
    firefox = login(client, user_agent=FIREFOX)
    iphone = login(client, user_agent=IPHONE)
    items = listed(client, firefox["headers"])
    assert len(items) == 3  # the fixture's login too
    by_device = {item["device"]: item for item in items}
    assert set(by_device) >= {"Firefox 133 on Windows", "Mobile Safari 17 on iOS"}
    assert by_device["Firefox 133 on Windows"]["current"] is True
    assert [item["current"] for item in items].count(True) == 1
    for item in items:
        assert set(item) == {"id", "created_at", "last_used_at", "device", "ip", "current"}
        assert item["ip"] == "127.0.0.1"
        assert item["created_at"].endswith("+00:00")
        uuid.UUID(item["id"])
    # Most recently used first: the last login.
    assert items[0]["device"] == "Mobile Safari 17 on iOS"
    assert listed(client, iphone["headers"])[0]["current"] is True
    assert (
        json.loads(client.get(SESSIONS, headers=iphone["headers"]).headers["X-Pagination"])["total"]
        == 3
    )


@pytest.mark.config(TRUSTED_PROXY_COUNT=1)
def test_the_address_is_the_client_as_seen_through_the_trusted_proxy(client, user):
    session = login(client, user_agent=FIREFOX, **{"X-Forwarded-For": "198.51.100.9, 203.0.113.5"})
    current = next(i for i in listed(client, session["headers"]) if i["current"])
    assert current["ip"] == "203.0.113.5"  # one hop believed: the last address


@pytest.mark.config(TRUSTED_PROXY_COUNT=0)
def test_a_forwarded_for_header_is_ignored_without_a_trusted_proxy(client, user):
    session = login(client, **{"X-Forwarded-For": "198.51.100.9"})
    current = next(i for i in listed(client, session["headers"]) if i["current"])
    assert current["ip"] == "127.0.0.1"


def test_last_used_moves_on_refresh_not_on_other_requests(app, client, user):
    first = login(client, user_agent=FIREFOX)
    login(client, user_agent=IPHONE)
    before = next(i for i in listed(client, first["headers"]) if i["current"])
    time.sleep(0.01)
    assert client.get(ME, headers=first["headers"]).status_code == 200
    after_read = next(i for i in listed(client, first["headers"]) if i["current"])
    assert after_read["last_used_at"] == before["last_used_at"]
    refreshed = client.post(REFRESH, headers=first["refresh"])
    assert refreshed.status_code == 200
    headers = {"Authorization": f"Bearer {refreshed.json['access_token']}"}
    items = listed(client, headers)
    assert items[0]["current"] is True and items[0]["device"] == "Firefox 133 on Windows"
    assert items[0]["last_used_at"] > before["last_used_at"]


def test_ending_a_session_stops_its_tokens_at_once(client, user):
    mine = login(client, user_agent=FIREFOX)
    doomed = login(client, user_agent=IPHONE)
    target = next(i for i in listed(client, doomed["headers"]) if i["current"])
    response = client.delete(f"{SESSIONS}/{target['id']}", headers=mine["headers"])
    assert response.status_code == 204
    assert_error_shape(client.get(ME, headers=doomed["headers"]), 401)
    assert_error_shape(client.post(REFRESH, headers=doomed["refresh"]), 401)
    assert target["id"] not in {i["id"] for i in listed(client, mine["headers"])}
    assert client.get(ME, headers=mine["headers"]).status_code == 200
    # Already ended: nothing left to end.
    assert_error_shape(client.delete(f"{SESSIONS}/{target['id']}", headers=mine["headers"]), 404)


def test_ending_the_current_session_is_logging_out(client, user):
    session = login(client)
    current = next(i for i in listed(client, session["headers"]) if i["current"])
    assert (
        client.delete(f"{SESSIONS}/{current['id']}", headers=session["headers"]).status_code == 204
    )
    assert_error_shape(client.get(ME, headers=session["headers"]), 401)


def test_another_users_session_is_not_found(client, user, other):
    theirs = next(i for i in listed(client, other.headers) if i["current"])
    body = assert_error_shape(
        client.delete(f"{SESSIONS}/{theirs['id']}", headers=user.headers), 404
    )
    assert "session" in body["message"].lower()
    assert client.get(ME, headers=other.headers).status_code == 200


@pytest.mark.parametrize("session_id", ["5f0c6d2e-9a4b-4c1e-8d7f-3b2a1c0e9f8d", "not-a-uuid", "1"])
def test_unknown_sessions_are_not_found(client, user, session_id):
    assert_error_shape(client.delete(f"{SESSIONS}/{session_id}", headers=user.headers), 404)


def test_ending_every_other_session(client, user, other):
    sessions = [login(client, user_agent=ua) for ua in (FIREFOX, IPHONE, "curl/8.5.0")]
    response = client.delete(SESSIONS, headers=sessions[0]["headers"])
    assert response.status_code == 204
    for ended in [user, *sessions[1:]]:
        headers = ended.headers if hasattr(ended, "headers") else ended["headers"]
        assert_error_shape(client.get(ME, headers=headers), 401)
    (left,) = listed(client, sessions[0]["headers"])
    assert left["current"] is True
    assert client.get(ME, headers=other.headers).status_code == 200  # another user's


def test_ended_and_expired_sessions_are_not_listed(app, client, user):
    session = login(client)
    logout = client.post("/api/v1/auth/logout", headers=user.headers)
    assert logout.status_code == 204
    with app.app_context():
        expired = LoginSession(
            id=uuid.uuid4(),
            user_id=user.id,
            refresh_jti=str(uuid.uuid4()),
            expires_at=db.func.now(),
        )
        db.session.add(expired)
        db.session.commit()
    items = listed(client, session["headers"])
    assert len(items) == 1 and items[0]["current"]


def test_the_list_is_paginated(client, user):
    for _ in range(4):
        login(client)
    response = client.get(SESSIONS + "?page=2&page_size=2", headers=user.headers)
    assert response.status_code == 200 and len(response.json) == 2
    assert json.loads(response.headers["X-Pagination"])["total"] == 5
    assert_error_shape(client.get(SESSIONS + "?page_size=0", headers=user.headers), 422)
    far = client.get(SESSIONS + "?page=18807679760998537887744", headers=user.headers)
    assert far.status_code == 200 and far.json == []


@pytest.mark.parametrize("method", ["get", "delete"])
def test_sessions_need_a_token(client, method):
    assert_error_shape(getattr(client, method)(SESSIONS), 401)
