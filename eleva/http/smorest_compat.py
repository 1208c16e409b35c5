"""The only place Eléva overrides private names of flask-smorest (it has no public switch
for these): an optional ``If-Match``, and the X-Pagination header. Each override is
small, and tests/test_http_compat.py fails if the names or signatures they replace change
upstream (flask-smorest is pinned in requirements.txt).
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import request
from flask_smorest import etag as fs_etag
from flask_smorest import pagination as fs_pagination
from flask_smorest.etag import _get_etag_ctx

# name -> the class that defines it upstream (checked by the tests)
OVERRIDDEN = {
    "_check_precondition": flask_smorest.Blueprint,
    "_prepare_etag_doc": flask_smorest.Blueprint,
    "_make_pagination_metadata": flask_smorest.Blueprint,
    "_register_etag_headers": flask_smorest.Api,
    "_register_pagination_header": flask_smorest.Api,
}


class Blueprint(flask_smorest.Blueprint):
    # If-Match is optional (the contract): when sent it must match (412); when absent the
    # write goes ahead. flask-smorest would answer 428, and document the header required.
    def _check_precondition(self) -> None:
        """No 428: a write without If-Match is accepted."""

    def check_etag(self, etag_data: Any, etag_schema: Any = None) -> None:
        if self.if_match_sent():
            super().check_etag(etag_data, etag_schema)

    @staticmethod
    def if_match_sent() -> bool:
        """Whether the write carries If-Match. Without one there is nothing to check:
        the write goes ahead, and is recorded as checked (no "ETag not checked" warning),
        so a view may skip reading what it would have compared."""
        if request.if_match:
            return True
        _get_etag_ctx()["etag_checked"] = True
        return False

    def _prepare_etag_doc(self, doc: dict, doc_info: dict, **kwargs: Any) -> dict:
        doc = super()._prepare_etag_doc(doc, doc_info, **kwargs)
        doc.get("responses", {}).pop(428, None)
        return doc

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict:
        # smorest builds the same dict, then dumps it through a new schema on every request.
        metadata = {"total": item_count, "total_pages": -(-item_count // page_size)}
        if item_count and page <= metadata["total_pages"]:
            metadata.update(first_page=1, last_page=metadata["total_pages"], page=page)
            if page > 1:
                metadata["previous_page"] = page - 1
            if page < metadata["total_pages"]:
                metadata["next_page"] = page + 1
        elif item_count:
            metadata.update(first_page=1, last_page=metadata["total_pages"])
        return metadata


class Api(flask_smorest.Api):
    def _register_etag_headers(self) -> None:
        self.spec.components.parameter(
            "IF_NONE_MATCH", "header", fs_etag.IF_NONE_MATCH_HEADER, lazy=True
        )
        self.spec.components.parameter(
            "IF_MATCH",
            "header",
            {
                **fs_etag.IF_MATCH_HEADER,
                "required": False,
                "description": "ETag of the resource as last read. Optional; when sent "
                "and stale, the write is refused with 412.",
            },
            lazy=True,
        )
        self.spec.components.header("ETAG", fs_etag.ETAG_HEADER, lazy=True)

    def _register_pagination_header(self) -> None:
        # OpenAPI's `schema` means the `simple` style (`total,2,page,1`): JSON is `content`.
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata, as JSON: "
                '{"total": 42, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 2, '
                '"previous_page": 1, "next_page": 3}',
                "content": {"application/json": {"schema": fs_pagination.PaginationMetadataSchema}},
            },
            lazy=True,
        )
