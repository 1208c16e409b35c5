"""What every resource and every list of the API promises, checked once for all of them.

- **Ownership**: another user's resource answers 404 at every route that names it, with
  the body of a resource that does not exist, and nothing changes.
- **Versions**: GET gives an ETag (If-None-Match → 304); a write with a stale If-Match is
  412 and changes nothing; every accepted write is a new ETag; If-Match is optional.
- **Lists**: for each filter and sort, walking every page gives each matching item once,
  and X-Pagination's total is the number of items walked.

A new resource or list is one more entry in RESOURCES or LISTS.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Account, assert_error_shape

API = "/api/v1"


@dataclass(frozen=True)
class Resource:
    """A resource of one owner: how to make one, where it lives, a change it accepts."""

    name: str
    make: Callable[[Any, Account], dict[str, Any]]  # (client, owner) → ids, "id" included
    path: str  # formatted with the ids
    change: dict[str, Any]
    # Other routes that name the resource (or its parent), with the method and body.
    routes: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)


def _subject(client, owner: Account, name: str = "Physics") -> int:
    response = client.post(f"{API}/subjects/", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def make_subject(client, owner: Account) -> dict[str, Any]:
    return {"id": _subject(client, owner)}


def make_note(client, owner: Account) -> dict[str, Any]:
    sid = _subject(client, owner)
    response = client.post(
        f"{API}/subjects/{sid}/notes", json={"title": "Sets", "body": "*A*"}, headers=owner.headers
    )
    assert response.status_code == 201, response.json
    return {"id": response.json["id"], "sid": sid}


def make_document(client, owner: Account) -> dict[str, Any]:
    sid = _subject(client, owner)
    response = client.post(
        f"{API}/subjects/{sid}/documents",
        data={"file": (io.BytesIO(b"union and intersection"), "sets.txt")},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.json
    return {"id": response.json["id"], "sid": sid}


RESOURCES = [
    Resource(
        "subject",
        make_subject,
        "/subjects/{id}",
        {"description": "changed"},
        routes=[
            ("get", "/subjects/{id}/notes", None),
            ("post", "/subjects/{id}/notes", {"title": "Mine now"}),
            ("get", "/subjects/{id}/documents", None),
            ("post", "/subjects/{id}/documents/uploads", {"filename": "a.pdf", "size": 10}),
        ],
    ),
    Resource("note", make_note, "/notes/{id}", {"body": "changed"}),
    Resource(
        "document",
        make_document,
        "/documents/{id}",
        {"title": "changed"},
        routes=[
            ("get", "/documents/{id}/download", None),
            ("post", "/documents/{id}/complete", None),
        ],
    ),
]
BY_NAME = {resource.name: resource for resource in RESOURCES}


def _call(client, method: str, path: str, account: Account, body=None, headers=None):
    return client.open(
        API + path, method=method.upper(), json=body, headers={**account.headers, **(headers or {})}
    )


@pytest.mark.parametrize("name", BY_NAME)
def test_another_users_resource_is_not_found_at_every_route(client, user, other, name):
    resource = BY_NAME[name]
    ids = resource.make(client, user)
    before = _call(client, "get", resource.path.format(**ids), user).json
    missing = {key: value + 100_000 for key, value in ids.items()}
    routes = [
        ("get", resource.path, None),
        ("patch", resource.path, resource.change),
        ("delete", resource.path, None),
        *resource.routes,
    ]
    for method, path, body in routes:
        theirs = _call(client, method, path.format(**ids), other, body)
        nowhere = _call(client, method, path.format(**missing), other, body)
        assert_error_shape(theirs, 404)
        assert theirs.json == nowhere.json, (method, path)
    assert _call(client, "get", resource.path.format(**ids), user).json == before


@pytest.mark.parametrize("name", BY_NAME)
def test_versions_etag_if_none_match_and_if_match(client, user, name):
    resource = BY_NAME[name]
    path = resource.path.format(**resource.make(client, user))
    read = _call(client, "get", path, user)
    etag = read.headers["ETag"]
    assert etag
    assert _call(client, "get", path, user, headers={"If-None-Match": etag}).status_code == 304

    written = _call(client, "patch", path, user, resource.change, {"If-Match": etag})
    assert written.status_code == 200, written.json
    assert written.headers["ETag"] != etag
    after = _call(client, "get", path, user).json
    # A stale version is refused, for a write and for a delete, and changes nothing.
    assert_error_shape(_call(client, "patch", path, user, resource.change, {"If-Match": etag}), 412)
    assert_error_shape(_call(client, "delete", path, user, headers={"If-Match": etag}), 412)
    assert _call(client, "get", path, user).json == after
    # Every accepted write is a new version, even one that changes no value.
    again = _call(client, "patch", path, user, resource.change)
    assert again.status_code == 200 and again.headers["ETag"] != written.headers["ETag"]
    current = _call(client, "get", path, user).headers["ETag"]
    assert _call(client, "delete", path, user, headers={"If-Match": current}).status_code == 204
    assert_error_shape(_call(client, "get", path, user), 404)


# -- lists ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    name: str
    seed: Callable[[Any, Account], dict[str, Any]]  # → format values for the path
    path: str
    # Each query (filters, sort) and how many items it must find among the seeded ones.
    queries: list[tuple[dict[str, Any], int]]


def seed_subjects(client, owner: Account) -> dict[str, Any]:
    for i in range(7):
        sid = _subject(client, owner, f"Algebra {i}" if i % 2 else f"Physics {i}")
        if i % 3 == 0:
            client.patch(f"{API}/subjects/{sid}", json={"is_archived": True}, headers=owner.headers)
    return {}


def seed_notes(client, owner: Account) -> dict[str, Any]:
    sid = _subject(client, owner)
    for i in range(7):
        client.post(
            f"{API}/subjects/{sid}/notes", json={"title": f"Note {i}"}, headers=owner.headers
        )
    return {"sid": sid}


def seed_documents(client, owner: Account) -> dict[str, Any]:
    sid = _subject(client, owner)
    for i in range(5):
        client.post(
            f"{API}/subjects/{sid}/documents",
            data={"file": (io.BytesIO(b"x" * (i + 1)), f"d{i}.txt")},
            headers=owner.headers,
        )
    return {"sid": sid}


def seed_sessions(client, owner: Account) -> dict[str, Any]:
    for _ in range(4):
        login = {"login": owner.username, "password": owner.password}
        assert client.post(f"{API}/auth/login", json=login).status_code == 200
    return {}


def seed_search(client, owner: Account) -> dict[str, Any]:
    sid = _subject(client, owner, "Topology")
    for i in range(4):
        client.post(
            f"{API}/subjects/{sid}/notes",
            json={"title": f"Topology {i}", "body": "open sets"},
            headers=owner.headers,
        )
    return {"sid": sid}


LISTS = [
    Listing(
        "subjects",
        seed_subjects,
        "/subjects/",
        [
            ({}, 4),
            ({"archived": "true"}, 3),
            ({"archived": "all", "sort": "name"}, 7),
            ({"q": "algebra", "archived": "all"}, 3),
            ({"q": "physics", "sort": "-created_at"}, 2),
            ({"q": "nothing"}, 0),
        ],
    ),
    Listing(
        "notes",
        seed_notes,
        "/subjects/{sid}/notes",
        [({}, 7), ({"sort": "title"}, 7), ({"sort": "-created_at"}, 7)],
    ),
    Listing(
        "documents",
        seed_documents,
        "/subjects/{sid}/documents",
        [({}, 5), ({"sort": "size"}, 5), ({"sort": "-title"}, 5)],
    ),
    # The caller's own session, from the fixture's login, is live too.
    Listing("sessions", seed_sessions, "/users/me/sessions", [({}, 5)]),
    Listing(
        "search",
        seed_search,
        "/search",
        [
            ({"q": "topology"}, 5),
            ({"q": "topology", "type": "note"}, 4),
            ({"q": "open sets", "subject_id": "{sid}"}, 4),
            ({"q": "zebra"}, 0),
        ],
    ),
]


@pytest.mark.parametrize("page_size", [1, 3, 100])
@pytest.mark.parametrize("listing", LISTS, ids=lambda listing: listing.name)
def test_every_list_walks_to_its_total_for_every_filter(client, user, other, listing, page_size):
    values = listing.seed(client, user)
    listing.seed(client, other)  # another user's rows never count
    for query, expected in listing.queries:
        query = {k: str(v).format(**values) for k, v in query.items()}
        path = API + listing.path.format(**values)
        seen: list[tuple[Any, ...]] = []
        page = 1
        while True:
            response = client.get(
                path, query_string={**query, "page": page, "page_size": page_size},
                headers=user.headers,
            )
            assert response.status_code == 200, response.json
            meta = json.loads(response.headers["X-Pagination"])
            items = response.json
            seen += [(item.get("type"), item["id"]) for item in items]
            if not items:
                break
            page += 1
        assert len(seen) == len(set(seen)) == expected, (query, seen)
        assert meta["total"] == expected, (query, meta)
        # Past the end: an empty page that still counts them all.
        assert meta.get("total_pages", 0) == -(-expected // page_size)
