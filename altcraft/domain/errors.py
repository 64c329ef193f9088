"""Errors the domain raises; the API maps each to its envelope code and HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    code = 1
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """A parameter or field value is wrong; `field` names it."""

    code, status = 1, 400

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Unauthorized(DomainError):
    code, status = 2, 401


class Forbidden(DomainError):
    code, status = 3, 403


class NotFound(DomainError):
    code, status = 4, 404


class Conflict(DomainError):
    code, status = 5, 409


class AccountInactive(DomainError):
    code, status = 8, 403
