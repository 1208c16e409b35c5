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


def test_snippets_highlight_whole_words_and_a_prefix_of_the_last():
    text = "The ÉLÈVE and the cats concatenate categories"
    snippet = text_search.find_snippet(text, text_search.query_words("eleve cat"))
    assert snippet.text == text
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["ÉLÈVE", "cats", "categories"]
    # SQLite found "cat" inside a word too: highlighted from there to the word's end.
    anywhere = text_search.find_snippet(text, ["cat"], anywhere=True)
    assert [text[a:b] for a, b in anywhere.highlights] == ["cats", "catenate", "categories"]


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


# -- issue 32: indexing is linear in the text, snippets are plain text ----------------------

# Each repeated to 100,000 characters: what made PostgreSQL's default parser rescan to the
# end of the text after every failed attempt at a tag, a comment, an email, a path.
PATHOLOGICAL = ["<!--", '<a b="', "a_", "./", "@a1", "a1@", "&#", "1.", "a-"]
LONG = 100_000


def upload_text(client, account, subject_id, content: bytes, name: str) -> dict:
    import io

    response = client.post(
        f"{SUBJECTS}{subject_id}/documents",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
        headers=account.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def _clock(pid: int):
    """The CPU time of the PostgreSQL backend ``pid`` in seconds, when the server runs on
    this machine (what the database spends, whatever else the machine is doing); else
    the wall clock."""
    import time
    from pathlib import Path

    schedstat = Path(f"/proc/{pid}/schedstat")
    try:
        int(schedstat.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.perf_counter
    return lambda: int(schedstat.read_text().split()[0]) / 1e9


@requires_postgres
def test_indexing_any_text_of_100_000_characters_takes_at_most_50_ms(app, client, user):
    from sqlalchemy import text

    from eleva.data.db import db

    maths = subject(client, user, "Maths")
    written = note(client, user, maths["id"], "Long")
    document = upload_text(client, user, maths["id"], b"short", "long.txt")
    # The stored vectors are computed by the statement that writes the text: a note's
    # body, and a document's text as the extraction job saves it.
    writes = [
        ("UPDATE notes SET body = :text WHERE id = :id", written["id"]),
        ("UPDATE documents SET extracted_text = :text WHERE id = :id", document["id"]),
    ]
    slowest = {}
    with app.app_context(), db.engine.connect() as conn:  # one connection: one backend
        clock = _clock(conn.scalar(text("SELECT pg_backend_pid()")))
        conn.rollback()
        for pattern in PATHOLOGICAL:
            body = (pattern * (LONG // len(pattern) + 1))[:LONG]
            for sql, row_id in writes:
                timings = []
                for _ in range(3):
                    conn.execute(text("SET LOCAL statement_timeout = '2s'"))
                    started = clock()
                    conn.execute(text(sql), {"text": body, "id": row_id})
                    timings.append(clock() - started)
                    conn.rollback()
                slowest[(pattern, sql.split()[1])] = round(min(timings), 4)
    assert max(slowest.values()) <= 0.050, slowest


def test_words_inside_tags_addresses_paths_and_numbers_are_found_and_highlighted(client, user):
    maths = subject(client, user, "Maths")
    note(
        client,
        user,
        maths["id"],
        "Week three",
        "Write to ada@example.com about <b>eigenvalues</b>, see ./docs/linear_algebra.md, "
        "the state-of-the-art value 3.14, <i>draft</i> <!-- unterminated",
    )
    for q, words in [
        ("eigenvalues", ["eigenvalues"]),
        ("ada", ["ada"]),
        ("example.com", ["example", "com"]),
        ("linear_algebra", ["linear", "algebra"]),
        ("state of art", ["state", "of", "art"]),
        ("3.14", ["3", "14"]),
        ("draf", ["draft"]),
    ]:
        (hit,) = find(client, user, q=q, type="note").json
        assert [hit["snippet"][a:b] for a, b in hit["highlights"]] == words, (q, marked(hit))


def test_note_snippets_are_plain_text(client, user):
    maths = subject(client, user, "Maths")
    note(
        client,
        user,
        maths["id"],
        "Spectral theorem",
        "# Statement\n\n**Eigenvalues** of a *symmetric* matrix are [real](https://x.org/a_b).\n"
        "\n- one\n- two\n\n<img src=x onerror=alert(1)> &lt;script&gt;alert(2)&lt;/script&gt;",
    )
    (hit,) = find(client, user, q="eigenvalues", type="note").json
    snippet = hit["snippet"]
    for markup in ("#", "**", "*", "](", "\n", "<img", "<script", "&lt;"):
        assert markup not in snippet, (markup, snippet)
    assert snippet.startswith("Spectral theorem Statement Eigenvalues of a symmetric matrix")
    assert "[Eigenvalues]" in marked(hit)


@pytest.mark.parametrize("mark", ["\x02", "\x03"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("subjects", {"name": "Maths{}"}),
        ("subjects", {"name": "Maths", "description": "a {} b"}),
        ("notes", {"title": "Week{}"}),
        ("notes", {"title": "Week", "body": "**x**{}y"}),
    ],
)
def test_text_fields_refuse_the_highlighters_control_characters(client, user, mark, path, body):
    url = SUBJECTS
    if path == "notes":
        url = f"{SUBJECTS}{subject(client, user, 'Host')['id']}/notes"
    sent = {k: v.format(mark) for k, v in body.items()}
    response = client.post(url, json=sent, headers=user.headers)
    errors = assert_error_shape(response, 422)["errors"]["json"]
    assert set(errors) == {k for k, v in body.items() if "{}" in v}


def test_marks_written_around_the_api_forge_no_highlight(app, client, user):
    from sqlalchemy import update

    from eleva.data.db import db
    from eleva.data.models import Note

    maths = subject(client, user, "Maths")
    written = note(client, user, maths["id"], "Week 1", "placeholder")
    with app.app_context():  # as a seed script or psql could
        db.session.execute(
            update(Note)
            .where(Note.id == written["id"])
            .values(body="the \x02forged\x03 highlight and the real word")
        )
        db.session.commit()
    (hit,) = find(client, user, q="real", type="note").json
    assert "\x02" not in hit["snippet"] and "\x03" not in hit["snippet"]
    assert [hit["snippet"][a:b] for a, b in hit["highlights"]] == ["real"]
