"""eleva.http.smorest_compat overrides private names of flask-smorest: these tests fail
when an upgrade renames, moves or reshapes them, before the app silently changes."""

from __future__ import annotations

import inspect

import flask_smorest
import pytest

from eleva.http import smorest_compat

# The signatures our overrides were written against (flask-smorest 0.47).
EXPECTED = {
    "_check_precondition": "(self)",
    "_prepare_etag_doc": "(self, doc, doc_info, *, api, spec, method, **kwargs)",
    "_make_pagination_metadata": "(page, page_size, item_count)",
    "_register_etag_headers": "(self)",
    "_register_pagination_header": "(self)",
}


@pytest.mark.parametrize(("name", "upstream"), smorest_compat.OVERRIDDEN.items())
def test_each_overridden_name_still_exists_upstream_with_its_signature(name, upstream):
    original = inspect.getattr_static(upstream, name)
    function = original.__func__ if isinstance(original, staticmethod) else original
    assert str(inspect.signature(function)) == EXPECTED[name]


def test_the_etag_context_helper_still_exists():
    from flask_smorest.etag import _get_etag_ctx

    assert callable(_get_etag_ctx)


def test_every_private_override_is_listed():
    ours = {
        name
        for cls in (smorest_compat.Blueprint, smorest_compat.Api)
        for name in vars(cls)
        if name.startswith("_") and not name.startswith("__")
    }
    assert ours == set(smorest_compat.OVERRIDDEN)


def test_pagination_metadata_is_smorests():
    """The override skips smorest's per-request schema and nothing else."""
    for item_count in (0, 1, 19, 20, 21, 100, 101):
        for page_size in (1, 20, 100):
            for page in (1, 2, 5, 6, 10**6):
                ours = smorest_compat.Blueprint._make_pagination_metadata(
                    page, page_size, item_count
                )
                theirs = flask_smorest.Blueprint._make_pagination_metadata(
                    page, page_size, item_count
                )
                assert ours == theirs, (page, page_size, item_count)
