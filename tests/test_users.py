"""Users: own profile, privacy, password change, deactivation, public profiles."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from eleva.data.db import db
from eleva.data.models import User
from tests.conftest import PASSWORD, assert_error_shape

ME = "/api/v1/users/me"
NEW_PASSWORD = "a brand new passphrase"

PRIVATE_FIELDS = {
    "id", "email", "email_verified", "username", "full_name", "bio", "profile_picture_url",
    "is_active", "privacy", "study", "created_at", "updated_at",
}  # fmt: skip


def row(app, user_id: int) -> dict:
    with app.app_context():
        user = db.session.get(User, user_id)
        return {c.name: getattr(user, c.name) for c in User.__table__.columns}


def test_me_is_the_private_view(client, user):
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    body = response.json
    assert set(body) == PRIVATE_FIELDS
    assert body["username"] == "ada" and body["email"] == "ada@example.com"
    assert body["privacy"] == {"profile_visibility": "public", "show_email": False}
    assert body["profile_picture_url"] is None


def test_me_needs_a_token(client):
    assert_error_shape(client.get(ME), 401)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"full_name": "Ada King"}, {"full_name": "Ada King"}),
        ({"full_name": None}, {"full_name": None}),
        ({"bio": "Countess of Lovelace. " * 10}, {"bio": ("Countess of Lovelace. " * 10).strip()}),
        ({"bio": "b" * 500}, {"bio": "b" * 500}),
        ({"username": "Ada.King"}, {"username": "Ada.King"}),
        (
            {"email": "Ada.King@Example.com", "current_password": PASSWORD},
            {"email": "ada.king@example.com"},
        ),
        ({}, {}),
    ],
)
def test_patch_me_updates_only_what_is_sent(client, user, changes, expected):
    before = client.get(ME, headers=user.headers).json
    response = client.patch(ME, headers=user.headers, json=changes)
    assert response.status_code == 200, response.json
    after = response.json
    for key in PRIVATE_FIELDS - {"updated_at"} - set(expected):
        assert after[key] == before[key], key
    for key, value in expected.items():
        assert after[key] == value
    assert client.get(ME, headers=user.headers).json == after


@pytest.mark.parametrize(
    ("privacy", "expected"),
    [
        ({"show_email": True}, {"profile_visibility": "public", "show_email": True}),
        ({"profile_visibility": "private"}, {"profile_visibility": "private", "show_email": False}),
        (
            {"profile_visibility": "private", "show_email": True},
            {"profile_visibility": "private", "show_email": True},
        ),
        ({}, {"profile_visibility": "public", "show_email": False}),
    ],
)
def test_privacy_is_updated_partially(client, user, privacy, expected):
    response = client.patch(ME, headers=user.headers, json={"privacy": privacy})
    assert response.status_code == 200
    assert response.json["privacy"] == expected


def test_privacy_update_keeps_the_other_setting(client, user):
    client.patch(ME, headers=user.headers, json={"privacy": {"profile_visibility": "private"}})
    body = client.patch(ME, headers=user.headers, json={"privacy": {"show_email": True}}).json
    assert body["privacy"] == {"profile_visibility": "private", "show_email": True}


@pytest.mark.parametrize(
    "changes",
    [
        {"id": 99},
        {"is_active": False},
        {"password": "a new password here"},
        {"password_hash": "$2b$04$abc"},
        {"created_at": "2020-01-01T00:00:00+00:00"},
        {"updated_at": "2020-01-01T00:00:00+00:00"},
        {"profile_picture_url": "https://evil.example.com/x.jpg"},
        {"picture_key": "profile-pictures/1/x.jpg"},
        {"owner_id": 2},
        {"privacy": {"profile_visibility": "public", "admin": True}},
        {"full_name": "ok", "is_active": False},
    ],
)
def test_protected_or_unknown_fields_are_refused_and_nothing_changes(app, client, user, changes):
    before = row(app, user.id)
    assert_error_shape(client.patch(ME, headers=user.headers, json=changes), 422)
    assert row(app, user.id) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bio": "b" * 501}, "bio"),
        ({"full_name": "f" * 101}, "full_name"),
        ({"username": "x"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "me"}, "username"),
        ({"username": None}, "username"),
        ({"email": "nope"}, "email"),
        ({"email": None}, "email"),
        ({"privacy": None}, "privacy"),
        ({"privacy": {"profile_visibility": "friends"}}, "privacy"),
        ({"privacy": {"show_email": "yes"}}, "privacy"),
        ({"privacy": {"show_email": 1}}, "privacy"),
        ({"privacy": "private"}, "privacy"),
        ({"bio": "null\x00byte"}, "bio"),
    ],
)
def test_invalid_profile_changes_are_422(app, client, user, changes, field):
    before = row(app, user.id)
    body = assert_error_shape(client.patch(ME, headers=user.headers, json=changes), 422)
    assert field in body["errors"]["json"]
    assert row(app, user.id) == before


@pytest.mark.parametrize(
    ("field", "value"), [("username", "GRACE"), ("email", "Grace@Example.com")]
)
def test_taken_username_or_email_is_409_and_nothing_changes(app, client, user, other, field, value):
    before = row(app, user.id)
    changes = {field: value, **({"current_password": PASSWORD} if field == "email" else {})}
    body = assert_error_shape(client.patch(ME, headers=user.headers, json=changes), 409)
    assert list(body["errors"]["json"]) == [field]
    assert row(app, user.id) == before


def test_changing_email_and_username_keeps_the_session(client, auth, user):
    response = client.patch(
        ME,
        headers=user.headers,
        json={"username": "countess", "email": "c@example.com", "current_password": PASSWORD},
    )
    assert response.status_code == 200
    assert client.get(ME, headers=user.headers).json["username"] == "countess"
    assert client.post("/api/v1/auth/refresh", headers=user.refresh_headers).status_code == 200
    assert auth.login("countess").status_code == 200
    assert auth.login("c@example.com").status_code == 200
    assert auth.login("ada").status_code == 401


def test_own_case_change_of_username_is_allowed(client, user):
    response = client.patch(ME, headers=user.headers, json={"username": "ADA"})
    assert response.status_code == 200
    assert response.json["username"] == "ADA"


# -- password ----------------------------------------------------------------------------


def test_password_change_ends_every_other_session(client, auth, user):
    second = auth.account("ada")
    response = client.put(
        f"{ME}/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204
    # This session goes on (documented: 204, the caller's tokens keep working) ...
    assert client.get(ME, headers=user.headers).status_code == 200
    assert client.post("/api/v1/auth/refresh", headers=user.refresh_headers).status_code == 200
    # ... every other one ends at once.
    assert_error_shape(client.get(ME, headers=second.headers), 401)
    assert_error_shape(client.post("/api/v1/auth/refresh", headers=second.refresh_headers), 401)
    assert auth.login("ada", PASSWORD).status_code == 401
    assert auth.login("ada", NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": "not my password", "new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "x" * 129}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "password1"}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "ADA@example.com"}, "new_password"),
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "user_id": 2}, "user_id"),
    ],
)
def test_password_change_failures_are_field_errors(app, client, auth, user, body, field):
    before = row(app, user.id)["password_hash"]
    errors = assert_error_shape(client.put(f"{ME}/password", headers=user.headers, json=body), 422)[
        "errors"
    ]
    assert field in errors["json"]
    assert row(app, user.id)["password_hash"] == before
    assert client.get(ME, headers=user.headers).status_code == 200


def test_password_equal_to_username_is_refused(client, auth):
    account = auth.account("longusername")
    body = {"current_password": PASSWORD, "new_password": "LongUsername"}
    errors = assert_error_shape(
        client.put(f"{ME}/password", headers=account.headers, json=body), 422
    )
    assert "username" in errors["errors"]["json"]["new_password"][0]


# -- deactivation ------------------------------------------------------------------------


def test_deactivation_keeps_data_and_ends_every_session(app, client, auth, user):
    second = auth.account("ada")
    client.post("/api/v1/subjects/", headers=user.headers, json={"name": "Kept"})
    response = client.delete(ME, headers=user.headers, json={"password": PASSWORD})
    assert response.status_code == 204
    for account in (user, second):
        assert_error_shape(client.get(ME, headers=account.headers), 401)
        assert_error_shape(
            client.post("/api/v1/auth/refresh", headers=account.refresh_headers), 401
        )
    assert_error_shape(auth.login("ada"), 403)
    data = row(app, user.id)
    assert data["is_active"] is False and data["email"] == "ada@example.com"
    with app.app_context():
        from eleva.data.models import Subject

        assert db.session.scalar(select(Subject.name)) == "Kept"


@pytest.mark.parametrize(
    "body", [{"password": "wrong password"}, {}, {"password": PASSWORD, "confirm": True}]
)
def test_deactivation_needs_the_right_password(app, client, user, body):
    assert_error_shape(client.delete(ME, headers=user.headers, json=body), 422)
    assert row(app, user.id)["is_active"] is True
    assert client.get(ME, headers=user.headers).status_code == 200


def test_a_deactivated_users_existing_token_is_refused_on_the_next_request(app, client, user):
    with app.app_context():
        db.session.get(User, user.id).is_active = False
        db.session.commit()
    assert_error_shape(client.get(ME, headers=user.headers), 401)


# -- public profiles ---------------------------------------------------------------------


def test_public_profile_shows_only_the_public_view(client, user, other):
    response = client.get("/api/v1/users/grace", headers=user.headers)
    assert response.status_code == 200
    assert response.json == {
        "username": "grace",
        "full_name": None,
        "bio": None,
        "profile_picture_url": None,
    }


def test_public_profile_shows_email_only_when_chosen(client, user, other):
    client.patch(
        ME, headers=other.headers, json={"privacy": {"show_email": True}, "bio": "Admiral"}
    )
    body = client.get("/api/v1/users/GRACE", headers=user.headers).json
    assert body == {
        "username": "grace", "full_name": None, "bio": "Admiral",
        "profile_picture_url": None, "email": "grace@example.com",
    }  # fmt: skip


def test_private_profile_is_404_to_others_and_visible_to_its_owner(client, user, other):
    client.patch(
        ME,
        headers=other.headers,
        json={"privacy": {"profile_visibility": "private", "show_email": True}},
    )
    body = assert_error_shape(client.get("/api/v1/users/grace", headers=user.headers), 404)
    assert (
        body["message"]
        == assert_error_shape(client.get("/api/v1/users/nobody", headers=user.headers), 404)[
            "message"
        ]
    )
    own = client.get("/api/v1/users/grace", headers=other.headers)
    assert own.status_code == 200
    assert set(own.json) <= {"username", "full_name", "bio", "profile_picture_url", "email"}


def test_deactivated_profile_is_404(app, client, user, other):
    with app.app_context():
        db.session.get(User, other.id).is_active = False
        db.session.commit()
    assert_error_shape(client.get("/api/v1/users/grace", headers=user.headers), 404)


@pytest.mark.parametrize(
    "username", ["nobody", "a", "x" * 31, "na%20me", "%00", "ada%00", "..", "ad@m"]
)
def test_unknown_or_impossible_usernames_are_404(client, user, username, count_queries):
    with count_queries() as statements:
        response = client.get(f"/api/v1/users/{username}", headers=user.headers)
    assert_error_shape(response, 404)
    assert len(statements) <= 2


def test_public_profiles_need_a_token(client, other):
    assert_error_shape(client.get("/api/v1/users/grace"), 401)


def test_public_schema_cannot_leak_private_fields():
    from eleva.users.schemas import PublicUserSchema

    assert set(PublicUserSchema().fields) == {
        "username",
        "full_name",
        "bio",
        "profile_picture_url",
        "email",
    }


@pytest.mark.parametrize("path", ["/api/v1/users/", "/api/v1/users", "/api/v1/users/?page=1"])
def test_no_endpoint_lists_users(client, user, other, path):
    response = client.get(path, headers=user.headers)
    assert response.status_code in (404, 405)
    assert "grace" not in response.get_data(as_text=True)
    spec = client.get("/openapi.json").json
    assert "/api/v1/users/" not in spec["paths"] and "/api/v1/users" not in spec["paths"]
