"""Proof under fire: races over real HTTP, against gunicorn with two workers.

Each test fires requests from many threads released at the same instant (a barrier), so
that the workers and PostgreSQL — not the test — decide who wins. The contract's
guarantees must hold whoever wins: one winner, the others a clean 4xx, never a 500.
"""

from __future__ import annotations

import io
import itertools
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from PIL import Image

from tests.conftest import PASSWORD, requires_postgres
from tests.slow.support import (
    Api,
    Server,
    answered_by_every_worker,
    assert_http_error,
    libpq_dsn,
    simultaneously,
    statuses,
    wait_for_lock_waiters,
)

pytestmark = [pytest.mark.slow, requires_postgres]


@pytest.fixture(scope="module")
def server(new_database, gunicorn) -> Server:
    database = new_database()
    # No refresh grace: one winner among concurrent refreshes, as in v1 (with a grace,
    # they all win: tests/slow/test_refresh_grace.py).
    server = gunicorn(database_url=libpq_dsn(database), workers=2, REFRESH_REUSE_GRACE_SECONDS="0")
    server.database = database
    return server


@pytest.fixture
def api(server: Server, request: pytest.FixtureRequest) -> Iterator[Api]:
    offset = server.log_size()
    yield Api(server.base_url)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:  # a failed test has told its story already
        failures = server.failures_since(offset)
        assert failures == [], "the server answered 5xx or logged a traceback"


def test_simultaneous_registrations_of_one_email_give_one_account(api):
    for round_ in range(20):
        email = f"race{round_}-{secrets.token_hex(3)}@example.com"
        responses = simultaneously(
            2, lambda i, email=email, round_=round_: api.register(f"racer{round_}_{i}", email)
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 409], (round_, [r.text for r in responses])
        loser = next(r for r in responses if r.status_code == 409)
        body = assert_http_error(loser, 409)
        assert "email" in body["errors"]["json"]
        winner = next(r for r in responses if r.status_code == 201)
        # The account that exists is the winner's, and it works.
        assert api.login(email).status_code == 200
        assert api.login(winner.json()["username"]).status_code == 200
        assert api.login(json.loads(loser.request.body)["username"]).status_code == 401


def test_simultaneous_registrations_of_one_username_in_two_cases_give_one_account(api):
    for round_ in range(10):
        name = f"twin{round_}_{secrets.token_hex(3)}"
        responses = simultaneously(
            2,
            lambda i, name=name: api.register(
                name.upper() if i else name, f"{name}-{i}@example.com"
            ),
        )
        assert statuses(responses) == [201, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "username" in assert_http_error(loser, 409)["errors"]["json"]


def test_two_users_claiming_one_username_at_once_get_one_200_and_one_409(api):
    first, second = api.account("claimer"), api.account("claimer")
    for round_ in range(10):
        wanted = f"prize{round_}_{secrets.token_hex(3)}"
        responses = simultaneously(
            2,
            lambda i, wanted=wanted: api.patch(
                "/api/v1/users/me",
                json={"username": wanted},
                headers=(first, second)[i].headers,
            ),
        )
        assert statuses(responses) == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "username" in assert_http_error(loser, 409)["errors"]["json"]


def test_concurrent_refreshes_of_one_token_have_one_winner_and_end_the_session(api):
    account = api.account("refresher")
    responses = simultaneously(
        8, lambda _i: api.post("/api/v1/auth/refresh", headers=account.refresh_headers)
    )
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 1, 401: 7}, [r.text for r in responses]
    for loser in (r for r in responses if r.status_code == 401):
        assert_http_error(loser, 401)
    winner = next(r for r in responses if r.status_code == 200).json()
    assert winner["token_type"] == "Bearer"
    assert winner["refresh_token"] != account.refresh_token

    # The contract: presenting an already-rotated refresh token revokes the whole login
    # session — every token descended from that login, the winner's new pair included.
    rotated_again = api.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {winner['refresh_token']}"}
    )
    assert_http_error(rotated_again, 401)
    me = api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {winner['access_token']}"})
    assert_http_error(me, 401)
    assert_http_error(api.get("/api/v1/users/me", headers=account.headers), 401)
    # The user is not locked out: a new login starts a new session.
    assert api.login(account.username).status_code == 200


def _case_variants(word: str, count: int) -> list[str]:
    variants = []
    for bits in itertools.count():
        name = "".join(c.upper() if bits >> k & 1 else c for k, c in enumerate(word))
        variants.append(name)
        if len(variants) == count:
            return variants
    raise AssertionError("unreachable")


