"""Hostile and odd input, endpoint by endpoint: every answer a clear 4xx in the error
shape, never a 500, and nothing written.

Oversized bodies (413), wrong content types (415), deeply nested or huge JSON, invalid
UTF-8, NUL bytes and lone surrogates in every string field, out-of-range integers in ids
and pagination, and Unicode that is odd but valid (emoji, combining marks, right-to-left,
zero-width characters), which must be kept exactly and found by search.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from eleva.data.db import db
from eleva.data.models import LoginSession, Subject, User
from tests.conftest import PASSWORD, assert_error_shape

# -- the endpoints that take a body, each with a valid one ---------------------------------


@dataclass
class Endpoint:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client, **kwargs: Any):
        kwargs.setdefault("headers", self.headers)
        return client.open(self.path, method=self.method, **kwargs)


ENDPOINTS = (
    "register",
    "login",
    "logout",
    "update_me",
    "change_password",
    "deactivate",
    "create_subject",
    "update_subject",
)


@pytest.fixture
def subject(client, user) -> dict:
    response = client.post(
        "/api/v1/subjects/",
        json={"name": "Physics", "description": "Waves", "color": "#3A7BD5"},
        headers=user.headers,
    )
    assert response.status_code == 201
    return response.json


@pytest.fixture
def endpoints(user, subject) -> dict[str, Endpoint]:
    auth = user.headers
    return {
        "register": Endpoint(
            "POST",
            "/api/v1/auth/register",
            {
                "email": "newbie@example.com",
                "username": "newbie",
                "password": PASSWORD,
                "full_name": "New Bie",
            },
        ),
        "login": Endpoint("POST", "/api/v1/auth/login", {"login": "ada", "password": PASSWORD}),
        "logout": Endpoint(
            "POST", "/api/v1/auth/logout", {"refresh_token": user.refresh_token}, auth
        ),
        "update_me": Endpoint(
            "PATCH",
            "/api/v1/users/me",
            {
                "full_name": "Ada L.",
                "bio": "Counts things.",
                "username": "ada.l",
                "email": "ada.l@example.com",
                "privacy": {"profile_visibility": "private", "show_email": True},
            },
            auth,
        ),
        "change_password": Endpoint(
            "PUT",
            "/api/v1/users/me/password",
            {"current_password": PASSWORD, "new_password": "another long passphrase"},
            auth,
        ),
        "deactivate": Endpoint("DELETE", "/api/v1/users/me", {"password": PASSWORD}, auth),
        "create_subject": Endpoint(
            "POST",
            "/api/v1/subjects/",
            {"name": "Chemistry", "description": "Bonds", "color": "#112233"},
            auth,
        ),
        "update_subject": Endpoint(
            "PATCH",
            f"/api/v1/subjects/{subject['id']}",
            {"name": "Physics II", "description": "Optics", "color": "#445566"},
            auth,
        ),
    }


@pytest.fixture
def unchanged(app, client, user):
    """``with unchanged(): ...`` asserts that nothing was written: no row added or
    removed, the user's profile and subjects as they were, the session still live."""

    def state() -> dict:
        with app.app_context():
            counts = {
                model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in (User, LoginSession, Subject)
            }
            revoked = db.session.scalar(
                select(func.count()).where(LoginSession.revoked_at.is_not(None))
            )
            hashes = sorted(db.session.scalars(select(User.password_hash)))
        me = client.get("/api/v1/users/me", headers=user.headers)
        subjects = client.get("/api/v1/subjects/?archived=all", headers=user.headers)
        return {
            "counts": counts,
            "revoked": revoked,
            "hashes": hashes,
            "me": (me.status_code, me.json),
            "subjects": (subjects.status_code, subjects.json),
        }

    @contextmanager
    def check() -> Iterator[None]:
        before = state()
        assert before["me"][0] == 200
        yield
        after = state()
        assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}

    return check


