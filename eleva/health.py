"""Service endpoints: liveness and readiness for the PaaS, ``/metrics`` for Prometheus,
and ``/`` pointing a newcomer at the docs."""

from __future__ import annotations

import hmac

import marshmallow as ma
from flask import Flask, Response, current_app, request
from flask.views import MethodView
from sqlalchemy import exc as sa_exc

from eleva.core.errors import NotFound, ServiceUnavailable, Unauthorized
from eleva.data import jobs, metrics, migrations
from eleva.data.db import db
from eleva.http import ratelimit
from eleva.http.api import Api, Blueprint
from eleva.http.schemas import ResponseSchema

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health")
service = Blueprint("service", __name__, description="Where to start, and metrics")


class StatusSchema(ResponseSchema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


@blp.route("")
class Live(MethodView):
    @blp.response(200, StatusSchema)
    def get(self):
        """Liveness: the process answers. Touches nothing."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200, StatusSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self):
        """Readiness: the database answers and has every migration of this version, and
        Redis answers a ping when the rate-limit counters are kept there (production),
        within about a second (503 otherwise)."""
        try:
            behind = migrations.database_behind()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise ServiceUnavailable("The database is not answering.") from exc
        finally:
            db.session.rollback()
        if behind:
            raise ServiceUnavailable(
                "The database lacks migrations of this version (flask db upgrade)."
            )
        if _counters_in_redis() and not ratelimit.counters_reachable():
            raise ServiceUnavailable("Redis (the rate-limit counters) is not answering.")
        return {"status": "ok"}


def _counters_in_redis() -> bool:
    config = current_app.config
    return bool(config["RATELIMIT_ENABLED"]) and config["RATELIMIT_STORAGE_URI"].startswith(
        ("redis://", "rediss://", "redis+")
    )


class ServiceIndexSchema(ResponseSchema):
    name = ma.fields.String(required=True, metadata={"example": "Eléva API"})
    docs = ma.fields.String(metadata={"description": "Swagger UI (when the docs are on)"})
    openapi = ma.fields.String(metadata={"description": "The OpenAPI spec"})
    health = ma.fields.String(required=True, metadata={"example": "/health"})
    ready = ma.fields.String(required=True, metadata={"example": "/health/ready"})


@service.route("/")
class Index(MethodView):
    @service.response(200, ServiceIndexSchema)
    def get(self):
        """Where to start: the interactive docs, the spec and the health checks."""
        body = {"name": current_app.config["API_TITLE"], "health": "/health"}
        body["ready"] = "/health/ready"
        if current_app.config["API_DOCS_ENABLED"]:
            body |= {"docs": "/docs", "openapi": "/openapi.json"}
        return body


PROMETHEUS_TEXT = {
    "description": "Prometheus text format: every process of the server together.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@service.route("/metrics")
class Metrics(MethodView):
    @service.doc(responses={200: PROMETHEUS_TEXT})
    @service.alt_response(401, response="UNAUTHORIZED")
    @service.alt_response(404, response="NOT_FOUND")
    def get(self):
        """Metrics for Prometheus: off (404) unless METRICS_TOKEN is set; then it
        requires `Authorization: Bearer <METRICS_TOKEN>`."""
        expected = current_app.config["METRICS_TOKEN"]
        if not expected:
            raise NotFound("Not found.")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            raise Unauthorized("The metrics need Authorization: Bearer <METRICS_TOKEN>.")
        body = metrics.exposition(
            multiproc_dir=current_app.config["PROMETHEUS_MULTIPROC_DIR"],
            jobs=metrics.Jobs(jobs.connection(), jobs.queues()),
        )
        return Response(body, content_type=metrics.CONTENT_TYPE)


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp)
    api.register_blueprint(service)