def test_concurrent_creation_of_one_subject_name_gives_one_subject(api):
    account = api.account("creator")
    names = _case_variants("physics", 10)
    assert len(set(names)) == 10
    responses = simultaneously(
        10,
        lambda i: api.post("/api/v1/subjects/", json={"name": names[i]}, headers=account.headers),
    )
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: 9}, [r.text for r in responses]
    for loser in (r for r in responses if r.status_code == 409):
        assert "name" in assert_http_error(loser, 409)["errors"]["json"]
    winner = next(r for r in responses if r.status_code == 201).json()
    listed = api.get("/api/v1/subjects/", headers=account.headers)
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()] == [winner["name"]]


def test_concurrent_patches_with_one_etag_have_one_winner(api):
    account = api.account("editor")
    created = api.post(
        "/api/v1/subjects/", json={"name": "Chemistry"}, headers=account.headers
    ).json()
    path = f"/api/v1/subjects/{created['id']}"
    read = api.get(path, headers=account.headers)
    assert read.status_code == 200
    etag = read.headers["ETag"]

    def patch(i: int):
        body = {"description": f"writer {i}", "color": f"#0000{i:02X}"}
        return body, api.patch(path, json=body, headers={**account.headers, "If-Match": etag})

    results = simultaneously(50, patch)
    codes = Counter(response.status_code for _, response in results)
    assert codes == {200: 1, 412: 49}, [r.text for _, r in results if r.status_code != 412]
    for _, response in results:
        if response.status_code == 412:
            assert_http_error(response, 412)
    body, won = next((b, r) for b, r in results if r.status_code == 200)

    final = api.get(path, headers=account.headers)
    assert final.status_code == 200
    assert final.json() == won.json()
    assert final.json()["description"] == body["description"]
    assert final.json()["color"] == body["color"]
    assert final.headers["ETag"] == won.headers["ETag"] != etag


def test_a_patch_racing_two_deletes_gets_a_clean_answer(api):
    """Two tabs: one deletes a subject (twice), the other edits it at the same moment."""
    account = api.account("deleter")
    for round_ in range(30):
        created = api.post(
            "/api/v1/subjects/", json={"name": f"Doomed {round_}"}, headers=account.headers
        )
        path = f"/api/v1/subjects/{created.json()['id']}"
        delete, again, patch = simultaneously(
            3,
            lambda i, path=path: (
                api.request("DELETE", path, headers=account.headers)
                if i < 2
                else api.patch(path, json={"description": "too late?"}, headers=account.headers)
            ),
        )
        # One delete wins; the other finds nothing. The PATCH either lands before the
        # delete (200) or finds nothing (404).
        assert statuses([delete, again]) == [204, 404], (delete.text, again.text)
        assert patch.status_code in (200, 404), (round_, patch.status_code, patch.text)
        for response in (delete, again, patch):
            if response.status_code == 404:
                assert_http_error(response, 404)
        assert_http_error(api.get(path, headers=account.headers), 404)


def test_a_delete_queued_behind_a_patch_lets_the_patch_answer_200(api, server):
    """The PATCH takes the row first and the DELETE waits for it (lined up with a row
    lock the test holds, then releases): the edit was made, so its answer is 200 — the
    delete that follows must not turn it into a 500."""
    account = api.account("queued")
    answers = []
    for round_ in range(10):
        created = api.post(
            "/api/v1/subjects/", json={"name": f"Queued {round_}"}, headers=account.headers
        ).json()
        path = f"/api/v1/subjects/{created['id']}"
        with (
            ThreadPoolExecutor(max_workers=2) as pool,
            psycopg.connect(libpq_dsn(server.database)) as lock,
        ):
            lock.execute("SELECT 1 FROM subjects WHERE id = %s FOR UPDATE", (created["id"],))
            patch = pool.submit(
                api.patch, path, json={"description": "edited"}, headers=account.headers
            )
            wait_for_lock_waiters(server.database, 1)
            delete = pool.submit(api.request, "DELETE", path, headers=account.headers)
            wait_for_lock_waiters(server.database, 2)
            lock.rollback()
            answers.append((patch.result(timeout=30), delete.result(timeout=30)))
    assert [d.status_code for _, d in answers] == [204] * 10
    assert [p.status_code for p, _ in answers] == [200] * 10, [p.text for p, _ in answers]


