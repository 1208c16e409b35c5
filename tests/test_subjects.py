"""Subjects: owner-scoped CRUD, archive, search, sort, pagination, ETags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text, update

from eleva.data.db import db
from eleva.data.models import Subject, User
from tests.conftest import assert_error_shape, requires_postgres

SUBJECTS = "/api/v1/subjects/"


def url(subject_id: int) -> str:
    return f"{SUBJECTS}{subject_id}"


def create(client, account, name: str = "Physics", **fields) -> dict:
    response = client.post(SUBJECTS, headers=account.headers, json={"name": name, **fields})
    assert response.status_code == 201, response.json
    return response.json


def listing(client, account, **query) -> tuple[list[dict], dict]:
    response = client.get(SUBJECTS, headers=account.headers, query_string=query)
    assert response.status_code == 200, response.json
    return response.json, json.loads(response.headers["X-Pagination"])


def subject_row(app, subject_id: int) -> dict | None:
    with app.app_context():
        subject = db.session.get(Subject, subject_id)
        return (
            None
            if subject is None
            else {c.name: getattr(subject, c.name) for c in Subject.__table__.columns}
        )


# -- create ------------------------------------------------------------------------------


def test_create_returns_201_with_location(client, user):
    response = client.post(
        SUBJECTS,
        headers=user.headers,
        json={"name": "  Linear algebra ", "description": "Vectors", "color": "#3a7bd5"},
    )
    assert response.status_code == 201
    body = response.json
    assert set(body) == {
        "id",
        "name",
        "description",
        "color",
        "is_archived",
        "created_at",
        "updated_at",
    }
    assert body["name"] == "Linear algebra"
    assert body["color"] == "#3A7BD5"  # stored normalised
    assert body["is_archived"] is False
    assert response.headers["Location"].endswith(f"/api/v1/subjects/{body['id']}")
    assert client.get(response.headers["Location"], headers=user.headers).json == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 121}, "name"),
        ({"name": None}, "name"),
        ({"name": 42}, "name"),
        ({"name": "ok", "color": "red"}, "color"),
        ({"name": "ok", "color": "#12345"}, "color"),
        ({"name": "ok", "color": "#GGGGGG"}, "color"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
        ({"name": "ok", "id": 5}, "id"),
        ({"name": "ok", "owner_id": 2}, "owner_id"),
        ({"name": "ok", "is_archived": True}, "is_archived"),
        ({"name": "ok", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"name": "ok", "updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ({"name": "nul\x00l"}, "name"),
        ({"name": "\u200b\u200f"}, "name"),  # nothing visible
    ],
)
def test_create_validation(app, client, user, body, field):
    errors = assert_error_shape(client.post(SUBJECTS, headers=user.headers, json=body), 422)[
        "errors"
    ]["json"]
    assert field in errors
    with app.app_context():
        assert db.session.scalar(select(func.count(Subject.id))) == 0


def test_boundaries_are_accepted(client, user):
    body = create(client, user, "n" * 120, description="d" * 2000, color=None)
    assert len(body["name"]) == 120 and body["color"] is None
    assert create(client, user, "x")["name"] == "x"


@pytest.mark.parametrize(
    ("first", "second"), [("Physics", "physics"), ("Physics", "PHYSICS "), ("Ünïcödé", "üNÏCÖDÉ")]
)
def test_same_name_in_any_case_is_409_for_one_owner(client, user, other, first, second):
    create(client, user, first)
    body = assert_error_shape(
        client.post(SUBJECTS, headers=user.headers, json={"name": second}), 409
    )
    assert list(body["errors"]["json"]) == ["name"]
    create(client, other, second)  # another owner may use it


def test_create_needs_a_token(client):
    assert_error_shape(client.post(SUBJECTS, json={"name": "Physics"}), 401)


# -- read, update, delete, ownership ---------------------------------------------------


@pytest.fixture
def subject(client, user):
    return create(client, user, "Physics", description="Mechanics", color="#112233")


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize(("who", "status"), [("owner", None), ("other", 404), ("anonymous", 401)])
def test_ownership_matrix(app, client, user, other, subject, method, who, status):
    before = subject_row(app, subject["id"])
    headers = {"owner": user.headers, "other": other.headers, "anonymous": {}}[who]
    kwargs = {"json": {"name": "Hijacked"}} if method == "patch" else {}
    response = getattr(client, method)(url(subject["id"]), headers=headers, **kwargs)
    if who == "owner":
        assert response.status_code == {"get": 200, "patch": 200, "delete": 204}[method]
        return
    body = assert_error_shape(response, status)
    if status == 404:  # indistinguishable from a subject that does not exist
        missing = getattr(client, method)(url(subject["id"] + 1000), headers=headers, **kwargs)
        assert missing.json == body
    assert subject_row(app, subject["id"]) == before


@pytest.mark.parametrize("path", ["0", "-1", "abc", "1.5", "99999999999999999999", "2147483648"])
def test_impossible_ids_are_404(client, user, path):
    assert_error_shape(client.get(f"{SUBJECTS}{path}", headers=user.headers), 404)


def test_patch_is_partial(client, user, subject):
    response = client.patch(url(subject["id"]), headers=user.headers, json={"description": None})
    assert response.status_code == 200
    body = response.json
    assert body["description"] is None
    assert (body["name"], body["color"], body["is_archived"]) == ("Physics", "#112233", False)
    assert body["updated_at"] > subject["updated_at"]
    assert body["created_at"] == subject["created_at"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": 9},
        {"owner_id": 2},
        {"created_at": "2020-01-01T00:00:00+00:00"},
        {"updated_at": "2020-01-01T00:00:00+00:00"},
        {"name": ""},
        {"name": None},
        {"is_archived": "yes"},
        {"is_archived": 1},
        {"color": "blue"},
        {"unknown": True},
    ],
)
def test_patch_refuses_read_only_and_invalid_fields(app, client, user, subject, body):
    before = subject_row(app, subject["id"])
    assert_error_shape(client.patch(url(subject["id"]), headers=user.headers, json=body), 422)
    assert subject_row(app, subject["id"]) == before


def test_patch_rename_to_a_taken_name_is_409(app, client, user, subject):
    other = create(client, user, "Chemistry")
    before = subject_row(app, other["id"])
    assert_error_shape(
        client.patch(url(other["id"]), headers=user.headers, json={"name": "PHYSICS"}), 409
    )
    assert subject_row(app, other["id"]) == before
    # Renaming a subject to its own name in another case is not a conflict.
    assert (
        client.patch(url(subject["id"]), headers=user.headers, json={"name": "physics"}).status_code
        == 200
    )


def test_if_match_is_optional(client, user, subject):
    assert (
        client.patch(
            url(subject["id"]), headers=user.headers, json={"color": "#ABCDEF"}
        ).status_code
        == 200
    )
    assert client.delete(url(subject["id"]), headers=user.headers).status_code == 204


def test_if_match_star_matches_any_version(client, user, subject):
    response = client.patch(
        url(subject["id"]), headers={**user.headers, "If-Match": "*"}, json={"name": "Any"}
    )
    assert response.status_code == 200


def test_archive_is_a_soft_state(client, user, subject):
    archived = client.patch(
        url(subject["id"]), headers=user.headers, json={"is_archived": True}
    ).json
    assert archived["is_archived"] is True
    assert listing(client, user)[0] == []
    assert [s["id"] for s in listing(client, user, archived="true")[0]] == [subject["id"]]
    assert client.get(url(subject["id"]), headers=user.headers).json["description"] == "Mechanics"
    client.patch(url(subject["id"]), headers=user.headers, json={"is_archived": False})
    assert [s["id"] for s in listing(client, user)[0]] == [subject["id"]]


# -- list: filters, search, sort, pagination -------------------------------------------


def test_list_filters_by_archive_state(client, user, other):
    active = create(client, user, "Active")
    archived = create(client, user, "Archived")
    client.patch(url(archived["id"]), headers=user.headers, json={"is_archived": True})
    create(client, other, "Not mine")
    assert [s["name"] for s in listing(client, user)[0]] == ["Active"]
    assert [s["name"] for s in listing(client, user, archived="false")[0]] == ["Active"]
    assert [s["name"] for s in listing(client, user, archived="true")[0]] == ["Archived"]
    assert {s["id"] for s in listing(client, user, archived="all")[0]} == {
        active["id"],
        archived["id"],
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("phys", {"Physics", "Astrophysics"}),
        ("PHYS", {"Physics", "Astrophysics"}),
        ("quantum", {"Physics"}),  # in the description
        ("100%", {"100% maths"}),
        ("%", {"100% maths"}),
        ("_", {"snake_case"}),
        ("e_c", {"snake_case"}),
        ("ünï", {"Ünïcode"}),
        ("ÜNÏ", {"Ünïcode"}),
        ("nothing", set()),
        ("", {"Physics", "Astrophysics", "100% maths", "snake_case", "Ünïcode", "Plain"}),
    ],
)
def test_search_is_case_insensitive_and_literal(client, user, other, q, expected):
    create(client, user, "Physics", description="Quantum mechanics")
    create(client, user, "Astrophysics")
    create(client, user, "100% maths")
    create(client, user, "snake_case")
    create(client, user, "Ünïcode")
    create(client, user, "Plain", description="100 percent plain")
    create(client, other, "Physics for others")
    items, meta = listing(client, user, q=q)
    assert {s["name"] for s in items} == expected
    assert meta["total"] == len(expected)


@pytest.fixture
def many(app, client, user):
    """25 subjects with tied timestamps and names in mixed case, to test ordering."""
    names = [
        f"{'abcdefghij'[i % 10]}{'ABCDE'[i % 5]}-{i:02d}" if i % 2 else f"Topic {i:02d}"
        for i in range(25)
    ]
    ids = [create(client, user, name)["id"] for name in names]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        for n, subject_id in enumerate(ids):
            # Pairs share a timestamp: only the id can order them.
            stamp = base + timedelta(minutes=n // 2)
            db.session.execute(
                update(Subject)
                .where(Subject.id == subject_id)
                .values(created_at=stamp, updated_at=stamp)
            )
        db.session.commit()
    return ids


SORTS = ["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_key_pages_stably(client, user, many, sort):
    everything, meta = listing(client, user, sort=sort, page_size=100)
    assert meta["total"] == 25
    key = sort.lstrip("-")

    def sort_key(s: dict):
        return (s["name"].lower() if key == "name" else s[key], s["id"])

    assert everything == sorted(everything, key=sort_key, reverse=sort.startswith("-"))
    paged = []
    for page in range(1, 5):
        items, meta = listing(client, user, sort=sort, page=page, page_size=7)
        paged += items
    assert [s["id"] for s in paged] == [s["id"] for s in everything]  # no overlap, no gap


def test_default_sort_is_most_recently_updated_first(client, user):
    first = create(client, user, "First")
    create(client, user, "Second")
    client.patch(url(first["id"]), headers=user.headers, json={"description": "touched"})
    assert listing(client, user)[0][0]["name"] == "First"


def test_pagination_metadata(client, user, many):
    items, meta = listing(client, user, page=2, page_size=10)
    assert len(items) == 10
    assert meta == {
        "total": 25,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 2,
        "previous_page": 1,
        "next_page": 3,
    }
    items, meta = listing(client, user, page=3, page_size=10)
    assert len(items) == 5 and "next_page" not in meta
    items, meta = listing(client, user, page=9, page_size=10)
    assert items == [] and meta["total"] == 25 and "page" not in meta
    items, meta = listing(client, user)
    assert len(items) == 20  # default page size


def test_empty_list_metadata(client, user):
    items, meta = listing(client, user)
    assert items == [] and meta == {"total": 0, "total_pages": 0}


@pytest.mark.parametrize(
    "query",
    [
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "ten"},
        {"sort": "password_hash"},
        {"sort": "name;drop table users"},
        {"sort": "--name"},
        {"archived": "maybe"},
        {"archived": "1"},
        {"q": "q" * 101},
        {"q": "nul\x00"},
    ],
)
def test_bad_list_queries_are_422(client, user, query):
    assert_error_shape(client.get(SUBJECTS, headers=user.headers, query_string=query), 422)


@pytest.mark.parametrize("page", [10**6, 10**15, 10**30])
def test_huge_page_numbers_are_an_empty_page(client, user, many, page):
    items, meta = listing(client, user, page=page, page_size=100)
    assert items == [] and meta["total"] == 25


def test_page_size_100_is_allowed(client, user, many):
    assert len(listing(client, user, page_size=100)[0]) == 25


# -- the list refuses an ended session before reading anything ---------------------------


@pytest.mark.parametrize("query", [{}, {"q": "phys"}, {"page": 50}])
def test_the_list_refuses_an_ended_session(client, user, count_queries, query):
    create(client, user, "Physics")
    assert client.post("/api/v1/auth/logout", headers=user.headers).status_code == 204
    with count_queries() as statements:
        response = client.get(SUBJECTS, headers=user.headers, query_string=query)
    assert len(statements) == 1, statements  # the session check, and nothing after it
    body = assert_error_shape(response, 401)
    assert "Physics" not in response.get_data(as_text=True)
    assert body["message"] == "The session has ended or the account is inactive."


def test_the_list_refuses_a_deactivated_user(app, client, user):
    create(client, user, "Physics")
    with app.app_context():
        db.session.get(User, user.id).is_active = False
        db.session.commit()
    assert_error_shape(client.get(SUBJECTS, headers=user.headers), 401)


def test_a_search_past_the_last_page_still_counts_its_matches(client, user):
    for name in ("Physics", "Physical chemistry", "History"):
        create(client, user, name)
    items, meta = listing(client, user, q="phys", page=7, page_size=1)
    assert items == [] and meta["total"] == 2


def test_head_of_the_list_is_checked_like_get(client, user):
    create(client, user, "Physics")
    response = client.head(SUBJECTS, headers=user.headers)
    assert response.status_code == 200 and response.get_data() == b""
    assert json.loads(response.headers["X-Pagination"])["total"] == 1
    assert client.post("/api/v1/auth/logout", headers=user.headers).status_code == 204
    assert client.head(SUBJECTS, headers=user.headers).status_code == 401


def test_an_ended_session_is_401_before_a_bad_query_is_422(client, user):
    bad = {"sort": "shoe_size"}
    assert_error_shape(client.get(SUBJECTS, headers=user.headers, query_string=bad), 422)
    assert client.post("/api/v1/auth/logout", headers=user.headers).status_code == 204
    assert_error_shape(client.get(SUBJECTS, headers=user.headers, query_string=bad), 401)


def test_the_list_shows_only_the_token_owners_subjects(client, user, other):
    create(client, user, "Mine")
    create(client, other, "Theirs")
    items, meta = listing(client, user, archived="all")
    assert [item["name"] for item in items] == ["Mine"] and meta["total"] == 1


def test_list_needs_a_token(client):
    assert_error_shape(client.get(SUBJECTS), 401)


# -- cascade -----------------------------------------------------------------------------


def test_deleting_a_user_deletes_their_subjects_in_the_database(app, client, user, other):
    create(client, user, "Mine")
    create(client, other, "Theirs")
    with app.app_context():
        # Core DELETE: the database's ON DELETE CASCADE, not the ORM, must do the work.
        db.session.execute(delete(User).where(User.id == user.id))
        db.session.commit()
        assert db.session.scalars(select(Subject.name)).all() == ["Theirs"]


def test_deleting_a_user_through_the_orm_cascades_too(app, client, user):
    create(client, user, "Mine")
    with app.app_context():
        db.session.delete(db.session.get(User, user.id))
        db.session.commit()
        assert db.session.scalar(select(func.count(Subject.id))) == 0


def test_list_query_uses_an_index(app, client, user, many):
    from tests.conftest import ON_POSTGRES

    if not ON_POSTGRES:
        with app.app_context():
            plan = db.session.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM subjects WHERE owner_id = :o AND is_archived = 0 "
                    "ORDER BY updated_at DESC, id DESC LIMIT 20"
                ),
                {"o": user.id},
            ).all()
        assert any("ix_subjects_owner_updated" in str(row) for row in plan), plan


# -- list totals: counters kept by triggers ----------------------------------------------


def actual_counts(app, owner_id: int) -> dict[str, int]:
    with app.app_context():
        rows = dict(
            db.session.execute(
                select(Subject.is_archived, func.count())
                .where(Subject.owner_id == owner_id)
                .group_by(Subject.is_archived)
            ).all()
        )
    active, archived = rows.get(False, 0), rows.get(True, 0)
    return {"false": active, "true": archived, "all": active + archived}


def assert_totals_exact(app, client, account) -> None:
    expected = actual_counts(app, account.id)
    for archived, total in expected.items():
        assert listing(client, account, archived=archived)[1]["total"] == total, archived


def test_a_search_counts_its_matches(client, user):
    for name in ("Physics", "Chemistry", "Physiology"):
        create(client, user, name)
    assert listing(client, user, q="phys")[1]["total"] == 2


@requires_postgres
def test_list_totals_stay_exact_under_concurrent_writes(app, client, user):
    import threading

    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        local = app.test_client()
        barrier.wait()
        created = local.post(SUBJECTS, headers=user.headers, json={"name": f"Concurrent {n}"}).json
        if n % 2:
            local.patch(url(created["id"]), headers=user.headers, json={"is_archived": True})
        if n % 3 == 0:
            local.delete(url(created["id"]), headers=user.headers)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_totals_exact(app, client, user)
