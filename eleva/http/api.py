"""flask-smorest's Api and Blueprint, adapted once for the whole of Eléva: a strict
request parser (``JsonParser``) and ``Blueprint.login_required``, which protects a route
and documents that it does. Optional ``If-Match`` and the pagination header:
``eleva.http.smorest_compat``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from copy import deepcopy
from functools import cache, wraps
from typing import Any, ClassVar, NoReturn

import marshmallow as ma
from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import current_app, request
from flask_smorest import abort
from flask_smorest.fields import Upload
from flask_swagger_ui import get_swaggerui_blueprint
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

from eleva.http import smorest_compat
from eleva.http.auth import authenticate, authenticate_refresh
from eleva.http.fields import NO_NUL_PATTERN, NOT_BLANK_PATTERN, Text
from eleva.http.schemas import ResponseSchema

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


def _invalid_json() -> NoReturn:
    abort(400, message="Invalid JSON body.", errors={"json": ["Invalid JSON body."]})
    raise AssertionError("abort() raises")  # for the type checker


class JsonParser(FlaskParser):
    """webargs' Flask parser, strict about what a JSON body is."""

    # Multipart bodies as strict as JSON ones: the schema's own `unknown` (RAISE), not
    # webargs' default for files (EXCLUDE).
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {  # type: ignore[misc]
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "files": None,
    }

    def parse(self, argmap: Any, *args: Any, **kwargs: Any) -> Any:
        # smorest's pagination passes a schema class on every request, and webargs would
        # build (deep-copying its fields) an instance each time; a loading schema is
        # stateless, so one per class will do.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            argmap = _schema_instance(argmap)
        return super().parse(argmap, *args, **kwargs)

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        # 415 to a body that is not JSON and 400 to JSON that cannot be parsed safely,
        # instead of quietly treating the body as missing.
        if not is_json_request(req):
            if _has_body(req):
                abort(415, message="Send the body as JSON with Content-Type: application/json.")
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        _refuse_cut_stream(req, data)
        try:
            return core.parse_json(data)
        # Bad JSON or encoding (ValueErrors both), nesting deeper than the decoder's
        # stack, an integer too long to convert: the client's JSON, not our bug.
        except (RecursionError, ValueError):
            _invalid_json()

    def load_files(self, req: Any, schema: ma.Schema) -> Any:
        if _has_body(req) and req.mimetype != "multipart/form-data":
            abort(415, message="Send the file as multipart/form-data.")
        # Text parts are fields of the body too: a declared one (a document's title) is
        # loaded, an unknown one is refused (422) like an unknown JSON field. A text part
        # under a file field's name is not a file: ignored.
        # werkzeug names a part whose name it cannot read None: "" here (JSON keys are str).
        file_fields = {
            field.data_key or name
            for name, field in schema.load_fields.items()
            if isinstance(field, Upload)
        }
        parts: MultiDict[str, Any] = MultiDict()
        for name, value in req.files.items(multi=True):
            parts.add(name or "", value)
        for name, value in req.form.items(multi=True):
            if name not in file_fields:
                parts.add(name or "", value)
        return MultiDictProxy(parts, schema)


def _refuse_cut_stream(req: Any, data: bytes) -> None:
    """413 for a streamed (chunked) body longer than the limit.

    werkzeug stops reading a body without Content-Length at ``max_content_length`` and
    returns what it read, without saying there was more: the first 64 KB would be parsed
    and the rest ignored. One more byte from the server's stream tells.
    """
    limit = req.max_content_length
    streamed = req.content_length is None and limit is not None
    if streamed and len(data) >= limit and req.environ["wsgi.input"].read(1):
        abort(413, message=f"The request body is larger than {limit // 1024} KB.")


def _has_body(req: Any) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "")


# Room for the multipart envelope (boundaries, part headers, a title) around a file of
# the full allowed size.
MULTIPART_ENVELOPE = 64 * 1024


def body_limit(config_key: str) -> Callable[[Callable], Callable]:
    """Raise this request's body limit from the JSON default to the config's
    ``config_key`` megabytes (plus the multipart envelope).

    Must sit above ``@blp.arguments`` so that it runs before the body is parsed.
    """

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            limit = current_app.config[config_key] * 1024 * 1024 + MULTIPART_ENVELOPE
            request.max_content_length = limit
            return func(*args, **kwargs)

        return wrapper

    return decorator


# Profile pictures: MAX_UPLOAD_MB.
upload_body_limit = body_limit("MAX_UPLOAD_MB")


