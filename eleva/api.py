"""flask-smorest's Api and Blueprint, adapted once for the whole of Eléva.

- The request parser answers 415 to a body that is not JSON and 400 to JSON that cannot
  be parsed safely, instead of quietly treating the body as missing.
- ``Blueprint.login_required`` checks the bearer token and documents the security scheme
  and the 401 on the operation, so a route cannot be protected without saying so.
- ``If-Match`` is optional (the contract): when sent it must match (412), when absent the
  write goes ahead. flask-smorest would answer 428 instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from functools import cache, wraps
from typing import Any, ClassVar, Literal

import flask_smorest
import marshmallow as ma
from flask import current_app, g, request
from flask_smorest import abort
from flask_smorest import etag as fs_etag
from flask_smorest import pagination as fs_pagination
from flask_smorest.etag import _get_etag_ctx
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from eleva.database import read_only_request
from eleva.errors import AppError
from eleva.fields import NO_NUL_PATTERN, NOT_BLANK_PATTERN, Text
from eleva.security import authenticate

BEARER_AUTH = "bearerAuth"
SECURITY_SCHEMES = {
    BEARER_AUTH: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}


class ErrorSchema(ma.Schema):
    """Every error Eléva answers, whatever its status."""

    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    status = ma.fields.String(required=True, metadata={"description": "HTTP status name"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong"})
    errors = ma.fields.Dict(
        metadata={
            "description": "Field errors by location, e.g. "
            '{"json": {"email": ["Not a valid email address."]}}'
        }
    )


@cache
def _schema_instance(schema_class: type[ma.Schema]) -> ma.Schema:
    return schema_class()


class JsonParser(FlaskParser):
    """webargs' Flask parser, strict about what a JSON body is."""

    # Multipart bodies as strict as JSON ones: the schema's own `unknown` (RAISE), not
    # webargs' default for files (EXCLUDE).
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "files": None,
    }

    def _get_schema(self, argmap: Any, req: Any) -> ma.Schema:
        # webargs builds a new instance of a schema class on every request, and building
        # one deep-copies its fields; a loading schema is stateless, so one will do.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            return _schema_instance(argmap)
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            if _has_body(req):
                abort(415, message="Send the body as JSON with Content-Type: application/json.")
            return core.missing
        try:
            return super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs' load_json answers these through _handle_invalid_json_error
        except (RecursionError, ValueError):
            # Nesting deeper than the decoder's stack, or an integer too long to convert.
            abort(400, message="Invalid JSON body.", errors={"json": ["Invalid JSON body."]})

    def _handle_invalid_json_error(self, error: Exception, req: Any, *args: Any, **kwargs: Any):
        abort(400, message="Invalid JSON body.", errors={"json": ["Invalid JSON body."]})

    def load_files(self, req: Any, schema: ma.Schema) -> Any:
        if _has_body(req) and req.mimetype != "multipart/form-data":
            abort(415, message="Send the file as multipart/form-data.")
        # Text parts are fields of the body too: an unknown one is refused (422) like an
        # unknown JSON field. A text part under a file field's name is not a file: ignored.
        # werkzeug names a part whose name it cannot read None: "" here (JSON keys are str).
        known = {field.data_key or name for name, field in schema.load_fields.items()}
        parts = MultiDict()
        for name, value in req.files.items(multi=True):
            parts.add(name or "", value)
        for name, value in req.form.items(multi=True):
            if name not in known:
                parts.add(name or "", value)
        return MultiDictProxy(parts, schema)


def _has_body(req: Any) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "")