class Sweep:
    """Many cases in one test, every failing case reported (not only the first)."""

    def __init__(self, unchanged) -> None:
        self.unchanged = unchanged
        self.failures: list[str] = []
        self.checked = False

    def expect(self, label: str, send, status: int, errors_at: str | None = None) -> None:
        try:
            with self.unchanged():
                response = send()
            body = assert_error_shape(response, status)
            if errors_at:
                assert _nested_get(body.get("errors", {}), errors_at), body
        except (AssertionError, KeyError, TypeError) as exc:
            self.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:300]}")

    def check(self) -> None:
        """Call at the end of the test: fails listing every case that failed."""
        self.checked = True
        assert not self.failures, "\n".join(["", *self.failures])


@pytest.fixture
def sweep(unchanged) -> Iterator[Sweep]:
    cases = Sweep(unchanged)
    yield cases
    assert cases.checked, "a test using `sweep` must end with sweep.check()"


def _nested_set(body: dict, path: str, value: Any) -> dict:
    body = json.loads(json.dumps(body))
    *parents, leaf = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    target[leaf] = value
    return body


def _nested_get(errors: dict, path: str) -> Any:
    for key in path.split("."):
        errors = errors[key]
    return errors


# -- NUL bytes and lone surrogates in every string field ------------------------------------

STRING_FIELDS = [
    ("register", "email"),
    ("register", "username"),
    ("register", "password"),
    ("register", "full_name"),
    ("login", "login"),
    # Not ("login", "password"): any password at login is a 401 (tests/test_abuse.py).
    ("logout", "refresh_token"),
    ("update_me", "full_name"),
    ("update_me", "bio"),
    ("update_me", "username"),
    ("update_me", "email"),
    ("update_me", "privacy.profile_visibility"),
    ("change_password", "current_password"),
    ("change_password", "new_password"),
    ("deactivate", "password"),
    ("create_subject", "name"),
    ("create_subject", "description"),
    ("create_subject", "color"),
    ("update_subject", "name"),
    ("update_subject", "description"),
    ("update_subject", "color"),
]

# How to spoil a valid value. JSON "\ud800" arrives as a lone surrogate in Python: it
# cannot be encoded as UTF-8; PostgreSQL refuses NUL in text.
POISONS = {
    "nul-inside": lambda v: v[:2] + "\x00" + v[2:],
    "nul-alone": lambda v: "\x00",
    "nul-trailing": lambda v: v + "\x00",
    "lone-high-surrogate": lambda v: v[:2] + "\ud800" + v[2:],
    "lone-low-surrogate": lambda v: "\udfff" + v,
    "half-an-emoji": lambda v: v + "\ud83d",
}


@pytest.mark.parametrize(
    ("endpoint", "path"), STRING_FIELDS, ids=[":".join(f) for f in STRING_FIELDS]
)
def test_nul_bytes_and_lone_surrogates_are_422_field_errors(
    client, endpoints, sweep, endpoint, path
):
    target = endpoints[endpoint]
    valid = _nested_get(target.body, path)
    for kind, poison in POISONS.items():
        body = _nested_set(target.body, path, poison(valid))
        sweep.expect(kind, lambda body=body: target.send(client, json=body), 422, f"json.{path}")
    sweep.check()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_odd_field_names_are_unknown_fields(client, endpoints, sweep, endpoint):
    target = endpoints[endpoint]
    for key in ("\x00", "name\x00", "\ud800", "na\u200bme", "NAME", "__class__"):
        body = {**target.body, key: "x"}
        sweep.expect(
            repr(key), lambda body=body: target.send(client, json=body), 422, f"json.{key}"
        )
    sweep.check()


def test_nul_in_the_search_and_other_query_parameters_is_422(client, user, sweep):
    for query in ("q=Phy%00sics", "q=%00", "archived=all%00", "sort=name%00"):
        sweep.expect(
            query,
            lambda query=query: client.get(f"/api/v1/subjects/?{query}", headers=user.headers),
            422,
            "query",
        )
    sweep.check()


def test_odd_usernames_in_the_path_are_404(client, user, sweep):
    for segment in ("ada%00", "%00", "ad%00a", "ada%0A", "%ED%A0%80", "%FF", "ad%C3%A4", "a" * 500):
        sweep.expect(
            segment,
            lambda segment=segment: client.get(f"/api/v1/users/{segment}", headers=user.headers),
            404,
        )
    sweep.check()