def test_two_subjects_renamed_to_one_name_at_once_get_one_200_and_one_409(api):
    account = api.account("renamer")
    first = api.post("/api/v1/subjects/", json={"name": "Left"}, headers=account.headers)
    second = api.post("/api/v1/subjects/", json={"name": "Right"}, headers=account.headers)
    for round_ in range(10):
        responses = simultaneously(
            2,
            lambda i, round_=round_: api.patch(
                f"/api/v1/subjects/{(first, second)[i].json()['id']}",
                json={"name": f"Centre {round_}"},
                headers=account.headers,
            ),
        )
        assert statuses(responses) == [200, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "name" in assert_http_error(loser, 409)["errors"]["json"]


def test_a_logout_racing_a_refresh_leaves_no_live_token(api):
    for _ in range(10):
        account = api.account("racer")
        logout, refresh = simultaneously(
            2,
            lambda i, account=account: (
                api.post("/api/v1/auth/logout", headers=account.headers)
                if i == 0
                else api.post("/api/v1/auth/refresh", headers=account.refresh_headers)
            ),
        )
        assert logout.status_code == 204, logout.text
        assert refresh.status_code in (200, 401), refresh.text
        if refresh.status_code == 200:
            # Rotated just before the logout: the new pair belongs to the ended session.
            pair = refresh.json()
            bearer = {"Authorization": f"Bearer {pair['access_token']}"}
            assert_http_error(api.get("/api/v1/users/me", headers=bearer), 401)
            again = {"Authorization": f"Bearer {pair['refresh_token']}"}
            assert_http_error(api.post("/api/v1/auth/refresh", headers=again), 401)
        else:
            assert_http_error(refresh, 401)


def _picture(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (seed * 40 % 256, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def test_simultaneous_picture_uploads_leave_one_stored_picture(api, server):
    """The contract: the previous object is deleted when replaced. Whatever the order the
    uploads land in, the user ends with one stored picture: the one their profile shows."""
    account = api.account("poser")
    user_id = api.get("/api/v1/users/me", headers=account.headers).json()["id"]
    folder = server.media / "profile-pictures" / str(user_id)
    for _ in range(3):
        responses = simultaneously(
            6,
            lambda i: api.put(
                "/api/v1/users/me/picture",
                files={"file": ("me.png", _picture(i), "image/png")},
                headers=account.headers,
            ),
        )
        assert statuses(responses) == [200] * 6, [r.text for r in responses]
        shown = api.get("/api/v1/users/me", headers=account.headers).json()
        key = shown["profile_picture_url"].split("/media/", 1)[1]
        stored = sorted(str(p.relative_to(server.media)) for p in folder.iterdir())
        assert stored == [key], (
            f"{len(stored) - 1} orphaned picture(s) left in storage besides {key}: {stored}"
        )


def test_a_login_with_the_old_password_does_not_outlive_a_password_change(new_database, gunicorn):
    """PUT /users/me/password ends every other session. A login with the old password
    that was in flight while the password changed must not leave a live session behind.

    A real bcrypt cost makes both requests slow enough to overlap. The change costs about
    two hashes, a login one: logins started at delays from 0 to 2.5 logins' time after
    the change began include some that read the old hash before the change committed and
    commit their session after it.
    """
    server = gunicorn(database_url=libpq_dsn(new_database()), workers=2, BCRYPT_ROUNDS="10")
    api = Api(server.base_url)
    probe = api.account("timer")
    started = time.monotonic()
    assert api.login(probe.username).status_code == 200
    login_time = time.monotonic() - started
    survivors = []
    for step in range(11):
        delay = login_time * step / 4
        account = api.account("changer")

        def change_or_login(i: int, account=account, delay=delay):
            if i == 0:
                return api.put(
                    "/api/v1/users/me/password",
                    json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
                    headers=account.headers,
                )
            time.sleep(delay)
            return api.login(account.username, PASSWORD)

        changed, login = simultaneously(2, change_or_login)
        assert changed.status_code in (200, 204), changed.text
        if login.status_code == 200:
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            if api.get("/api/v1/users/me", headers=bearer).status_code == 200:
                survivors.append(round(delay * 1000))
        else:
            assert_http_error(login, 401)
        # The caller's own session goes on.
        assert api.get("/api/v1/users/me", headers=account.headers).status_code == 200
    assert survivors == [], (
        "a session logged in with the old password is still live after the password "
        f"change (login started {survivors} ms after the change began)"
    )


def test_logout_is_seen_by_every_worker(api, server):
    account = api.account("leaver")
    before = simultaneously(
        8, lambda _i: api.get("/api/v1/users/me", headers=account.headers).status_code
    )
    assert before == [200] * 8

    assert api.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
    # gunicorn's access log names the worker of each request: both refuse the token.
    answered_by_every_worker(server, api, account.headers, 401)
    # The refresh token of the ended session is refused too.
    assert_http_error(api.post("/api/v1/auth/refresh", headers=account.refresh_headers), 401)
