"""Password policy and hashing (argon2id)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from altcraft.bundled.badpass import BadPass
from altcraft.domain.errors import Invalid

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class PasswordPolicy:
    def __init__(self, badpass: BadPass, min_length: int = 10, max_length: int = 256):
        self.badpass = badpass
        self.min_length = min_length
        self.max_length = max_length

    def check(self, password: object, login: str = "", field: str = "password") -> str:
        if not isinstance(password, str):
            raise Invalid(field, "must be a string")
        if len(password) < self.min_length:
            raise Invalid(field, f"too short: at least {self.min_length} characters are required")
        if len(password) > self.max_length:
            raise Invalid(field, f"too long: at most {self.max_length} characters")
        if login and login.lower() in password.lower():
            raise Invalid(field, "must not contain the login")
        if self.badpass.contains(password):
            raise Invalid(field, "too common: it is in the list of weak and leaked passwords")
        return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
