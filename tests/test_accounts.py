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
    response = client.patch(
        ME,
        json={"email": "ada.new@example.com", "current_password": PASSWORD},
        headers=user.headers,
    )
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
    response = client.patch(
        ME,
        json={"email": "Ada.New@Example.com", "current_password": PASSWORD},
        headers=user.headers,
    )
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
    response = client.patch(
        ME, json={"email": "ADA@example.com", "current_password": PASSWORD}, headers=user.headers
    )
    assert response.json["email_verified"] is True
    assert len(outbox(app)) == sent


def test_an_email_change_to_a_taken_address_is_409_and_sends_nothing(app, client, user, other):
    sent = len(outbox(app))
    body = assert_error_shape(
        client.patch(
            ME, json={"email": other.email, "current_password": PASSWORD}, headers=user.headers
        ),
        409,
    )
    assert "email" in body["errors"]["json"]
    assert len(outbox(app)) == sent


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_EMAIL_CHANGE="2 per hour")
def test_email_changes_are_limited_per_user_other_edits_are_not(client, user):
    for n in range(2):
        response = client.patch(
            ME,
            json={"email": f"ada{n}@example.com", "current_password": PASSWORD},
            headers=user.headers,
        )
        assert response.status_code == 200
    assert_error_shape(
        client.patch(
            ME,
            json={"email": "ada9@example.com", "current_password": PASSWORD},
            headers=user.headers,
        ),
        429,
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


# -- issue 32: an email change needs the password, voids reset links, and can be undone ---

REVERT = "/api/v1/auth/email/revert"
NEW = "ada.new@example.com"


def change_email(client, account, email=NEW, password=PASSWORD):
    return client.patch(
        ME, json={"email": email, "current_password": password}, headers=account.headers
    )


def revert_token(app, old_email: str) -> str:
    (notice,) = [m for m in outbox(app, old_email) if "was changed" in m.subject][-1:]
    return link_token(notice, "revert-email")


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_an_email_change_needs_the_current_password(app, client, user, password):
    body = {"email": NEW} if password is None else {"email": NEW, "current_password": password}
    sent = len(outbox(app))
    response = client.patch(ME, json=body, headers=user.headers)
    assert list(assert_error_shape(response, 422)["errors"]["json"]) == ["current_password"]
    assert client.get(ME, headers=user.headers).json["email"] == user.email
    assert len(outbox(app)) == sent


def test_other_changes_need_no_password(client, user):
    response = client.patch(ME, json={"bio": "hi", "email": user.email}, headers=user.headers)
    assert response.status_code == 200, response.json


@pytest.mark.config(
    RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute", RATELIMIT_EMAIL_CHANGE="99 per hour"
)
def test_email_changes_count_against_the_accounts_login_limit(client, auth, user):
    # The user fixture's login was one attempt on the account's counter.
    for _ in range(2):
        assert change_email(client, user, password="not-the-password").status_code == 422
    assert_error_shape(auth.login("ada"), 429)
    assert_error_shape(change_email(client, user), 429)


def test_an_email_change_voids_the_reset_links_sent_to_the_old_address(app, client, user):
    token = reset_token(app, client, user.email)
    assert change_email(client, user).status_code == 200
    response = client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert "token" in assert_error_shape(response, 422)["errors"]["json"]


def test_a_reset_token_for_an_address_that_is_not_the_accounts_is_refused(app, client, user):
    from eleva.services import emails

    with app.app_context():  # e.g. issued for the address the account had before
        token = emails.new_link_token(user.id, emails.RESET, "ada.old@example.com")
    response = client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert "token" in assert_error_shape(response, 422)["errors"]["json"]
    assert client.get(ME, headers=user.headers).status_code == 200  # nothing happened


def test_the_notice_to_the_old_address_brings_it_back(app, client, auth, user):
    client.post(VERIFY, json={"token": verification_token(app, user.email)})
    assert change_email(client, user).status_code == 200
    token = revert_token(app, user.email)
    (notice,) = [m for m in outbox(app, user.email) if "was changed" in m.subject]
    assert "7 days" in notice.body
    with app.app_context():  # stored only as its hash
        digests = db.session.scalars(select(AccountToken.digest)).all()
    assert secret_digest(token) in digests and all(token not in d for d in digests)
    # Whoever changed the address asks for a reset link to the new one ...
    stolen = reset_token(app, client, NEW)
    assert client.post(REVERT, json={"token": token}).status_code == 204
    # ... which is dead now, as is every session; the old address is back, verified.
    response = client.post(RESET, json={"token": stolen, "new_password": NEW_PASSWORD})
    assert_error_shape(response, 422)
    assert_error_shape(client.get(ME, headers=user.headers), 401)
    assert_error_shape(client.post("/api/v1/auth/refresh", headers=user.refresh_headers), 401)
    fresh = auth.login(user.email)
    assert fresh.status_code == 200
    me = client.get(ME, headers={"Authorization": f"Bearer {fresh.json['access_token']}"}).json
    assert (me["email"], me["email_verified"]) == (user.email, True)
    assert auth.login(NEW).status_code == 401
    # Single use.
    again = client.post(REVERT, json={"token": token})
    assert "token" in assert_error_shape(again, 422)["errors"]["json"]


@pytest.mark.parametrize(
    "token", ["", "x" * 43, "Xq3vN0bYfH2kLr8sT1uW5zA7cE9gJ4mP6oR2tV8yB0d", "short", None]
)
def test_revert_refuses_tokens_that_are_not_live(client, token):
    body = assert_error_shape(client.post(REVERT, json={"token": token}), 422)
    assert list(body["errors"]["json"]) == ["token"]


def test_a_revert_link_expires_after_email_revert_days(app, client, user):
    assert change_email(client, user).status_code == 200
    token = revert_token(app, user.email)
    with app.app_context():
        db.session.execute(
            update(AccountToken)
            .where(AccountToken.digest == secret_digest(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert_error_shape(client.post(REVERT, json={"token": token}), 422)


def test_the_old_address_stays_the_accounts_while_its_revert_link_lives(
    app, client, auth, user, other
):
    assert change_email(client, user).status_code == 200
    # Nobody may take it meanwhile: the revert would have nowhere to go.
    assert_error_shape(auth.register("mallory", email=user.email), 409)
    assert_error_shape(change_email(client, other, email=user.email), 409)
    # The account itself may take it back the ordinary way.
    assert change_email(client, user, email=user.email).status_code == 200


def test_undoing_a_chain_of_changes_kills_the_later_links(app, client, user):
    assert change_email(client, user).status_code == 200
    first = revert_token(app, user.email)
    assert change_email(client, user, email="ada.third@example.com").status_code == 200
    second = revert_token(app, NEW)
    assert client.post(REVERT, json={"token": first}).status_code == 204
    assert_error_shape(client.post(REVERT, json={"token": second}), 422)


# -- issue 32: the "password changed" email is not lost when the queue is down ------------

DEAD_REDIS = "redis://127.0.0.1:1/0"


def outbox_rows(app) -> list:
    from eleva.data.models import OutboxJob

    with app.app_context():
        rows = db.session.execute(select(OutboxJob.name, OutboxJob.queued_at)).all()
        db.session.rollback()
    return rows


@pytest.mark.config(REDIS_URL=DEAD_REDIS)
def test_a_reset_while_the_queue_is_down_is_made_and_its_email_follows(
    app, client, auth, runner, user, redis_url
):
    from rq import SimpleWorker

    from eleva.data import jobs
    from eleva.data.models import OutboxJob
    from eleva.services import emails

    with app.app_context():  # as the reset email's job would (forgot needs the queue)
        token = emails.new_link_token(user.id, emails.RESET, user.email)
    response = client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.json  # not a 503 after the change
    assert auth.login("ada", NEW_PASSWORD).status_code == 200
    assert not [m for m in outbox(app, user.email) if "password was changed" in m.subject]
    notices = [r for r in outbox_rows(app) if r.name.endswith("notify_password_changed")]
    assert len(notices) == 1 and notices[0].queued_at is None
    # The queue answers again; the sweep (cron, and each worker's start) finds what the
    # outbox kept a while ago, and a worker sends it.
    app.config["REDIS_URL"] = redis_url
    jobs.init_app(app)
    with app.app_context():
        db.session.execute(update(OutboxJob).values(created_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    result = runner.invoke(args=["jobs", "sweep"])
    assert result.exit_code == 0 and "Queued 2 job(s)" in result.output, result.output
    with app.app_context():
        jobs.work(burst=True, worker_class=SimpleWorker)
    notices = [m for m in outbox(app, user.email) if "password was changed" in m.subject]
    assert len(notices) == 1
    assert outbox_rows(app) == []  # done: each job deleted its row


def test_a_refused_change_writes_no_email_into_the_outbox(app, client, user):
    before = outbox_rows(app)
    token = reset_token(app, client, user.email)
    response = client.post(RESET, json={"token": token, "new_password": "password"})
    assert_error_shape(response, 422)
    wrong = {"current_password": "nope-nope-nope", "new_password": NEW_PASSWORD}
    assert_error_shape(client.put(ME + "/password", json=wrong, headers=user.headers), 422)
    assert outbox_rows(app) == before == []


def test_an_outbox_job_queued_twice_runs_once(app, user):
    from eleva.data import jobs
    from eleva.data.models import OutboxJob
    from eleva.services import emails

    with app.app_context():
        jobs.outbox(emails.notify_password_changed, user_id=user.id)
        db.session.commit()
        (outbox_id,) = db.session.scalars(select(OutboxJob.id)).all()
        sent = len(mail.outbox())
        jobs.perform_outboxed(outbox_id)
        jobs.perform_outboxed(outbox_id)  # a second copy, as the sweep may queue
        assert len(mail.outbox()) == sent + 1


def test_the_sweep_gives_up_on_a_job_not_done_in_a_week(app, user, caplog):
    from eleva.data import jobs
    from eleva.data.models import OutboxJob
    from eleva.services import emails

    with app.app_context():
        jobs.outbox(emails.notify_password_changed, user_id=user.id)
        db.session.execute(update(OutboxJob).values(created_at=utcnow() - timedelta(days=8)))
        db.session.commit()
        assert jobs.sweep_outbox() == 0
    assert outbox_rows(app) == []
    assert "given up" in caplog.text
