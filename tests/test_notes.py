"""Notes: in the caller's own subjects; lists with excerpts, sort, pagination; ETags;
moving between subjects; the body limit; cascades; statements per request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from eleva.data.db import db
from eleva.data.models import Note, Subject, User
from eleva.notes.routes import NOTE_BODY_BYTES
from tests.conftest import assert_error_shape, requires_postgres

SUBJECTS = "/api/v1/subjects/"
NOTES = "/api/v1/notes/"


def notes_of(subject_id: int) -> str:
    return f"{SUBJECTS}{subject_id}/notes"


def url(note_id: int) -> str:
    return f"{NOTES}{note_id}"


def make_subject(client, account, name: str = "Physics") -> int:
    response = client.post(SUBJECTS, headers=account.headers, json={"name": name})
    assert response.status_code == 201, response.json
    return response.json["id"]


def create(client, account, subject_id: int, title: str = "Waves", **fields) -> dict:
    response = client.post(
        notes_of(subject_id), headers=account.headers, json={"title": title, **fields}
    )
    assert response.status_code == 201, response.json
    return response.json


def listing(client, account, subject_id: int, **query) -> tuple[list[dict], dict]:
    response = client.get(notes_of(subject_id), headers=account.headers, query_string=query)
    assert response.status_code == 200, response.json
    return response.json, json.loads(response.headers["X-Pagination"])


def note_row(app, note_id: int) -> dict | None:
    with app.app_context():
        note = db.session.get(Note, note_id)
        return (
            None
            if note is None
            else {c.name: getattr(note, c.name) for c in Note.__table__.columns}
        )


def count_notes(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Note.id)))


@pytest.fixture
def subject(client, user) -> int:
    return make_subject(client, user)


@pytest.fixture
def note(client, user, subject) -> dict:
    return create(client, user, subject, "Waves", body="# Waves\n\nA *wave* carries energy.")


# -- create ------------------------------------------------------------------------------


def test_create_returns_201_with_location(client, user, subject):
    response = client.post(
        notes_of(subject),
        headers=user.headers,
        json={"title": "  Optics ", "body": "  indented code\n\n**Snell**'s law  \n"},
    )
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"id", "subject_id", "title", "body", "created_at", "updated_at"}
    assert body["title"] == "Optics"  # trimmed
    assert body["body"] == "  indented code\n\n**Snell**'s law  \n"  # Markdown kept exactly
    assert body["subject_id"] == subject
    assert body["created_at"].endswith("+00:00")
    assert response.headers["Location"].endswith(f"/api/v1/notes/{body['id']}")
    assert client.get(response.headers["Location"], headers=user.headers).json == body


def test_body_is_optional_and_may_be_empty(client, user, subject):
    assert create(client, user, subject, "No body")["body"] == ""
    assert create(client, user, subject, "Empty", body="")["body"] == ""
    items, _ = listing(client, user, subject)
    assert {item["excerpt"] for item in items} == {""}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"body": "text"}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "\u200b\u200f"}, "title"),  # nothing visible
        ({"title": "t" * 201}, "title"),
        ({"title": None}, "title"),
        ({"title": 42}, "title"),
        ({"title": ["a"]}, "title"),
        ({"title": "nul\x00"}, "title"),
        ({"title": "ok", "body": None}, "body"),
        ({"title": "ok", "body": 7}, "body"),
        ({"title": "ok", "body": {"md": "x"}}, "body"),
        ({"title": "ok", "body": "b" * 100_001}, "body"),
        ({"title": "ok", "body": "nul\x00l"}, "body"),
        ({"title": "ok", "id": 5}, "id"),
        ({"title": "ok", "owner_id": 2}, "owner_id"),
        ({"title": "ok", "subject_id": 2}, "subject_id"),  # the URL says where
        ({"title": "ok", "excerpt": "x"}, "excerpt"),
        ({"title": "ok", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"title": "ok", "updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
        ({"title": "ok", "unknown": True}, "unknown"),
    ],
)
def test_create_validation(app, client, user, subject, body, field):
    response = client.post(notes_of(subject), headers=user.headers, json=body)
    errors = assert_error_shape(response, 422)["errors"]["json"]
    assert field in errors
    assert count_notes(app) == 0


def test_create_refuses_a_missing_body_and_non_json(client, user, subject):
    assert_error_shape(client.post(notes_of(subject), headers=user.headers), 422)
    assert_error_shape(
        client.post(
            notes_of(subject), headers=user.headers, data="title=x", content_type="text/plain"
        ),
        415,
    )
    assert_error_shape(
        client.post(
            notes_of(subject), headers=user.headers, data=b"{", content_type="application/json"
        ),
        400,
    )


def test_title_boundaries(client, user, subject):
    assert create(client, user, subject, "t" * 200)["title"] == "t" * 200
    assert create(client, user, subject, "x")["title"] == "x"
    assert create(client, user, subject, "🧬" * 200)["title"] == "🧬" * 200


def test_the_same_title_twice_is_two_notes(client, user, subject):
    first = create(client, user, subject, "Same")
    second = create(client, user, subject, "Same")
    assert first["id"] != second["id"]


# -- the body limit: 100,000 characters in any script ------------------------------------


def test_a_note_of_100000_four_byte_characters_fits_and_100001_does_not(app, client, user, subject):
    # Flask's test client escapes non-ASCII, as Python's json.dumps does: each emoji is
    # sent as a 12-byte surrogate pair escape, 1.2 MB in all.
    body = "🧬" * 100_000
    created = client.post(
        notes_of(subject), headers=user.headers, json={"title": "Big", "body": body}
    )
    assert created.status_code == 201, created.status_code
    assert client.get(url(created.json["id"]), headers=user.headers).json["body"] == body
    too_long = client.post(
        notes_of(subject), headers=user.headers, json={"title": "Big", "body": body + "🧬"}
    )
    assert "body" in assert_error_shape(too_long, 422)["errors"]["json"]
    assert count_notes(app) == 1


def test_a_note_of_100000_characters_fits_as_raw_utf8_too(client, user, subject):
    for char in ("𝄞", "é", "語", "a"):
        raw = json.dumps({"title": "Raw", "body": char * 100_000}, ensure_ascii=False).encode()
        response = client.post(
            notes_of(subject), headers=user.headers, data=raw, content_type="application/json"
        )
        assert response.status_code == 201, (char, response.status_code)


def test_the_largest_note_fits_in_a_patch_too(client, user, note):
    response = client.patch(
        url(note["id"]), headers=user.headers, json={"title": "🧬" * 200, "body": "🧬" * 100_000}
    )
    assert response.status_code == 200
    assert len(response.json["body"]) == 100_000


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_body_over_the_note_limit_is_413(app, client, user, subject, note, method):
    before = note_row(app, note["id"])
    path = notes_of(subject) if method == "post" else url(note["id"])
    padding = "x" * (NOTE_BODY_BYTES + 1)
    response = getattr(client, method)(
        path, headers=user.headers, json={"title": "t", "body": padding}
    )
    assert_error_shape(response, 413)
    assert count_notes(app) == 1 and note_row(app, note["id"]) == before


def test_other_routes_keep_the_small_json_limit(client, user, note):
    # The note limit is for the note writes only.
    response = client.patch(
        f"{SUBJECTS}{note['subject_id']}", headers=user.headers, json={"description": "d" * 70_000}
    )
    assert_error_shape(response, 413)


# -- read, update, delete, ownership ---------------------------------------------------


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize(("who", "status"), [("owner", None), ("other", 404), ("anonymous", 401)])
def test_ownership_matrix_for_a_note(app, client, user, other, note, method, who, status):
    before = note_row(app, note["id"])
    headers = {"owner": user.headers, "other": other.headers, "anonymous": {}}[who]
    kwargs = {"json": {"title": "Hijacked"}} if method == "patch" else {}
    response = getattr(client, method)(url(note["id"]), headers=headers, **kwargs)
    if who == "owner":
        assert response.status_code == {"get": 200, "patch": 200, "delete": 204}[method]
        return
    body = assert_error_shape(response, status)
    if status == 404:  # indistinguishable from a note that does not exist
        missing = getattr(client, method)(url(note["id"] + 1000), headers=headers, **kwargs)
        assert missing.json == body
    assert note_row(app, note["id"]) == before


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(("who", "status"), [("other", 404), ("anonymous", 401)])
def test_ownership_matrix_for_a_subjects_notes(app, client, user, other, note, method, who, status):
    headers = {"other": other.headers, "anonymous": {}}[who]
    kwargs = {"json": {"title": "Planted"}} if method == "post" else {}
    response = getattr(client, method)(notes_of(note["subject_id"]), headers=headers, **kwargs)
    body = assert_error_shape(response, status)
    assert "Waves" not in response.get_data(as_text=True)
    if status == 404:
        missing = getattr(client, method)(
            notes_of(note["subject_id"] + 1000), headers=headers, **kwargs
        )
        assert missing.json == body
    assert count_notes(app) == 1


@pytest.mark.parametrize("path", ["0", "-1", "abc", "1.5", "99999999999999999999", "2147483648"])
def test_impossible_ids_are_404(client, user, path):
    assert_error_shape(client.get(f"{NOTES}{path}", headers=user.headers), 404)
    assert_error_shape(client.get(f"{SUBJECTS}{path}/notes", headers=user.headers), 404)
    assert_error_shape(
        client.post(f"{SUBJECTS}{path}/notes", headers=user.headers, json={"title": "x"}), 404
    )


def test_patch_is_partial(client, user, note):
    response = client.patch(url(note["id"]), headers=user.headers, json={"title": "Sound"})
    assert response.status_code == 200
    body = response.json
    assert (body["title"], body["body"], body["subject_id"]) == (
        "Sound",
        note["body"],
        note["subject_id"],
    )
    assert body["updated_at"] > note["updated_at"]
    assert body["created_at"] == note["created_at"]
    body = client.patch(url(note["id"]), headers=user.headers, json={"body": ""}).json
    assert (body["title"], body["body"]) == ("Sound", "")


@pytest.mark.parametrize(
    "body",
    [
        {"id": 9},
        {"owner_id": 2},
        {"excerpt": "x"},
        {"created_at": "2020-01-01T00:00:00+00:00"},
        {"updated_at": "2020-01-01T00:00:00+00:00"},
        {"title": ""},
        {"title": None},
        {"title": "t" * 201},
        {"body": None},
        {"body": "b" * 100_001},
        {"subject_id": None},
        {"subject_id": "1"},
        {"subject_id": 1.5},
        {"subject_id": True},
        {"subject_id": 0},
        {"subject_id": -3},
        {"subject_id": 2**31},
        {"subject_id": 10**30},
        {"unknown": True},
    ],
)
def test_patch_refuses_read_only_and_invalid_fields(app, client, user, note, body):
    before = note_row(app, note["id"])
    errors = assert_error_shape(
        client.patch(url(note["id"]), headers=user.headers, json=body), 422
    )["errors"]["json"]
    assert set(errors) == set(body)
    assert note_row(app, note["id"]) == before


def test_patch_needs_a_body(client, user, note):
    assert_error_shape(client.patch(url(note["id"]), headers=user.headers), 422)


def test_if_match_is_optional_and_star_matches(client, user, note):
    assert (
        client.patch(url(note["id"]), headers=user.headers, json={"body": "x"}).status_code == 200
    )
    assert (
        client.patch(
            url(note["id"]), headers={**user.headers, "If-Match": "*"}, json={"body": "y"}
        ).status_code
        == 200
    )
    assert client.delete(url(note["id"]), headers=user.headers).status_code == 204


# -- moving a note to another subject ----------------------------------------------------


def test_a_note_moves_to_another_of_the_callers_subjects(client, user, note):
    chemistry = make_subject(client, user, "Chemistry")
    moved = client.patch(url(note["id"]), headers=user.headers, json={"subject_id": chemistry})
    assert moved.status_code == 200
    assert moved.json["subject_id"] == chemistry
    assert listing(client, user, note["subject_id"]) == ([], {"total": 0, "total_pages": 0})
    items, meta = listing(client, user, chemistry)
    assert [item["id"] for item in items] == [note["id"]] and meta["total"] == 1
    # Moving to where it already is is a plain write.
    again = client.patch(url(note["id"]), headers=user.headers, json={"subject_id": chemistry})
    assert again.status_code == 200 and listing(client, user, chemistry)[1]["total"] == 1


@pytest.mark.parametrize("target", ["others", "missing", "deleted"])
def test_moving_to_a_subject_not_the_callers_is_a_422_on_subject_id(
    app, client, user, other, note, target
):
    if target == "others":
        subject_id = make_subject(client, other, "Theirs")
    elif target == "missing":
        subject_id = 2**31 - 1
    else:
        subject_id = make_subject(client, user, "Gone")
        assert client.delete(f"{SUBJECTS}{subject_id}", headers=user.headers).status_code == 204
    before = note_row(app, note["id"])
    response = client.patch(
        url(note["id"]), headers=user.headers, json={"subject_id": subject_id, "title": "Moved"}
    )
    body = assert_error_shape(response, 422)
    assert list(body["errors"]["json"]) == ["subject_id"]
    assert note_row(app, note["id"]) == before
    if target == "others":
        assert listing(client, other, subject_id)[0] == []


def test_the_database_refuses_a_note_in_another_users_subject(app, client, user, other, note):
    """Defence in depth: the (owner_id, subject_id) foreign key, whatever the code does."""
    theirs = make_subject(client, other, "Theirs")
    with app.app_context():
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            db.session.execute(update(Note).where(Note.id == note["id"]).values(subject_id=theirs))
            db.session.flush()
        db.session.rollback()


# -- list: excerpts, sort, pagination ----------------------------------------------------


def test_list_items_carry_an_excerpt_instead_of_the_body(client, user, subject):
    long_body = "# Heading\n\n" + "Some **bold** [linked](https://x.org) words. " * 40
    created = create(client, user, subject, "Long", body=long_body)
    items, meta = listing(client, user, subject)
    assert meta["total"] == 1
    (item,) = items
    assert set(item) == {"id", "subject_id", "title", "excerpt", "created_at", "updated_at"}
    assert item["excerpt"].startswith("Heading Some bold linked words. Some bold")
    assert len(item["excerpt"]) <= 200 and item["excerpt"].endswith("…")
    assert {k: v for k, v in item.items() if k != "excerpt"} == {
        k: v for k, v in created.items() if k != "body"
    }


def test_the_excerpt_follows_the_body(client, user, note):
    client.patch(url(note["id"]), headers=user.headers, json={"title": "Only the title"})
    assert (
        listing(client, user, note["subject_id"])[0][0]["excerpt"] == "Waves A wave carries energy."
    )
    client.patch(url(note["id"]), headers=user.headers, json={"body": "> *New* text"})
    assert listing(client, user, note["subject_id"])[0][0]["excerpt"] == "New text"


def test_the_list_shows_only_that_subjects_notes(client, user, other, subject):
    mine = create(client, user, subject, "Mine")
    create(client, user, make_subject(client, user, "Other subject"), "Elsewhere")
    create(client, other, make_subject(client, other, "Physics"), "Theirs")
    items, meta = listing(client, user, subject)
    assert [item["id"] for item in items] == [mine["id"]] and meta["total"] == 1


@pytest.fixture
def many(app, client, user, subject) -> list[int]:
    """25 notes with tied timestamps and titles in mixed case, to test ordering."""
    titles = [
        f"{'abcdefghij'[i % 10]}{'ABCDE'[i % 5]}-{i:02d}" if i % 2 else f"Topic {i:02d}"
        for i in range(25)
    ]
    ids = [create(client, user, subject, title)["id"] for title in titles]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        for n, note_id in enumerate(ids):
            # Pairs share a timestamp: only the id can order them; created and updated
            # orders differ.
            db.session.execute(
                update(Note)
                .where(Note.id == note_id)
                .values(
                    created_at=base + timedelta(minutes=n // 2),
                    updated_at=base + timedelta(minutes=(25 - n) // 2),
                )
            )
        db.session.commit()
    return ids


SORTS = ["title", "-title", "created_at", "-created_at", "updated_at", "-updated_at"]


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_key_pages_stably(client, user, subject, many, sort):
    everything, meta = listing(client, user, subject, sort=sort, page_size=100)
    assert meta["total"] == 25
    key = sort.lstrip("-")

    def sort_key(item: dict):
        return (item["title"].lower() if key == "title" else item[key], item["id"])

    assert everything == sorted(everything, key=sort_key, reverse=sort.startswith("-"))
    paged = []
    for page in range(1, 5):
        items, _ = listing(client, user, subject, sort=sort, page=page, page_size=7)
        paged += items
    assert [item["id"] for item in paged] == [item["id"] for item in everything]


def test_default_sort_is_most_recently_updated_first(client, user, subject):
    first = create(client, user, subject, "First")
    create(client, user, subject, "Second")
    client.patch(url(first["id"]), headers=user.headers, json={"body": "touched"})
    assert [item["title"] for item in listing(client, user, subject)[0]] == ["First", "Second"]


def test_pagination_metadata(client, user, subject, many):
    items, meta = listing(client, user, subject, page=2, page_size=10)
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
    items, meta = listing(client, user, subject, page=3, page_size=10)
    assert len(items) == 5 and "next_page" not in meta
    items, meta = listing(client, user, subject, page=9, page_size=10)
    assert items == [] and meta["total"] == 25 and "page" not in meta
    assert len(listing(client, user, subject)[0]) == 20  # default page size
    assert len(listing(client, user, subject, page_size=100)[0]) == 25


def test_empty_list_metadata(client, user, subject):
    assert listing(client, user, subject) == ([], {"total": 0, "total_pages": 0})


@pytest.mark.parametrize(
    "query",
    [
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "ten"},
        {"sort": "body"},
        {"sort": "name"},
        {"sort": "--title"},
        {"sort": "title;drop table notes"},
        {"sort": "nul\x00"},
    ],
)
def test_bad_list_queries_are_422(client, user, subject, query):
    assert_error_shape(client.get(notes_of(subject), headers=user.headers, query_string=query), 422)


@pytest.mark.parametrize("page", [10**6, 10**15, 10**30])
def test_huge_page_numbers_are_an_empty_page(client, user, subject, many, page):
    items, meta = listing(client, user, subject, page=page, page_size=100)
    assert items == [] and meta["total"] == 25


def test_the_list_refuses_an_ended_session(client, user, note, count_queries):
    assert client.post("/api/v1/auth/logout", headers=user.headers).status_code == 204
    with count_queries() as statements:
        response = client.get(notes_of(note["subject_id"]), headers=user.headers)
    assert_error_shape(response, 401)
    assert len(statements) == 1, statements  # the session check, and nothing after it
    assert "Waves" not in response.get_data(as_text=True)


# -- counters, cascades ------------------------------------------------------------------


def actual_count(app, subject_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).where(Note.subject_id == subject_id))


def test_list_totals_stay_exact_through_every_kind_of_write(app, client, user, subject):
    chemistry = make_subject(client, user, "Chemistry")
    ids = [create(client, user, subject, f"N{i}")["id"] for i in range(5)]
    client.patch(url(ids[0]), headers=user.headers, json={"subject_id": chemistry})
    client.patch(url(ids[1]), headers=user.headers, json={"title": "Renamed"})
    client.delete(url(ids[2]), headers=user.headers)
    with app.app_context():  # writes that bypass the API entirely
        now = datetime.now(UTC)
        db.session.execute(
            Note.__table__.insert(),
            [
                {"owner_id": user.id, "subject_id": chemistry, "title": f"Raw {i}",
                 "created_at": now, "updated_at": now}
                for i in range(3)
            ],
        )  # fmt: skip
        db.session.execute(delete(Note).where(Note.id == ids[3]))
        db.session.execute(update(Note).where(Note.id == ids[4]).values(subject_id=chemistry))
        db.session.commit()
    for subject_id in (subject, chemistry):
        assert listing(client, user, subject_id)[1]["total"] == actual_count(app, subject_id)
    assert actual_count(app, subject) == 1 and actual_count(app, chemistry) == 5


def test_deleting_a_subject_deletes_its_notes(app, client, user, subject, note):
    kept = create(client, user, make_subject(client, user, "Chemistry"), "Kept")
    assert client.delete(f"{SUBJECTS}{subject}", headers=user.headers).status_code == 204
    assert note_row(app, note["id"]) is None
    assert note_row(app, kept["id"]) is not None
    assert_error_shape(client.get(url(note["id"]), headers=user.headers), 404)
    assert_error_shape(client.get(notes_of(subject), headers=user.headers), 404)


def test_deleting_a_user_deletes_their_notes_in_the_database(app, client, user, other, note):
    theirs = create(client, other, make_subject(client, other, "Theirs"), "Theirs")
    with app.app_context():
        # Core DELETE: the database's ON DELETE CASCADE, not the ORM, does the work.
        db.session.execute(delete(User).where(User.id == user.id))
        db.session.commit()
        assert db.session.scalars(select(Note.id)).all() == [theirs["id"]]
        assert db.session.scalar(select(func.count(Subject.id))) == 1


@requires_postgres
def test_list_totals_stay_exact_under_concurrent_writes(app, client, user, subject):
    import threading

    chemistry = make_subject(client, user, "Chemistry")
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        local = app.test_client()
        barrier.wait()
        created = local.post(notes_of(subject), headers=user.headers, json={"title": f"C{n}"}).json
        if n % 2:
            local.patch(url(created["id"]), headers=user.headers, json={"subject_id": chemistry})
        if n % 3 == 0:
            local.delete(url(created["id"]), headers=user.headers)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for subject_id in (subject, chemistry):
        assert listing(client, user, subject_id)[1]["total"] == actual_count(app, subject_id)


# -- statements per request, whatever the number of notes -------------------------------


# -- the OpenAPI spec --------------------------------------------------------------------


def test_the_spec_documents_every_note_route_and_its_errors(client):
    paths = client.get("/openapi.json").json["paths"]
    subject_notes = "/api/v1/subjects/{subject_id}/notes"
    note = "/api/v1/notes/{note_id}"
    expected = {
        (subject_notes, "get"): {"200", "401", "404", "422"},
        (subject_notes, "post"): {"201", "401", "404", "413", "422"},
        (note, "get"): {"200", "304", "401", "404"},
        (note, "patch"): {"200", "401", "404", "412", "413", "422"},
        (note, "delete"): {"204", "401", "404", "412"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert statuses <= set(operation["responses"]), (method, operation["responses"].keys())
        assert operation["summary"]


# -- issue 32: a write limit per user, and notes in the storage quota ----------------------


@pytest.mark.config(RATELIMIT_ENABLED=True, RATELIMIT_NOTE_WRITE="3 per minute")
def test_note_writes_are_limited_per_user(client, user, other, subject):
    created = client.post(f"{SUBJECTS}{subject}/notes", json={"title": "a"}, headers=user.headers)
    assert created.status_code == 201
    url = f"/api/v1/notes/{created.json['id']}"
    assert client.patch(url, json={"body": "b"}, headers=user.headers).status_code == 200
    assert (
        client.post(
            f"{SUBJECTS}{subject}/notes", json={"title": "c"}, headers=user.headers
        ).status_code
        == 201
    )
    for response in (
        client.post(f"{SUBJECTS}{subject}/notes", json={"title": "d"}, headers=user.headers),
        client.patch(url, json={"body": "e"}, headers=user.headers),
    ):
        assert_error_shape(response, 429)
        assert response.headers["Retry-After"]
    # Reading is not limited; another user has their own budget.
    assert client.get(url, headers=user.headers).status_code == 200
    theirs = client.post(SUBJECTS, json={"name": "Theirs"}, headers=other.headers).json["id"]
    assert (
        client.post(
            f"{SUBJECTS}{theirs}/notes", json={"title": "f"}, headers=other.headers
        ).status_code
        == 201
    )


def used_bytes(client, account) -> int:
    return client.get("/api/v1/users/me/storage", headers=account.headers).json["used_bytes"]


@pytest.mark.config(STORAGE_QUOTA_MB=1)
def test_notes_count_in_the_storage_quota(client, user, subject):
    body = "é" * 90_000  # 180,000 bytes in UTF-8
    notes_url = f"{SUBJECTS}{subject}/notes"
    ids = []
    for n in range(5):
        response = client.post(
            notes_url, json={"title": f"n{n}", "body": body}, headers=user.headers
        )
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    assert used_bytes(client, user) == 5 * (180_000 + 2)
    # A sixth passes the quota of 1 MB (1,048,576 bytes): refused, nothing written.
    refused = client.post(notes_url, json={"title": "n5", "body": body}, headers=user.headers)
    assert "quota" in assert_error_shape(refused, 413)["message"]
    assert used_bytes(client, user) == 5 * (180_000 + 2)
    # Growing a note counts the difference; shrinking and deleting free it.
    grown = client.patch(
        f"/api/v1/notes/{ids[0]}", json={"body": "😀" * 90_000}, headers=user.headers
    )
    assert_error_shape(grown, 413)
    assert (
        client.patch(
            f"/api/v1/notes/{ids[0]}", json={"body": "short"}, headers=user.headers
        ).status_code
        == 200
    )
    assert used_bytes(client, user) == 4 * (180_000 + 2) + 2 + 5
    assert client.delete(f"/api/v1/notes/{ids[1]}", headers=user.headers).status_code == 204
    assert used_bytes(client, user) == 3 * (180_000 + 2) + 2 + 5
    # A subject's notes leave the quota with it.
    assert client.delete(f"{SUBJECTS}{subject}", headers=user.headers).status_code == 204
    assert used_bytes(client, user) == 0