def upload_body_limit(func: Callable) -> Callable:
    """Raise this request's body limit from the JSON default to ``MAX_UPLOAD_MB``.

    Must sit above ``@blp.arguments`` so that it runs before the body is parsed.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Room for the multipart envelope around a file of the full allowed size.
        request.max_content_length = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024 + 64 * 1024
        return func(*args, **kwargs)

    return wrapper


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonParser()
    PAGINATION_ARGUMENTS_PARSER = JsonParser()

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict:
        """smorest's metadata (the X-Pagination header), without its per-request schema.

        smorest builds the same dict and dumps it through a new PaginationMetadataSchema
        on every request (~40 µs, most of it copying the schema's fields); the values
        are ints already. tests/test_subjects.py checks the header page by page.
        """
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

    def arguments(self, schema: Any, *, location: str = "json", required: bool = True, **kwargs):
        """As smorest's, and a ``required`` JSON body (the default) is required for real.

        smorest only documents ``required``; without a body webargs loads ``{}``, which an
        all-optional schema (a PATCH) accepts: a request the spec calls invalid would pass.
        """
        decorator = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return decorator

        def wrapper(func: Callable) -> Callable:
            parsed = decorator(func)

            @wraps(parsed)
            def require_body(*args: Any, **kw: Any) -> Any:
                if not _has_body(request):
                    abort(
                        422,
                        message="This request needs a JSON body.",
                        errors={"json": {"_schema": ["A JSON body is required."]}},
                    )
                return parsed(*args, **kw)

            return require_body

        return wrapper

    def login_required(self, func: Callable | None = None, *, deferred: bool = False) -> Any:
        """Require a valid access token; document the scheme and the 401.

        ``deferred`` (GET and HEAD only): the view makes the session check itself, with
        its first read, and passes the user it found to ``eleva.security.identify``:
        one round trip instead of two on a hot endpoint. The token is still checked
        before the view; a view that returns without calling ``identify`` is a bug and
        raises; and when the view refuses the request before the check (a 422, say),
        the check is made first, so that a dead session answers 401 as without deferral.
        """
        if func is None:
            return lambda view: self._token_required(view, "access", deferred=deferred)
        return self._token_required(func, "access", deferred=deferred)

    def refresh_token_required(self, func: Callable) -> Callable:
        """Require a valid refresh token (as Bearer); document the scheme and the 401."""
        return self._token_required(func, "refresh")

    def _token_required(
        self, func: Callable, kind: Literal["access", "refresh"], *, deferred: bool = False
    ) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate(kind)
            return func(*args, **kwargs)

        @wraps(func)
        def deferred_wrapper(*args: Any, **kwargs: Any) -> Any:
            if not read_only_request():
                raise RuntimeError("a deferred session check is for GET and HEAD requests")
            authenticate(kind, deferred=True)
            try:
                result = func(*args, **kwargs)
            except (HTTPException, AppError):
                # A refusal of the request (a 422, say) is only given to a live session:
                # a dead one gets its 401 first. Other failures (the database is down)
                # go up untouched, without a second query.
                if "eleva_caller" not in g:
                    authenticate(kind)
                raise
            if "eleva_caller" not in g:
                raise RuntimeError(f"{func.__qualname__} did not check the session (identify)")
            return result

        view = deferred_wrapper if deferred else wrapper
        view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
        view._apidoc.setdefault("manual_doc", {})["security"] = [{BEARER_AUTH: []}]
        return self.alt_response(401, response="UNAUTHORIZED")(view)

    # -- ETag: If-Match optional -------------------------------------------------------
    def _check_precondition(self) -> None:
        """No 428: a write without If-Match is accepted (contract: If-Match is honoured)."""

    def check_etag(self, etag_data: Any, etag_schema: Any = None) -> None:
        if not request.if_match:
            _get_etag_ctx()["etag_checked"] = True
            return
        super().check_etag(etag_data, etag_schema)

    def _prepare_etag_doc(self, doc: dict, doc_info: dict, **kwargs: Any) -> dict:
        doc = super()._prepare_etag_doc(doc, doc_info, **kwargs)
        doc.get("responses", {}).pop(428, None)
        return doc


def text2properties(self: Any, field: ma.fields.Field, ret: dict, **kwargs: Any) -> dict:
    """apispec attribute function: what a ``Text`` field refuses beyond its own rules.

    NUL, and for a required length a blank string, as patterns (JSON Schema's dialect:
    ``\\s`` is exactly ``WHITESPACE``, what Text trims). A field with a pattern or
    choices of its own already excludes both.
    """
    if not isinstance(field, Text) or {"pattern", "enum"} & set(ret):
        return {}
    return {"pattern": NOT_BLANK_PATTERN if field.must_not_be_blank else NO_NUL_PATTERN}


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        self.ma_plugin.converter.add_attribute_function(text2properties)

    def _register_etag_headers(self) -> None:
        # smorest's own version declares If-Match required; ours is optional.
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
        # The header's value is JSON. smorest documents it with `schema`, which in OpenAPI
        # means the default `simple` style (`total,2,page,1`); `content` says "JSON".
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
