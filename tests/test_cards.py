"""Cards: CRUD, bulk, list filters and sort, moves, notes, ETags; another user's 404."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error_shape

SUBJECTS = "/api/v1/subjects/"
CARDS = "/api/v1/cards/"


def make_subject(client, user, name="Maths", **extra) -> int:
    response = client.post(SUBJECTS, json={"name": name, **extra}, headers=user.headers)
    assert response.status_code == 201, response.json
    return response.json["id"]


def make_card(client, user, sid, front="Q", **extra) -> dict:
    response = client.post(
        f"{SUBJECTS}{sid}/cards", json={"front": front, **extra}, headers=user.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def test_create_get_list(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid, "What is 2+2?", back="4")
    assert card["state"] == "new"
    assert card["stability"] is None and card["difficulty"] is None
    assert card["due"] == card["created_at"]
    assert card["reps"] == 0 and card["lapses"] == 0 and card["last_review_at"] is None
    got = client.get(f"{CARDS}{card['id']}", headers=user.headers)
    assert got.status_code == 200 and got.json == card
    listed = client.get(f"{SUBJECTS}{sid}/cards", headers=user.headers)
    assert listed.json == [card]


def test_new_cards_are_listed_in_creation_order_and_filtered(client, user):
    sid = make_subject(client, user)
    ids = client.post(
        f"{SUBJECTS}{sid}/cards/bulk",
        json={"cards": [{"front": f"Q{i}", "back": f"A{i}"} for i in range(5)]},
        headers=user.headers,
    ).json["ids"]
    assert ids == sorted(ids) and len(ids) == 5
    listed = client.get(
        f"{SUBJECTS}{sid}/cards?sort=created_at&page_size=2&page=2", headers=user.headers
    )
    assert [c["id"] for c in listed.json] == ids[2:4]
    assert [c["front"] for c in client.get(f"{SUBJECTS}{sid}/cards?sort=-created_at",
                                           headers=user.headers).json] == [f"Q{i}" for i in range(4, -1, -1)]  # fmt: skip
    client.patch(f"{CARDS}{ids[1]}", json={"suspended": True}, headers=user.headers)
    client.post(f"{CARDS}{ids[0]}/reviews", json={"rating": 4}, headers=user.headers)
    suspended = client.get(f"{SUBJECTS}{sid}/cards?suspended=true", headers=user.headers).json
    assert [c["id"] for c in suspended] == [ids[1]]
    assert len(client.get(f"{SUBJECTS}{sid}/cards?suspended=false", headers=user.headers).json) == 4
    in_review = client.get(
        f"{SUBJECTS}{sid}/cards?state=review&state=learning", headers=user.headers
    )
    assert [c["id"] for c in in_review.json] == [ids[0]]
    by_due = client.get(f"{SUBJECTS}{sid}/cards?sort=-due", headers=user.headers).json
    assert by_due[0]["id"] == ids[0]  # reviewed: due in days, the others are due since creation


@pytest.mark.parametrize(
    "query", ["state=old", "suspended=yes", "suspended=1", "sort=front", "page=0", "page_size=101"]
)
def test_list_validation(client, user, query):
    sid = make_subject(client, user)
    assert_error_shape(client.get(f"{SUBJECTS}{sid}/cards?{query}", headers=user.headers), 422)


@pytest.mark.parametrize(
    "body",
    [{}, {"front": ""}, {"front": "   "}, {"front": "\u200b"}, {"front": "x" * 10_001},
     {"front": "Q", "back": "x" * 10_001}, {"front": "Q", "note_id": 0},
     {"front": "Q", "note_id": "1"}, {"front": "Q\x00"}, {"front": "Q", "state": "review"},
     {"front": "Q", "due": "2026-01-01T00:00:00+00:00"}, {"front": "Q", "owner_id": 2}],
)  # fmt: skip
def test_create_validation(client, user, body):
    sid = make_subject(client, user)
    assert_error_shape(client.post(f"{SUBJECTS}{sid}/cards", json=body, headers=user.headers), 422)
    assert client.get(f"{SUBJECTS}{sid}/cards", headers=user.headers).json == []


def test_markdown_keeps_its_whitespace_and_sizes_at_the_limit(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid, "  indented\n\n    code  ", back="😀" * 10_000)
    assert card["front"] == "  indented\n\n    code  " and len(card["back"]) == 10_000


def test_bulk_is_all_or_nothing_with_errors_by_index(client, user):
    sid = make_subject(client, user)
    bad = client.post(
        f"{SUBJECTS}{sid}/cards/bulk",
        json={"cards": [{"front": "ok"}, {"front": ""}, {"front": "ok", "bogus": 1}]},
        headers=user.headers,
    )
    body = assert_error_shape(bad, 422)
    assert set(body["errors"]["json"]["cards"]) == {"1", "2"}
    assert client.get(f"{SUBJECTS}{sid}/cards", headers=user.headers).json == []
    for count in (0, 1001):
        too_many = client.post(f"{SUBJECTS}{sid}/cards/bulk",
                               json={"cards": [{"front": "q"}] * count}, headers=user.headers)  # fmt: skip
        assert_error_shape(too_many, 422)
    full = client.post(f"{SUBJECTS}{sid}/cards/bulk", json={"cards": [{"front": "q"}] * 1000},
                       headers=user.headers)  # fmt: skip
    assert full.status_code == 201 and len(full.json["ids"]) == 1000


def test_cards_from_notes(client, user, other):
    sid = make_subject(client, user)
    sid2 = make_subject(client, user, "Chemistry")
    note = client.post(f"{SUBJECTS}{sid}/notes", json={"title": "Sets"}, headers=user.headers).json
    note2 = client.post(
        f"{SUBJECTS}{sid2}/notes", json={"title": "Acids"}, headers=user.headers
    ).json
    osid = make_subject(client, other)
    onote = client.post(f"{SUBJECTS}{osid}/notes", json={"title": "X"}, headers=other.headers).json
    card = make_card(client, user, sid, note_id=note["id"])
    assert card["note_id"] == note["id"]
    for note_id in (note2["id"], onote["id"], 2**31 - 1):  # another subject's, another user's
        body = assert_error_shape(client.post(f"{SUBJECTS}{sid}/cards",
                                              json={"front": "Q", "note_id": note_id},
                                              headers=user.headers), 422)  # fmt: skip
        assert set(body["errors"]["json"]) == {"note_id"}
        bulk = client.post(f"{SUBJECTS}{sid}/cards/bulk",
                           json={"cards": [{"front": "a", "note_id": note["id"]},
                                           {"front": "b", "note_id": note_id}]},
                           headers=user.headers)  # fmt: skip
        assert assert_error_shape(bulk, 422)["errors"]["json"]["cards"] == {
            "1": {"note_id": ["No such note in this subject."]}
        }
        patched = client.patch(
            f"{CARDS}{card['id']}", json={"note_id": note_id}, headers=user.headers
        )
        assert set(assert_error_shape(patched, 422)["errors"]["json"]) == {"note_id"}
    # Reviewed, then its note edited and deleted: the card and its schedule stay.
    reviewed = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers=user.headers
    ).json["card"]
    client.patch(f"/api/v1/notes/{note['id']}", json={"body": "changed"}, headers=user.headers)
    assert client.delete(f"/api/v1/notes/{note['id']}", headers=user.headers).status_code == 204
    after = client.get(f"{CARDS}{card['id']}", headers=user.headers).json
    assert after == {**reviewed, "note_id": None}
    # Unlink explicitly.
    linked = make_card(client, user, sid2, note_id=note2["id"])
    unlinked = client.patch(f"{CARDS}{linked['id']}", json={"note_id": None}, headers=user.headers)
    assert unlinked.status_code == 200 and unlinked.json["note_id"] is None


def test_patch_moves_edits_and_never_touches_the_schedule(client, user, other):
    sid = make_subject(client, user)
    sid2 = make_subject(client, user, "Chemistry")
    note = client.post(f"{SUBJECTS}{sid}/notes", json={"title": "Sets"}, headers=user.headers).json
    note2 = client.post(
        f"{SUBJECTS}{sid2}/notes", json={"title": "Acids"}, headers=user.headers
    ).json
    card = make_card(client, user, sid, note_id=note["id"])
    reviewed = client.post(
        f"{CARDS}{card['id']}/reviews", json={"rating": 4}, headers=user.headers
    ).json["card"]
    edited = client.patch(
        f"{CARDS}{card['id']}", json={"front": "New Q", "back": "New A"}, headers=user.headers
    )
    assert edited.status_code == 200
    schedule = ("state", "due", "stability", "difficulty", "reps", "lapses", "last_review_at")
    assert {k: edited.json[k] for k in schedule} == {k: reviewed[k] for k in schedule}
    assert edited.json["updated_at"] > reviewed["updated_at"]
    # Moving drops a note of the old subject, or takes a note of the new one.
    moved = client.patch(
        f"{CARDS}{card['id']}", json={"subject_id": sid2}, headers=user.headers
    ).json
    assert moved["subject_id"] == sid2 and moved["note_id"] is None
    back = client.patch(f"{CARDS}{card['id']}", json={"subject_id": sid, "note_id": note["id"]},
                        headers=user.headers).json  # fmt: skip
    assert back["subject_id"] == sid and back["note_id"] == note["id"]
    wrong = client.patch(f"{CARDS}{card['id']}", json={"subject_id": sid2, "note_id": note["id"]},
                         headers=user.headers)  # fmt: skip
    assert set(assert_error_shape(wrong, 422)["errors"]["json"]) == {"note_id"}
    with_note = client.patch(f"{CARDS}{card['id']}", json={"subject_id": sid2, "note_id": note2["id"]},
                             headers=user.headers)  # fmt: skip
    assert with_note.json["note_id"] == note2["id"]
    osid = make_subject(client, other)
    stolen = client.patch(f"{CARDS}{card['id']}", json={"subject_id": osid}, headers=user.headers)
    assert set(assert_error_shape(stolen, 422)["errors"]["json"]) == {"subject_id"}
    assert {
        k: client.get(f"{CARDS}{card['id']}", headers=user.headers).json[k] for k in schedule
    } == {k: reviewed[k] for k in schedule}
    # The reviews moved with the card.
    assert len(client.get(f"{CARDS}{card['id']}/reviews", headers=user.headers).json) == 1


def test_etags(client, user):
    sid = make_subject(client, user)
    card = make_card(client, user, sid)
    got = client.get(f"{CARDS}{card['id']}", headers=user.headers)
    etag = got.headers["ETag"]
    assert (
        client.get(
            f"{CARDS}{card['id']}", headers={**user.headers, "If-None-Match": etag}
        ).status_code
        == 304
    )
    client.post(f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers=user.headers)
    stale = client.patch(
        f"{CARDS}{card['id']}", json={"front": "x"}, headers={**user.headers, "If-Match": etag}
    )
    assert_error_shape(stale, 412)
    fresh = client.get(f"{CARDS}{card['id']}", headers=user.headers).headers["ETag"]
    ok = client.patch(
        f"{CARDS}{card['id']}", json={"front": "x"}, headers={**user.headers, "If-Match": fresh}
    )
    assert ok.status_code == 200
    assert_error_shape(
        client.delete(f"{CARDS}{card['id']}", headers={**user.headers, "If-Match": fresh}), 412
    )
    gone = client.delete(
        f"{CARDS}{card['id']}", headers={**user.headers, "If-Match": ok.headers["ETag"]}
    )
    assert gone.status_code == 204
    assert_error_shape(client.get(f"{CARDS}{card['id']}", headers=user.headers), 404)


def test_deleting_a_card_or_subject_takes_cards_and_reviews(app, client, user):
    from sqlalchemy import func, select

    from eleva.data.db import db
    from eleva.data.models import Card, Review

    sid = make_subject(client, user)
    sid2 = make_subject(client, user, "Other")
    cards = [make_card(client, user, s) for s in (sid, sid, sid2)]
    for card in cards:
        client.post(f"{CARDS}{card['id']}/reviews", json={"rating": 3}, headers=user.headers)
    assert client.delete(f"{CARDS}{cards[0]['id']}", headers=user.headers).status_code == 204
    assert client.delete(f"{SUBJECTS}{sid2}", headers=user.headers).status_code == 204
    with app.app_context():
        assert db.session.scalars(select(Card.id)).all() == [cards[1]["id"]]
        assert db.session.scalar(select(func.count()).select_from(Review)) == 1
    assert_error_shape(client.get(f"{CARDS}{cards[2]['id']}/reviews", headers=user.headers), 404)


def test_another_users_subject_and_card_are_not_found_at_every_route(client, user, other):
    osid = make_subject(client, other)
    ocard = make_card(client, other, osid, "theirs")
    for method, path, body in [
        ("get", f"{SUBJECTS}{osid}/cards", None),
        ("post", f"{SUBJECTS}{osid}/cards", {"front": "Q"}),
        ("post", f"{SUBJECTS}{osid}/cards/bulk", {"cards": [{"front": "Q"}]}),
        ("get", f"{CARDS}{ocard['id']}", None),
        ("patch", f"{CARDS}{ocard['id']}", {"front": "mine"}),
        ("delete", f"{CARDS}{ocard['id']}", None),
        ("get", f"{SUBJECTS}2147483647/cards", None),
        ("get", f"{CARDS}2147483647", None),
    ]:
        response = client.open(path, method=method.upper(), json=body, headers=user.headers)
        assert_error_shape(response, 404)
    assert client.get(f"{CARDS}{ocard['id']}", headers=other.headers).json == ocard
    assert client.get(f"{CARDS}2147483648", headers=user.headers).status_code == 404


def test_cards_are_found_by_search(client, user, other):
    sid = make_subject(client, user)
    card = make_card(
        client, user, sid, "Théorème de Pythagore " + "long " * 40, back="a² + b² = c²"
    )
    make_card(client, other, make_subject(client, other), "Théorème de Pythagore")
    found = client.get("/api/v1/search?q=pythagore&type=card", headers=user.headers)
    assert found.status_code == 200
    assert [(h["type"], h["id"], h["subject_id"]) for h in found.json] == [
        ("card", card["id"], sid)
    ]
    assert found.json[0]["title"] == card["front"][:120]
    by_back = client.get("/api/v1/search?q=theoreme&type=note", headers=user.headers).json
    assert by_back == []
    assert any(h["type"] == "card" for h in client.get("/api/v1/search?q=théorème",
                                                        headers=user.headers).json)  # fmt: skip


def test_a_note_moved_to_another_subject_leaves_its_cards_unlinked(client, user):
    sid = make_subject(client, user)
    sid2 = make_subject(client, user, "Chemistry")
    note = client.post(f"{SUBJECTS}{sid}/notes", json={"title": "Sets"}, headers=user.headers).json
    card = make_card(client, user, sid, note_id=note["id"])
    moved = client.patch(
        f"/api/v1/notes/{note['id']}", json={"subject_id": sid2}, headers=user.headers
    )
    assert moved.status_code == 200
    after = client.get(f"{CARDS}{card['id']}", headers=user.headers).json
    assert after["note_id"] is None and after["subject_id"] == sid
    # A card moved along with it may be linked again.
    client.patch(f"{CARDS}{card['id']}", json={"subject_id": sid2, "note_id": note["id"]},
                 headers=user.headers)  # fmt: skip
    assert client.get(f"{CARDS}{card['id']}", headers=user.headers).json["note_id"] == note["id"]


@pytest.mark.parametrize("bad", ["2026-13-01", "tomorrow", "2026-01-01T00:00:00+00:00", 20260101])
def test_exam_date_on_subjects(client, user, bad):
    created = client.post(SUBJECTS, json={"name": "Maths", "exam_date": "2027-01-18"},
                          headers=user.headers)  # fmt: skip
    assert created.status_code == 201 and created.json["exam_date"] == "2027-01-18"
    sid = created.json["id"]
    assert client.get(f"{SUBJECTS}{sid}", headers=user.headers).json["exam_date"] == "2027-01-18"
    body = assert_error_shape(
        client.patch(f"{SUBJECTS}{sid}", json={"exam_date": bad}, headers=user.headers), 422
    )
    assert set(body["errors"]["json"]) == {"exam_date"}
    cleared = client.patch(f"{SUBJECTS}{sid}", json={"exam_date": None}, headers=user.headers)
    assert cleared.json["exam_date"] is None
    plain = client.post(SUBJECTS, json={"name": "Old client"}, headers=user.headers)
    assert plain.json["exam_date"] is None
