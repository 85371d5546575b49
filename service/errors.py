"""Errors the service layer raises; the API and the pages turn each into a status and a message."""
from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, **detail) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    status = 409


class InvalidData(ServiceError):
    """Submitted data that does not satisfy a form: ``errors`` maps each field to what is wrong."""

    status = 422

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message, errors=errors)
        self.errors = errors


def database_busy(error: BaseException) -> bool:
    """Whether ``error`` is the database refusing to wait any longer for a lock (SQLite's busy timeout, a
    PostgreSQL lock or statement timeout), or a statement sent on a connection the server had dropped (a restart
    within the half second a connection goes unchecked: ``service.pool_checks``; the pool has replaced it since):
    the request changed nothing and may simply be sent again. A connection lost at the commit is not: the commit
    may have been made."""
    cause = getattr(error, "orig", None)
    if cause is None:
        return False
    if getattr(error, "connection_invalidated", False) and getattr(error, "statement", None) is not None:
        return True
    if "database is locked" in str(cause):
        return True
    return type(cause).__name__ in ("LockNotAvailable", "QueryCanceled", "DeadlockDetected")
