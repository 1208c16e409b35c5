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