def json_body_limit(max_bytes: int) -> Callable[[Callable], Callable]:
    """Raise this route's request body limit from the JSON default (``MAX_JSON_KB``) to
    ``max_bytes``; a larger body is 413. Must sit above ``@blp.arguments``."""

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request.max_content_length = max_bytes
            return func(*args, **kwargs)

        return wrapper

    return decorator


class Blueprint(smorest_compat.Blueprint):
    ARGUMENTS_PARSER = JsonParser()
    PAGINATION_ARGUMENTS_PARSER = JsonParser()

    def arguments(self, schema: Any, *, location: str = "json", required: bool = True, **kwargs):
        """As smorest's, but a ``required`` JSON body (the default) is required for real:
        422 without one."""
        # An instance once, here: webargs would build one per request, deep-copying fields.
        if isinstance(schema, type):
            schema = schema()
        decorator = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return decorator
        # smorest only documents `required`, and without a body webargs loads {}, which an
        # all-optional schema (a PATCH) would accept.

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

    def login_required(self, func: Callable) -> Callable:
        """Require a valid access token of a live session, on every method; the view
        gets the caller (``CurrentUser``) as its first argument. Documents the bearer
        scheme and the 401, so a route cannot be protected without saying so. Put it
        above every other decorator of the view."""

        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, authenticate(), **kwargs)

        return self._document_bearer(wrapper)

    def refresh_token_required(self, func: Callable) -> Callable:
        """Require a valid refresh token (as Bearer) of a live session; the view gets its
        claims (``TokenClaims``) as its first argument."""

        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, authenticate_refresh(), **kwargs)

        return self._document_bearer(wrapper)

    def _document_bearer(self, view: Callable) -> Callable:
        doc = deepcopy(getattr(view, "_apidoc", {}))
        doc.setdefault("manual_doc", {})["security"] = [{BEARER_AUTH: []}]
        view._apidoc = doc  # type: ignore[attr-defined]
        return self.alt_response(401, response="UNAUTHORIZED")(view)


def text2properties(self: Any, field: ma.fields.Field, ret: dict, **kwargs: Any) -> dict:
    """apispec attribute function: what a ``Text`` field refuses beyond its own rules.

    NUL, STX and ETX, and for a required length a blank string, as patterns (JSON Schema's dialect:
    ``\\s`` is exactly ``WHITESPACE``, what Text trims). A field with a pattern or
    choices of its own already excludes both.
    """
    if not isinstance(field, Text) or {"pattern", "enum"} & set(ret):
        return {}
    return {"pattern": NOT_BLANK_PATTERN if field.must_not_be_blank else NO_NUL_PATTERN}


class OperationIds(BasePlugin):
    """apispec plugin: every operation gets an ``operationId`` (unless its view set one),
    from its method and path — ``post_auth_login``, ``get_users_by_username`` — unique
    by construction, so generated clients name their methods after the operations."""

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        words = []
        for segment in (path or "").strip("/").split("/"):
            if segment in ("", "api", "v1"):
                continue
            if segment.startswith("{"):
                words += ["by", segment.strip("{}")]
            else:
                words.append(segment)
        name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(words))
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", f"{method}_{name}".rstrip("_"))


# Swagger UI's own files, served by the app from a pinned package: /docs renders with no
# network (no CDN), and its CSP names no other origin (eleva.http.web.DOCS_CSP).
SWAGGER_UI_ASSETS = "/docs/assets"


def schema_name(schema: Any) -> str | None:
    """apispec's component name of a response schema; None (inline) for one that loads
    a request: a generated client (openapi-typescript's defaults) reads a component's
    ``default`` as "always present", right for a response and wrong for a request body,
    where a field with a default may be left out (``refresh_in_cookie``, a note's
    ``body``). Inline, in the request body, a default keeps the field optional."""
    resolved = resolve_schema_cls(schema)
    schema_class = resolved[0] if isinstance(resolved, list) else resolved
    if issubclass(schema_class, ResponseSchema | ErrorSchema):
        return resolver(schema)
    return None


class Api(smorest_compat.Api):
    ERROR_SCHEMA = ErrorSchema

    def __init__(self) -> None:
        super().__init__(
            spec_kwargs={
                # apispec documents None (inline) though its type says str.
                "marshmallow_plugin": MarshmallowPlugin(schema_name_resolver=schema_name),  # type: ignore[arg-type]
                "extra_plugins": [OperationIds()],
            }
        )

    def init_app(self, app: Any, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        self.ma_plugin.converter.add_attribute_function(text2properties)
        if app.config.get("OPENAPI_URL_PREFIX") is not None:
            app.register_blueprint(
                get_swaggerui_blueprint(
                    SWAGGER_UI_ASSETS, "/openapi.json", blueprint_name="swagger_ui_assets"
                )
            )


api = Api()
