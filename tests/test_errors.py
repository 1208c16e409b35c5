"""One error shape: every error, whatever raised it, answers {code, status, message, errors?}."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import assert_error_shape

ROOT = Path(__file__).resolve().parent.parent
STRONG = "s" * 40
STRONG_JWT = "j" * 40


# -- one error shape ---------------------------------------------------------------------

ALL_ERROR_STATUSES = [400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428, 429, 500, 503]


@pytest.mark.parametrize("status", ALL_ERROR_STATUSES)
def test_every_error_status_has_the_contract_shape(failing_app, status):
    response = failing_app.test_client().get(f"/_test/abort/{status}")
    body = assert_error_shape(response, status)
    assert body["status"]  # the reason phrase, e.g. "Unprocessable Entity"


def test_domain_errors_have_the_shape(failing_app):
    client = failing_app.test_client()
    assert assert_error_shape(client.get("/_test/domain"), 404)["message"] == "No such thing."
    body = assert_error_shape(client.get("/_test/conflict"), 409)
    assert body["errors"] == {"json": {"email": ["That email address is already taken."]}}


def test_unhandled_exception_is_a_500_without_internals(failing_app, caplog):
    with caplog.at_level(logging.ERROR, logger="eleva"):
        response = failing_app.test_client().get("/_test/crash")
    body = assert_error_shape(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "Traceback" not in text
    assert body["message"] == "An unexpected error occurred."
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records), (
        "traceback not logged"
    )


def test_unknown_url_is_json_404(client):
    body = assert_error_shape(client.get("/no/such/page"), 404)
    assert body["status"] == "Not Found"


def test_wrong_method_is_json_405_with_allow(client):
    response = client.delete("/health")
    assert_error_shape(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "OPTIONS"}


def test_body_over_the_limit_is_json_413(client):
    response = client.post(
        "/api/v1/auth/login",
        data=b"{" + b" " * (100 * 1024) + b"}",
        content_type="application/json",
    )
    assert_error_shape(response, 413)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"login": "a", "password": ',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"login": 1' + b"1" * 5000 + b"}",
    ],
    ids=["malformed", "truncated", "invalid-utf8", "deeply-nested", "huge-integer"],
)
def test_unparseable_json_is_400(client, body):
    response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
    if response.status_code == 413:  # the nested payload may exceed the JSON body limit
        assert_error_shape(response, 413)
    else:
        assert_error_shape(response, 400)


@pytest.mark.config(MAX_CONTENT_LENGTH=1024 * 1024)
def test_deeply_nested_json_within_the_limit_is_400(client):
    body = b"[" * 200_000 + b"]" * 200_000
    assert_error_shape(
        client.post("/api/v1/auth/login", data=body, content_type="application/json"), 400
    )


def test_non_json_body_is_415(client):
    response = client.post(
        "/api/v1/auth/login",
        data="login=a&password=b",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error_shape(response, 415)


def test_validation_error_lists_fields_by_location(client):
    body = assert_error_shape(client.post("/api/v1/auth/login", json={"login": "a"}), 422)
    assert body["errors"] == {"json": {"password": ["Missing data for required field."]}}


# -- issue 32: no route answers an HTML redirect --------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/subjects", "/api/v1/subjects/"])
def test_a_collection_answers_with_or_without_its_trailing_slash(client, user, path):
    created = client.post(path, json={"name": f"Physics{path[-1]}"}, headers=user.headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.mimetype == "application/json"
    listed = client.get(path, headers=user.headers)
    assert listed.status_code == 200 and listed.mimetype == "application/json"


@pytest.mark.parametrize(
    "path", ["/api/v1//subjects/", "/api/v1/subjects//", "//api/v1/subjects", "/media//x.jpg"]
)
def test_doubled_slashes_are_not_redirected(client, user, path):
    for method in ("GET", "POST"):
        response = client.open(path, method=method, json={"name": "x"}, headers=user.headers)
        assert not 300 <= response.status_code < 400, (path, method, response.status_code)
        assert response.mimetype == "application/json", (path, method, response.mimetype)
