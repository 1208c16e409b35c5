"""Domain errors: what services raise when a request cannot be done.

Each carries the HTTP status it stands for, so that ``eleva.http.errors`` can turn any
of them into the contract's error shape in one place; nothing here knows about Flask.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure the client can act on. ``status`` picks the HTTP status."""

    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.headers = headers or {}


class Unauthorized(AppError):
    status = 401

    def __init__(self, message: str = "Authentication required.", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status = 403


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409

    @classmethod
    def taken(cls, field: str, what: str | None = None) -> Conflict:
        what = what or field
        return cls(
            f"That {what} is already taken.",
            errors={"json": {field: [f"That {what} is already taken."]}},
        )


class PayloadTooLarge(AppError):
    status = 413


class UnsupportedMediaType(AppError):
    status = 415


class TooManyRequests(AppError):
    """Asked again too soon; ``retry_after`` seconds is when it will be accepted."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(message, **kwargs)


class ValidationFailed(AppError):
    """Input that is well-formed but breaks a rule only a service can check."""

    status = 422

    @classmethod
    def field(cls, field: str, message: str, location: str = "json") -> ValidationFailed:
        return cls(message, errors={location: {field: [message]}})


class ServiceUnavailable(AppError):
    status = 503

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(message, **kwargs)
