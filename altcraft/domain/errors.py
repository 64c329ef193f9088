"""Errors the domain raises, each with the HTTP status the API answers.

The envelope's `error` is that same number, as Altcraft's API documents it (400 incorrect
request, 401 token, 402 tariff limit, 403 forbidden, 404 not found, 409 conflict, 500, 503);
the finer reason is in `error_text`. This is the one place the numbers are chosen.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    @property
    def code(self) -> int:
        """The envelope's `error`: Altcraft puts the HTTP status there."""
        return self.status

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """A parameter or field value is wrong; `field` names it."""

    status = 400

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class AccountInactive(DomainError):
    status = 403


class Unavailable(DomainError):
    """A store or a process the method needs is not reachable (or the platform is in maintenance)."""

    status = 503


# the envelope numbers of answers no DomainError produces (the dispatcher's own)
ERROR_UNKNOWN_METHOD = 404
ERROR_INTERNAL = 500
ERROR_UNAVAILABLE = Unavailable.status


class DirectoryUnreachable(Unavailable):
    """No directory server (WEBADMIN_LDAP) could be used: directory administrators cannot
    sign in now, local ones still can. The message names each server and why (for the log)."""