# -- oversized bodies, wrong content types ------------------------------------------------


def test_bodies_over_the_json_limit_are_413(client, endpoints, sweep):
    for name, target in endpoints.items():
        body = {**target.body, "padding": "x" * (70 * 1024)}
        sweep.expect(name, lambda target=target, body=body: target.send(client, json=body), 413)
    sweep.check()


def _encoded(body: dict, how: str) -> Any:
    if how == "json":
        return json.dumps(body).encode()
    if how == "form":
        return "&".join(f"{k}={v}" for k, v in body.items() if isinstance(v, str))
    if how == "dict":
        return {k: v for k, v in body.items() if isinstance(v, str)}
    return b"<body><name>x</name></body>"


NOT_JSON = {
    "text/plain": "json",
    "application/x-www-form-urlencoded": "form",
    "multipart/form-data": "dict",
    "application/xml": "xml",
    "application/octet-stream": "json",
    "": "json",  # no Content-Type at all
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_json_endpoints_refuse_other_content_types_with_415(client, endpoints, sweep, endpoint):
    target = endpoints[endpoint]
    for content_type, how in NOT_JSON.items():
        kwargs: dict[str, Any] = {"data": _encoded(target.body, how)}
        if content_type:
            kwargs["content_type"] = content_type
        sweep.expect(
            content_type or "no content type",
            lambda kwargs=kwargs: target.send(client, **kwargs),
            415,
        )
    sweep.check()


def _png(size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "PNG")
    return buffer.getvalue()


PICTURE = "/api/v1/users/me/picture"


def _file(data: bytes, name: str = "me.png", mimetype: str | None = None) -> dict:
    value = (io.BytesIO(data), name, mimetype) if mimetype else (io.BytesIO(data), name)
    return {"data": {"file": value}, "content_type": "multipart/form-data"}


PICTURE_CASES = {
    "json body": (lambda: {"json": {"file": "a picture"}}, 415),
    "raw image body": (lambda: {"data": _png(), "content_type": "image/png"}, 415),
    "text/plain": (lambda: {"data": "file=abc", "content_type": "text/plain"}, 415),
    "urlencoded": (
        lambda: {"data": "file=abc", "content_type": "application/x-www-form-urlencoded"},
        415,
    ),
    "text named .jpg": (lambda: _file(b"just some text", "me.jpg", "image/jpeg"), 415),
    "pdf": (lambda: _file(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "me.png", "image/png"), 415),
    "truncated png": (lambda: _file(_png()[:60]), 415),
    "empty file": (lambda: _file(b""), 415),
    "svg": (lambda: _file(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg"), 415),
    "wrong field name": (
        lambda: {
            "data": {"picture": (io.BytesIO(_png()), "me.png")},
            "content_type": "multipart/form-data",
        },
        422,
    ),
    "field not a file": (
        lambda: {"data": {"file": "not a file"}, "content_type": "multipart/form-data"},
        422,
    ),
    "no file": (lambda: {"data": {}, "content_type": "multipart/form-data"}, 422),
}


def test_picture_upload_refuses_what_is_not_an_image(client, user, sweep):
    for label, (kwargs, status) in PICTURE_CASES.items():
        sweep.expect(
            label,
            lambda kwargs=kwargs: client.put(PICTURE, headers=user.headers, **kwargs()),
            status,
        )
    sweep.check()


@pytest.mark.config(MAX_UPLOAD_MB=1)
def test_pictures_over_the_upload_limit_are_413(client, user, sweep):
    for label, size in (("over the body limit", 2 * 1024 * 1024), ("just over 1 MB", 2**20 + 10)):
        data = _png() + b"\x00" * (size - len(_png()))
        sweep.expect(
            label,
            lambda data=data: client.put(PICTURE, headers=user.headers, **_file(data)),
            413,
        )
    sweep.check()


# -- malformed, nested, huge JSON ---------------------------------------------------------

MALFORMED = {
    "invalid utf-8": (b'{"name": "\xff\xfe"}', 400),
    "overlong utf-8": (b'{"name": "\xc0\xaf"}', 400),
    "utf-8 encoded surrogate": (b'{"name": "\xed\xa0\x80"}', 400),
    "truncated": (b'{"name": "Phys', 400),
    "whitespace only": (b"   ", 400),
    "nested arrays": (b"[" * 30_000 + b"]" * 30_000, 400),
    "nested objects": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400),
    "huge integer": (b'{"name": 1' + b"0" * 5000 + b"}", 400),
    "many duplicate keys": (b'{"zz": 1' + b', "zz": 1' * 3000 + b"}", 422),
    "thousands of keys": (json.dumps({f"k{i}": i for i in range(4000)}).encode(), 422),
    "NaN and Infinity": (b'{"name": NaN, "color": Infinity}', 422),
    "float overflow": (b'{"name": 1e999}', 422),
    "object for a string": (b'{"name": {"a": {"b": {"c": []}}}}', 422),
    "list for a string": (b'{"name": ["Physics"]}', 422),
    "top-level list": (b"[]", 422),
    "top-level string": (b'"Physics"', 422),
    "top-level number": (b"42", 422),
    "top-level null": (b"null", 422),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_or_absurd_json_is_a_clear_4xx(client, endpoints, sweep, endpoint):
    target = endpoints[endpoint]
    for label, (body, status) in MALFORMED.items():
        sweep.expect(
            label,
            lambda body=body: target.send(client, data=body, content_type="application/json"),
            status,
        )
    sweep.check()


def test_an_empty_body_where_fields_are_required_is_422(client, endpoints, sweep):
    # An empty body is no body: logout and the PATCHes take an optional or partial one.
    for name in ("register", "login", "change_password", "deactivate", "create_subject"):
        target = endpoints[name]
        sweep.expect(
            name,
            lambda target=target: target.send(client, data=b"", content_type="application/json"),
            422,
            "json",
        )
    sweep.check()


# -- out-of-range integers ----------------------------------------------------------------

ODD_IDS = [
    "99999999999999999999",
    "2147483648",
    "2147483647",
    "9223372036854775808",
    "0",
    "-1",
    "1.0",
    "1e3",
    "0x1",
    "%201",
    "1%00",
    "%00",
    "one",
]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_subject_ids_out_of_range_or_odd_are_404(client, user, subject, sweep, method):
    for subject_id in ODD_IDS:
        sweep.expect(
            subject_id,
            lambda subject_id=subject_id: client.open(
                f"/api/v1/subjects/{subject_id}",
                method=method,
                json={"name": "Renamed"} if method == "PATCH" else None,
                headers=user.headers,
            ),
            404,
        )
    sweep.check()


def test_pagination_out_of_range_is_422(client, user, subject, sweep):
    for query in (
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=",
        "page=1e3",
        "page=%00",
        "page_size=0",
        "page_size=-5",
        "page_size=101",
        "page_size=99999999999999999999",
        "page_size=1.5",
        "page_size=%00",
    ):
        sweep.expect(
            query,
            lambda query=query: client.get(f"/api/v1/subjects/?{query}", headers=user.headers),
            422,
            "query",
        )
    sweep.check()


def test_huge_page_numbers_are_an_empty_page_not_an_error(client, user, subject):
    """Past the last page the answer is empty (the app's documented choice, not a 4xx)."""
    for page in ("2147483648", "99999999999999999999", "9" * 200):
        response = client.get(f"/api/v1/subjects/?page={page}", headers=user.headers)
        assert response.status_code == 200, (page, response.json)
        assert response.json == []
        assert json.loads(response.headers["X-Pagination"])["total"] == 1


# -- odd but valid Unicode ------------------------------------------------------------------

UNICODE_NAMES = [
    pytest.param("📚 Physik 🧪", "🧪", id="emoji"),
    pytest.param("👩🏽‍🔬 Lab", "👩🏽‍🔬", id="emoji-zwj-sequence"),
    pytest.param("e\u0301tudes", "e\u0301t", id="combining-mark"),
    pytest.param("فيزياء الكم", "فيزياء", id="rtl-arabic"),
    pytest.param("עברית \u200fמתקדמת", "\u200f", id="rtl-hebrew-with-rlm"),
    pytest.param("Phy\u200bsics", "\u200b", id="zero-width-space"),
    pytest.param("\u2066Iso\u2069late", "\u2066", id="bidi-isolates"),
    pytest.param("𝔐𝔞𝔱𝔥 ℵ₀", "𝔱𝔥", id="astral-plane"),
    pytest.param("Ǆemal", "ǆe", id="titlecase-digraph"),
    pytest.param("100% _done_", "0%", id="like-wildcards"),
]


@pytest.mark.parametrize(("name", "fragment"), UNICODE_NAMES)
def test_odd_unicode_names_are_kept_exactly_and_found_by_search(client, user, name, fragment):
    created = client.post(
        "/api/v1/subjects/", json={"name": name, "description": name}, headers=user.headers
    )
    assert created.status_code == 201, created.json
    assert created.json["name"] == name
    client.post("/api/v1/subjects/", json={"name": "Plain"}, headers=user.headers)
    read = client.get(f"/api/v1/subjects/{created.json['id']}", headers=user.headers)
    assert read.json["name"] == name and read.json["description"] == name

    found = client.get("/api/v1/subjects/", query_string={"q": fragment}, headers=user.headers)
    assert found.status_code == 200
    assert [s["name"] for s in found.json] == [name]


def test_a_name_of_120_four_byte_characters_fits_and_121_does_not(client, user, sweep):
    name = "🧪" * 120
    created = client.post("/api/v1/subjects/", json={"name": name}, headers=user.headers)
    assert created.status_code == 201, created.json
    assert created.json["name"] == name
    sweep.expect(
        "121",
        lambda: client.post("/api/v1/subjects/", json={"name": "🧬" * 121}, headers=user.headers),
        422,
        "json.name",
    )
    sweep.check()


@pytest.mark.parametrize(
    ("first", "second"),
    [("Éléments", "éLÉMENTS"), ("Ωμέγα", "ωΜΈΓΑ"), ("Физика", "ФИЗИКА")],
    ids=["latin-accents", "greek", "cyrillic"],
)
def test_non_ascii_names_are_unique_without_case(client, user, sweep, first, second):
    created = client.post("/api/v1/subjects/", json={"name": first}, headers=user.headers)
    assert created.status_code == 201
    sweep.expect(
        second,
        lambda: client.post("/api/v1/subjects/", json={"name": second}, headers=user.headers),
        409,
        "json.name",
    )
    found = client.get("/api/v1/subjects/", query_string={"q": second[:3]}, headers=user.headers)
    assert [s["name"] for s in found.json] == [first]
    sweep.check()


def test_names_of_only_whitespace_are_422(client, user, sweep):
    for name in (" ", "\t\n", "\u3000", "\xa0\u2003"):
        sweep.expect(
            repr(name),
            lambda name=name: client.post(
                "/api/v1/subjects/", json={"name": name}, headers=user.headers
            ),
            422,
            "json.name",
        )
    sweep.check()


def test_odd_searches_find_nothing_without_failing(client, user, subject):
    for q in ("🧪", "\u0301", "فيز", "\u200b", "%", "_", "\\", "'; DROP TABLE subjects; --"):
        response = client.get("/api/v1/subjects/", query_string={"q": q}, headers=user.headers)
        assert response.status_code == 200, (q, response.json)
        assert response.json == [], q


def test_invalid_utf8_in_the_search_is_not_a_500(client, user, subject):
    for raw in ("%ED%A0%80", "%FF%FE", "%C0%AF"):
        response = client.get(f"/api/v1/subjects/?q={raw}", headers=user.headers)
        if response.status_code == 200:  # decoded with replacement characters
            assert response.json == [], raw
        else:
            assert_error_shape(response, 422)


def test_non_ascii_usernames_are_refused(client, sweep):
    for username in ("ädä", "ａｄａ", "ada\u200b", "a\u0301da", "👩‍🔬", "ada\ud800"):
        body = {"username": username, "email": "newbie@example.com", "password": PASSWORD}
        sweep.expect(
            repr(username),
            lambda body=body: client.post("/api/v1/auth/register", json=body),
            422,
            "json.username",
        )
    sweep.check()
