"""Account recovery and email verification: forgotten passwords, reset links, email
verification and email changes (contract v1.1, Auth and Users).

Without REDIS_URL the email jobs run in the request (eleva.data.jobs), so each email is
in the locmem outbox when the response comes back.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from eleva.core.tokens import secret_digest
from eleva.data import mail
from eleva.data.db import db
from eleva.data.models import AccountToken, User, utcnow
from tests.conftest import PASSWORD, assert_error_shape, requires_postgres

FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
VERIFY = "/api/v1/auth/email/verify"
RESEND = "/api/v1/auth/email/verify/resend"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a brand new passphrase"
LINK_RE = re.compile(r"(http://localhost:5173/[a-z-]+)\?token=([A-Za-z0-9_-]+)")


def outbox(app, to: str | None = None) -> list:
    with app.app_context():
        messages = mail.outbox()
    return [m for m in messages if to is None or m.to == [to]]


def link_token(message, page: str) -> str:
    (match,) = {m for m in LINK_RE.findall(message.body)}
    assert match[0] == f"http://localhost:5173/{page}"
    html = message.alternatives[0][0]
    assert f"{match[0]}?token={match[1]}" in html
    return match[1]


def forgot(client, email: str):
    return client.post(FORGOT, json={"email": email})


def reset_token(app, client, email: str) -> str:
    before = len(outbox(app, email))
    assert forgot(client, email).status_code == 202
    messages = outbox(app, email)
    assert len(messages) == before + 1
    return link_token(messages[-1], "reset-password")


# -- forgot ------------------------------------------------------------------------------


def test_forgot_answers_the_same_for_known_unknown_and_deactivated_emails(app, client, auth):
    auth.account("ada")
    auth.account("gone")
    with app.app_context():
        db.session.execute(update(User).where(User.username == "gone").values(is_active=False))
        db.session.commit()
    answers = [
        forgot(client, e) for e in ("ada@example.com", "nobody@example.com", "gone@example.com")
    ]
    assert {r.status_code for r in answers} == {202}
    assert len({r.get_data() for r in answers}) == 1
    assert "message" in answers[0].json
    # Only the active account got a reset email (registration sent the others).
    resets = [m for m in outbox(app) if "Reset" in m.subject]
    assert [m.to for m in resets] == [["ada@example.com"]]


def test_forgot_finds_the_account_whatever_the_spelling_of_the_email(app, client, user):
    assert forgot(client, "  ADA@Example.COM ").status_code == 202
    assert [m for m in outbox(app, "ada@example.com") if "Reset" in m.subject]


@pytest.mark.parametrize(
    "body",
    [{"email": "not-an-email"}, {}, {"email": ""}, {"email": 5}, {"email": "a@b.co", "x": 1}],
)
def test_forgot_refuses_what_is_not_an_email(client, body):
    body = assert_error_shape(client.post(FORGOT, json=body), 422)
    assert "json" in body["errors"]


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_PASSWORD_FORGOT="2 per hour")
def test_forgot_is_limited_per_client_address(client):
    for n in range(2):
        assert forgot(client, f"n{n}@example.com").status_code == 202
    response = forgot(client, "n9@example.com")
    assert_error_shape(response, 429)
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.config(
    RATELIMIT_ENABLED=True, RATELIMIT_PASSWORD_FORGOT="2 per hour", TRUSTED_PROXY_COUNT=1
)
def test_forgot_is_limited_per_email_across_addresses(client):
    for n, spelling in enumerate(["ada@example.com", "ADA@example.com"]):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert client.post(FORGOT, json={"email": spelling}, headers=headers).status_code == 202
    headers = {"X-Forwarded-For": "198.51.100.7"}
    assert_error_shape(
        client.post(FORGOT, json={"email": " Ada@Example.com"}, headers=headers), 429
    )
    # Another address from that fresh client is not blocked.
    assert (
        client.post(FORGOT, json={"email": "bob@example.com"}, headers=headers).status_code == 202
    )


# -- reset -------------------------------------------------------------------------------


def test_reset_email_has_the_link_and_its_expiry(app, client, user):
    token = reset_token(app, client, user.email)
    (message,) = [m for m in outbox(app, user.email) if "Reset" in m.subject]
    assert "30 minutes" in message.body and "Eléva" in message.subject
    assert "this wasn't you" in message.body
    assert len(token) >= 22  # ≥ 128 bits, URL-safe base64


def test_reset_token_is_stored_only_as_its_hash(app, client, user):
    token = reset_token(app, client, user.email)
    with app.app_context():
        rows = db.session.execute(select(AccountToken.digest, AccountToken.purpose)).all()
    assert ("reset", secret_digest(token)) in {(p, d) for d, p in rows}
    assert all(token not in d for d, _ in rows)


def test_reset_sets_the_password_and_ends_every_session(app, client, auth, user):
    second = auth.account("ada")  # another session of the same user
    token = reset_token(app, client, user.email)
    response = client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.json
    for session in (user, second):
        assert_error_shape(client.get(ME, headers=session.headers), 401)
        assert_error_shape(
            client.post("/api/v1/auth/refresh", headers=session.refresh_headers), 401
        )
    assert auth.login("ada", PASSWORD).status_code == 401
    fresh = auth.login("ada", NEW_PASSWORD)
    assert fresh.status_code == 200
    me = client.get(ME, headers={"Authorization": f"Bearer {fresh.json['access_token']}"})
    assert me.json["email_verified"] is True  # the link reached the address
    (notice,) = [m for m in outbox(app, user.email) if "password was changed" in m.subject]
    assert "this wasn't you" in notice.body


def test_a_reset_token_works_once(app, client, user):
    token = reset_token(app, client, user.email)
    assert (
        client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD}).status_code == 204
    )
    body = assert_error_shape(
        client.post(RESET, json={"token": token, "new_password": "yet another passphrase"}), 422
    )
    assert list(body["errors"]["json"]) == ["token"]


def test_a_reset_kills_the_other_outstanding_reset_tokens(app, client, user):
    first = reset_token(app, client, user.email)
    second = reset_token(app, client, user.email)
    assert first != second
    assert (
        client.post(RESET, json={"token": second, "new_password": NEW_PASSWORD}).status_code == 204
    )
    body = assert_error_shape(
        client.post(RESET, json={"token": first, "new_password": "yet another passphrase"}), 422
    )
    assert "token" in body["errors"]["json"]


def test_unknown_expired_and_used_tokens_get_one_message(app, client, user):
    used = reset_token(app, client, user.email)
    client.post(RESET, json={"token": used, "new_password": NEW_PASSWORD})
    expired = reset_token(app, client, user.email)
    with app.app_context():
        db.session.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    messages = set()
    for token in (used, expired, "no-such-token", "x" * 256):
        body = assert_error_shape(
            client.post(RESET, json={"token": token, "new_password": "another passphrase"}), 422
        )
        messages.add(tuple(body["errors"]["json"]["token"]))
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("new_password", "field"),
    [("short", "new_password"), ("password1", "new_password"), ("ada", "new_password")],
)
def test_a_refused_password_leaves_the_link_usable(app, client, user, new_password, field):
    token = reset_token(app, client, user.email)
    body = assert_error_shape(
        client.post(RESET, json={"token": token, "new_password": new_password}), 422
    )
    assert field in body["errors"]["json"]
    assert (
        client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD}).status_code == 204
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"token": "t"},
        {"new_password": NEW_PASSWORD},
        {"token": 1, "new_password": NEW_PASSWORD},
        {"token": "", "new_password": NEW_PASSWORD},
        {"token": "t", "new_password": NEW_PASSWORD, "x": 1},
    ],
)
def test_reset_refuses_bad_bodies(client, body):
    assert_error_shape(client.post(RESET, json=body), 422)


def test_a_deactivated_account_cannot_be_reset(app, client, user):
    token = reset_token(app, client, user.email)
    with app.app_context():
        db.session.execute(update(User).values(is_active=False))
        db.session.commit()
    body = assert_error_shape(
        client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD}), 422
    )
    assert "token" in body["errors"]["json"]


def test_a_password_change_voids_outstanding_reset_tokens(app, client, user):
    token = reset_token(app, client, user.email)
    response = client.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 204
    assert_error_shape(
        client.post(RESET, json={"token": token, "new_password": "yet another passphrase"}), 422
    )
    assert [m for m in outbox(app, user.email) if "password was changed" in m.subject]


@requires_postgres
def test_two_simultaneous_resets_with_one_token_one_wins(app, user):
    client = app.test_client()
    for round_ in range(5):
        token = reset_token(app, client, user.email)
        barrier = threading.Barrier(2)
        results: list[int] = []

        def reset(n: int, token=token, round_=round_, barrier=barrier, results=results) -> None:
            barrier.wait(timeout=10)
            response = app.test_client().post(
                RESET, json={"token": token, "new_password": f"parallel passphrase {round_}{n}"}
            )
            results.append(response.status_code)

        threads = [threading.Thread(target=reset, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [204, 422], round_


# -- email verification ------------------------------------------------------------------


def verification_token(app, to: str) -> str:
    messages = [m for m in outbox(app, to) if "Confirm" in m.subject]
    assert messages, f"no verification email to {to}"
    return link_token(messages[-1], "verify-email")


def test_registration_sends_a_verification_email(app, client, user):
    assert user.body["email_verified"] is False
    token = verification_token(app, user.email)
    (message,) = [m for m in outbox(app, user.email) if "Confirm" in m.subject]
    assert "48 hours" in message.body and user.email in message.body
    assert client.post(VERIFY, json={"token": token}).status_code == 204
    assert client.get(ME, headers=user.headers).json["email_verified"] is True
    # Single use.
    body = assert_error_shape(client.post(VERIFY, json={"token": token}), 422)
    assert "token" in body["errors"]["json"]


def test_a_verification_token_is_bound_to_its_address(app, client, user):
    token = verification_token(app, user.email)
    response = client.patch(ME, json={"email": "ada.new@example.com"}, headers=user.headers)
    assert response.status_code == 200
    body = assert_error_shape(client.post(VERIFY, json={"token": token}), 422)
    assert "token" in body["errors"]["json"]
    assert client.get(ME, headers=user.headers).json["email_verified"] is False
    # The link sent to the new address proves the new address.
    fresh = verification_token(app, "ada.new@example.com")
    assert client.post(VERIFY, json={"token": fresh}).status_code == 204
    assert client.get(ME, headers=user.headers).json["email_verified"] is True


def test_an_expired_verification_token_is_refused(app, client, user):
    token = verification_token(app, user.email)
    with app.app_context():
        db.session.execute(update(AccountToken).values(expires_at=utcnow()))
        db.session.commit()
    assert_error_shape(client.post(VERIFY, json={"token": token}), 422)


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": None}, {"token": "t", "email": "x"}])
def test_verify_refuses_bad_bodies(client, body):
    assert_error_shape(client.post(VERIFY, json=body), 422)


def test_resend_sends_a_new_link_unless_verified(app, client, user):
    first = verification_token(app, user.email)
    response = client.post(RESEND, headers=user.headers)
    assert response.status_code == 202 and response.json["message"]
    second = verification_token(app, user.email)
    assert second != first
    assert client.post(VERIFY, json={"token": second}).status_code == 204
    sent = len(outbox(app, user.email))
    assert client.post(RESEND, headers=user.headers).status_code == 202
    assert len(outbox(app, user.email)) == sent  # already verified: nothing sent


def test_resend_needs_a_token(client):
    assert_error_shape(client.post(RESEND), 401)


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_VERIFY_RESEND="2 per hour")
def test_resend_is_limited_per_user(client, user, other):
    for _ in range(2):
        assert client.post(RESEND, headers=user.headers).status_code == 202
    assert_error_shape(client.post(RESEND, headers=user.headers), 429)
    assert client.post(RESEND, headers=other.headers).status_code == 202


# -- email change ------------------------------------------------------------------------


def test_an_email_change_is_effective_at_once_and_tells_both_addresses(app, client, user):
    client.post(VERIFY, json={"token": verification_token(app, user.email)})
    response = client.patch(ME, json={"email": "Ada.New@Example.com"}, headers=user.headers)
    assert response.status_code == 200
    assert response.json["email"] == "ada.new@example.com"
    assert response.json["email_verified"] is False
    assert verification_token(app, "ada.new@example.com")
    (notice,) = [m for m in outbox(app, user.email) if "was changed" in m.subject]
    assert "a•••@example.com" in notice.body and "ada.new@example.com" not in notice.body
    assert "this wasn't you" in notice.body
    # A reset now goes to the new address only.
    assert forgot(client, user.email).status_code == 202
    assert not [m for m in outbox(app, user.email) if "Reset" in m.subject]


def test_patching_the_same_email_changes_nothing(app, client, user):
    client.post(VERIFY, json={"token": verification_token(app, user.email)})
    sent = len(outbox(app))
    response = client.patch(ME, json={"email": "ADA@example.com"}, headers=user.headers)
    assert response.json["email_verified"] is True
    assert len(outbox(app)) == sent


def test_an_email_change_to_a_taken_address_is_409_and_sends_nothing(app, client, user, other):
    sent = len(outbox(app))
    body = assert_error_shape(
        client.patch(ME, json={"email": other.email}, headers=user.headers), 409
    )
    assert "email" in body["errors"]["json"]
    assert len(outbox(app)) == sent


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_EMAIL_CHANGE="2 per hour")
def test_email_changes_are_limited_per_user_other_edits_are_not(client, user):
    for n in range(2):
        response = client.patch(ME, json={"email": f"ada{n}@example.com"}, headers=user.headers)
        assert response.status_code == 200
    assert_error_shape(
        client.patch(ME, json={"email": "ada9@example.com"}, headers=user.headers), 429
    )
    assert client.patch(ME, json={"bio": "still fine"}, headers=user.headers).status_code == 200


def test_sessions_prune_deletes_expired_link_tokens(app, client, runner, user):
    live = reset_token(app, client, user.email)
    reset_token(app, client, user.email)
    with app.app_context():
        db.session.execute(
            update(AccountToken)
            .where(AccountToken.digest != secret_digest(live))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    result = runner.invoke(args=["sessions", "prune"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 expired email link token(s)" in result.output  # with the signup one
    with app.app_context():
        left = db.session.scalars(select(AccountToken.digest)).all()
    assert left == [secret_digest(live)]
