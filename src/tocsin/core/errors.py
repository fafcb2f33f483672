"""Errors with a stable machine-readable ``code`` and a human message.

Services raise these; the HTTP layer turns them into JSON
``{"error": {"code", "message", "details"}}`` and the CLI into a message and a
non-zero exit. Nothing is changed when one is raised inside a transaction.
"""

from __future__ import annotations

from typing import Any


class TocsinError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadInput(TocsinError):
    status = 422
    code = "invalid_input"


class Unauthorized(TocsinError):
    status = 401
    code = "unauthorized"


class Forbidden(TocsinError):
    status = 403
    code = "forbidden"


class NotFound(TocsinError):
    status = 404
    code = "not_found"


class Conflict(TocsinError):
    status = 409
    code = "conflict"


class TooLarge(TocsinError):
    status = 413
    code = "too_large"


class Unavailable(TocsinError):
    """Could not be done now (storage unreachable...): the client may send it again."""

    status = 503
    code = "unavailable"


class TooManyRequests(TocsinError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code, details={"retry_after": retry_after})
        self.retry_after = retry_after
