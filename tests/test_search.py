"""Search: the caller's own material only, case and accents ignored, prefixes for the
last word, ranked, with snippets whose highlights point at the matched words."""

from __future__ import annotations

import json

import pytest

from eleva.core import search as text_search
from tests.conftest import ON_POSTGRES, assert_error_shape, requires_postgres

SEARCH = "/api/v1/search"
SUBJECTS = "/api/v1/subjects/"


def subject(client, account, name, description=None):
    response = client.post(
        SUBJECTS, json={"name": name, "description": description}, headers=account.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def find(client, account, **query):
    response = client.get(SEARCH, query_string=query, headers=account.headers)
    assert response.status_code == 200, response.json
    return response


def marked(hit):
    """The snippet with its highlighted spans in brackets, to read what matched."""
    out, last = [], 0
    for start, end in hit["highlights"]:
        out += [hit["snippet"][last:start], "[", hit["snippet"][start:end], "]"]
        last = end
    return "".join([*out, hit["snippet"][last:]])


def test_finds_subjects_by_name_and_description_ignoring_case_and_accents(client, user):
    maths = subject(client, user, "Mathématiques", "Algèbre linéaire et géométrie")
    subject(client, user, "History", "The French revolution")
    hits = find(client, user, q="ALGEBRE").json
    assert [(h["type"], h["id"], h["subject_id"]) for h in hits] == [
        ("subject", maths["id"], maths["id"])
    ]
    assert hits[0]["title"] == "Mathématiques"
    assert "[Algèbre]" in marked(hits[0])
    assert [h["id"] for h in find(client, user, q="mathematiques").json] == [maths["id"]]


def test_every_word_must_match_and_the_last_is_a_prefix(client, user):
    subject(client, user, "Linear algebra")
    subject(client, user, "Linear programming")
    assert [h["title"] for h in find(client, user, q="linear alg").json] == ["Linear algebra"]
    assert len(find(client, user, q="lin").json) == 2
    assert find(client, user, q="algebra biology").json == []


def test_only_the_callers_material_is_found(client, user, other):
    subject(client, other, "Secret chemistry")
    assert find(client, user, q="chemistry").json == []
    assert len(find(client, other, q="chemistry").json) == 1


def test_title_matches_rank_first_and_pagination_counts_all(client, user):
    subject(client, user, "Notes", "physics of waves")
    subject(client, user, "Physics", "waves and optics")
    response = find(client, user, q="physics", page_size=1)
    assert [h["title"] for h in response.json] == ["Physics"]
    assert json.loads(response.headers["X-Pagination"])["total"] == 2
    second = find(client, user, q="physics", page_size=1, page=2)
    assert [h["title"] for h in second.json] == ["Notes"]
    past = find(client, user, q="physics", page_size=1, page=9)
    assert past.json == [] and json.loads(past.headers["X-Pagination"])["total"] == 2


def test_filters_by_type_and_subject(client, user):
    maths = subject(client, user, "Maths")
    subject(client, user, "Maths II")
    assert len(find(client, user, q="maths", type="subject").json) == 2
    assert len(find(client, user, q="maths", subject_id=maths["id"]).json) == 1
    assert find(client, user, q="maths", type="note").json == []


def test_changes_are_searchable_at_once(client, user):
    created = subject(client, user, "Astronomy")
    assert len(find(client, user, q="astro").json) == 1
    url = f"{SUBJECTS}{created['id']}"
    assert client.patch(url, json={"name": "Geology"}, headers=user.headers).status_code == 200
    assert find(client, user, q="astro").json == []
    assert len(find(client, user, q="geolo").json) == 1
    assert client.delete(url, headers=user.headers).status_code == 204
    assert find(client, user, q="geolo").json == []


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"q": ""},
        {"q": "x" * 201},
        {"q": "a", "type": "planet"},
        {"q": "a", "subject_id": "x"},
        {"q": "a", "subject_id": 0},
        {"q": "a", "page_size": 500},
    ],
)
def test_bad_queries_are_422(client, user, query):
    assert_error_shape(client.get(SEARCH, query_string=query, headers=user.headers), 422)


@pytest.mark.parametrize("q", ["%", "_", "'", "&|!():*", "\\", "a' & 'b"])
def test_punctuation_and_operators_are_just_text(client, user, q):
    subject(client, user, "100% effort_plan")
    find(client, user, q=q)  # 200 whatever it matches


