"""Query strings parsed once: the cache in eleva.http.api.JsonParser."""

from __future__ import annotations

import itertools

import marshmallow as ma
import pytest
from webargs import core

from eleva.http.api import JsonParser, QueryCache


@pytest.fixture
def loads(monkeypatch):
    """How many times webargs really parsed something."""
    calls: list[object] = []
    parse = core.Parser.parse

    def counting(self, argmap, *args, **kwargs):
        calls.append(kwargs.get("location"))
        return parse(self, argmap, *args, **kwargs)

    monkeypatch.setattr(core.Parser, "parse", counting)
    return calls


def test_a_repeated_list_query_is_parsed_once_and_answers_the_same(client, user, loads):
    for name in ("Algebra", "Biology", "Chemistry"):
        client.post("/api/v1/subjects/", json={"name": name}, headers=user.headers)
    url = "/api/v1/subjects/?page_size=2&sort=name&cache-test=1"
    first = client.get(url, headers=user.headers)
    parsed = len(loads)
    second = client.get(url, headers=user.headers)
    assert len(loads) == parsed  # query and pagination both from the cache
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    assert [s["name"] for s in second.json] == ["Algebra", "Biology"]
    assert first.headers["X-Pagination"] == second.headers["X-Pagination"]

    # Another query string is another entry, with its own answer.
    page_2 = client.get(url + "&page=2", headers=user.headers)
    assert len(loads) > parsed
    assert [s["name"] for s in page_2.json] == ["Chemistry"]


def test_a_bad_query_is_refused_every_time_and_not_kept(client, user, loads):
    for _ in range(2):
        response = client.get("/api/v1/subjects/?sort=shoe-size&x=1", headers=user.headers)
        assert response.status_code == 422
        assert "sort" in response.json["errors"]["query"]
    assert loads.count("query") == 2


def test_a_hit_is_a_copy(app):
    class Query(ma.Schema):
        q = ma.fields.String(load_default="")

    parser, schema = JsonParser(), Query()
    with app.test_request_context("/?q=maths"):
        first = parser.parse(schema, location="query")
        first["q"] = "changed by a view"
        again = parser.parse(schema, location="query")
        assert again == {"q": "maths"}
        assert again is not parser.parse(schema, location="query")


def test_an_object_made_by_the_schema_is_copied_too(app):
    """As smorest's PaginationParameters, on which the view sets item_count."""

    class Page:
        def __init__(self, page: int, page_size: int) -> None:
            self.page, self.page_size, self.item_count = page, page_size, None

    class PageQuery(ma.Schema):
        page = ma.fields.Integer(load_default=1)
        page_size = ma.fields.Integer(load_default=20)

        @ma.post_load
        def make(self, data, **kwargs):
            return Page(**data)

    parser, schema = JsonParser(), PageQuery()
    with app.test_request_context("/?page=3&page_size=7"):
        first = parser.parse(schema, location="query")
        first.item_count = 1000
        again = parser.parse(schema, location="query")
    assert (again.page, again.page_size, again.item_count) == (3, 7, None)


def test_what_may_differ_per_request_is_parsed_every_time(app, loads):
    counter = itertools.count()

    class Clocked(ma.Schema):
        n = ma.fields.Integer(load_default=lambda: next(counter))

    class Listed(ma.Schema):
        kind = ma.fields.List(ma.fields.String())

    parser = JsonParser()
    with app.test_request_context("/?kind=a&kind=b"):
        assert parser.parse(Clocked(), location="query") == {"n": 0}
        assert parser.parse(Clocked(), location="query") == {"n": 1}
        listed = Listed()
        assert parser.parse(listed, location="query") == {"kind": ["a", "b"]}
        parser.parse(listed, location="query")["kind"].append("c")
        assert parser.parse(listed, location="query") == {"kind": ["a", "b"]}
    assert len(loads) == 5  # nothing came from the cache


def test_the_cache_keeps_the_most_recently_used_entries():
    cache = QueryCache(size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    for key in range(100):
        cache.put(key, key)
    assert len(cache._entries) == 2


def test_schemas_alike_in_all_but_identity_keep_their_own_entries(app):
    """A schema made per call is its own key, even after the last one is gone."""

    def query_schema(default: str) -> ma.Schema:
        return ma.Schema.from_dict({"q": ma.fields.String(load_default=default)})()

    parser = JsonParser()
    with app.test_request_context("/?page=1"):
        for default in ("first", "second", "third"):
            assert parser.parse(query_schema(default), location="query") == {"q": default}
