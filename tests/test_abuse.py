"""Holding under abuse (issue 16): what an attacker sends, and the limits that stop them.

Spellings that must mean the same account or the same password (NFKC), forged tokens,
passwords of any content at login, and the rate limits keyed on the account.
"""

from __future__ import annotations

import time
import uuid

import jwt as pyjwt
import pytest

from tests.conftest import assert_error_shape

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