def test_search_needs_a_token(client):
    assert_error_shape(client.get(SEARCH, query_string={"q": "x"}), 401)


def test_snippets_are_cut_around_the_match_with_offsets_in_code_points():
    text = "😀 " + "lorem ipsum " * 30 + "Élève studies here " + "dolor " * 40
    snippet = text_search.find_snippet(text, text_search.query_words("eleve"))
    assert len(snippet.text) <= text_search.SNIPPET_LENGTH
    ((start, end),) = snippet.highlights
    assert snippet.text[start:end] == "Élève"


def test_highlights_from_postgres_marks():
    s, e = text_search.START_MARK, text_search.STOP_MARK
    snippet = text_search.from_marked(f"the {s}ÉLÈVE{e} and the {s}cat{e}s")
    assert snippet.text == "the ÉLÈVE and the cats"
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["ÉLÈVE", "cat"]


@requires_postgres
def test_postgres_search_reads_the_owners_rows_through_an_index(app, client, user, other):
    from datetime import UTC, datetime

    from sqlalchemy import text

    from eleva.data.db import db
    from eleva.data.models import Subject

    subject(client, user, "Physics")
    now = datetime.now(UTC)
    with app.app_context():
        db.session.execute(
            Subject.__table__.insert(),
            [
                {"owner_id": owner, "name": f"Topic {i}", "created_at": now, "updated_at": now}
                for owner in (user.id, other.id)
                for i in range(3000)
            ],
        )
        db.session.execute(text("ANALYZE subjects"))
        # On 6,000 short rows a scan of the table is the planner's cheapest choice; what
        # is checked here is that the search can read the owner's rows only, through an
        # index. (bench.search shows the plans chosen on a million notes.)
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in db.session.execute(
                text(
                    "EXPLAIN SELECT id FROM subjects WHERE owner_id = :o AND search_vector @@ "
                    "to_tsquery('eleva_search'::regconfig, 'phys:*')"
                ),
                {"o": user.id},
            )
        )
        db.session.rollback()
    assert "Seq Scan" not in plan, plan
    assert "owner_id" in plan[plan.index("Index Cond") :], plan
    assert [h["title"] for h in find(client, user, q="phys").json] == ["Physics"]


def test_on_this_database(client, user):
    """The same answers on both databases (PostgreSQL's index or SQLite's fallback)."""
    subject(client, user, "Éducation civique")
    hits = find(client, user, q="education").json
    assert len(hits) == 1, ON_POSTGRES


def note(client, account, subject_id, title, body=""):
    response = client.post(
        f"{SUBJECTS}{subject_id}/notes",
        json={"title": title, "body": body},
        headers=account.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def test_finds_notes_by_title_and_body_with_a_snippet(client, user, other):
    maths = subject(client, user, "Maths")
    found = note(client, user, maths["id"], "Week 3", "Eigenvalues **matter**: the eigenvectors…")
    theirs = subject(client, other, "Maths")
    note(client, other, theirs["id"], "Eigen", "eigenvalues too")
    hits = find(client, user, q="eigenval", type="note").json
    assert [(h["type"], h["id"], h["subject_id"]) for h in hits] == [
        ("note", found["id"], maths["id"])
    ]
    assert "[Eigenvalues]" in marked(hits[0])


def test_a_subjects_notes_leave_search_with_it(client, user):
    physics = subject(client, user, "Physics")
    note(client, user, physics["id"], "Optics", "lenses")
    assert len(find(client, user, q="lenses").json) == 1
    assert client.delete(f"{SUBJECTS}{physics['id']}", headers=user.headers).status_code == 204
    assert find(client, user, q="lenses").json == []


def test_finds_documents_by_title_and_file_name(client, user):
    import io

    biology = subject(client, user, "Biology")
    response = client.post(
        f"{SUBJECTS}{biology['id']}/documents",
        data={"file": (io.BytesIO(b"Cells and membranes\n"), "photosynthesis-notes.txt")},
        content_type="multipart/form-data",
        headers=user.headers,
    )
    assert response.status_code == 201, response.json
    hits = find(client, user, q="photosynth").json
    assert [(h["type"], h["subject_id"]) for h in hits] == [("document", biology["id"])]
