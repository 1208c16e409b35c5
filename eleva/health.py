"""Liveness and readiness, for the PaaS router and the load balancer."""

from __future__ import annotations

import marshmallow as ma
from flask import Flask, current_app
from flask.views import MethodView
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from eleva.core.errors import ServiceUnavailable
from eleva.data.db import db
from eleva.http import ratelimit
from eleva.http.api import Api, Blueprint
from eleva.http.schemas import ResponseSchema

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health")


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
        """Readiness: the database answers a query, and Redis a ping when the rate-limit
        counters are kept there (production), within about a second (503 otherwise)."""
        try:
            db.session.execute(text("SELECT 1"))
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise ServiceUnavailable("The database is not answering.") from exc
        finally:
            db.session.rollback()
        if _counters_in_redis() and not ratelimit.counters_reachable():
            raise ServiceUnavailable("Redis (the rate-limit counters) is not answering.")
        return {"status": "ok"}


def _counters_in_redis() -> bool:
    config = current_app.config
    return bool(config["RATELIMIT_ENABLED"]) and config["RATELIMIT_STORAGE_URI"].startswith(
        ("redis://", "rediss://", "redis+")
    )


def register(_app: Flask, api: Api) -> None:
    api.register_blueprint(blp)
