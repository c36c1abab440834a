"""Errors raised by services; each carries the stable code and HTTP status of ARCHITECTURE.md "Errors"."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every rule a service refuses; views turn it into JSON or a message on the page."""

    status = 400
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.retry_after = retry_after


class Invalid(ServiceError):
    """Bad input; `details["fields"]` lists {field, message} pairs."""

    status = 400
    code = "validation_error"

    @classmethod
    def field(cls, field: str, message: str) -> Invalid:
        return cls(message, details={"fields": [{"field": field, "message": message}]})


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


class Upstream(ServiceError):
    """WAHA is down, timed out or refused our key; the caller may retry later."""

    status = 503
    code = "waha_unavailable"

    def __init__(self, message: str, **kwargs: Any):
        kwargs.setdefault("retry_after", 5)
        super().__init__(message, **kwargs)


class StorageDown(ServiceError):
    """The media store (a bucket) cannot be reached or refused the portal's request; the caller may retry."""

    status = 503
    code = "storage_unavailable"

    def __init__(self, message: str = "The file store is unavailable; try again in a moment.", **kwargs: Any):
        kwargs.setdefault("retry_after", 5)
        super().__init__(message, **kwargs)
