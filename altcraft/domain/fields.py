"""Profile field types: what each accepts and the one form in which it is stored.

Input arrives as JSON values (API) or as text (CSV); `coerce` turns either into the stored
form or raises Invalid naming the field. Empty text means "not given".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Literal

import phonenumbers

from altcraft.domain.errors import Invalid

FieldType = Literal["string", "email", "phone", "integer", "number", "boolean", "date",
                    "datetime", "gender"]
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]

# Fields every profile database has; custom fields are declared per database.
STANDARD_FIELDS: dict[str, FieldType] = {
    "email": "email", "phone": "phone", "first_name": "string", "last_name": "string",
    "middle_name": "string", "birthday": "date", "gender": "gender", "city": "string",
    "country": "string", "ip": "string",
}
FIELD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_STRING = 1000

# Practical e-mail syntax: dot-atom local part, a domain of LDH labels with a letter TLD.
_EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_GENDER = {"m": "m", "male": "m", "м": "m", "муж": "m", "f": "f", "female": "f", "ж": "f", "жен": "f"}


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    title: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "title": self.title}


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL_RE.match(email):
        raise ValueError("not a valid e-mail address")
    return email


def normalize_phone(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_date(text: str) -> str:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError("not a date (YYYY-MM-DD or DD.MM.YYYY)")


def _parse_datetime(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _coerce(kind: FieldType, value: Any, region: str) -> Any:
    if isinstance(value, str):
        value = value.strip()
    if kind in ("string", "email", "phone", "gender", "date", "datetime") and not isinstance(value, str):
        if kind == "phone" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        elif kind == "datetime" and isinstance(value, datetime):
            return _parse_datetime(value.isoformat())
        else:
            raise ValueError("wrong type: expected a string")
    if kind == "string":
        if len(value) > MAX_STRING:
            raise ValueError(f"longer than {MAX_STRING} characters")
        return value
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, region)
    if kind == "gender":
        if value.lower() not in _GENDER:
            raise ValueError("not a gender (m or f)")
        return _GENDER[value.lower()]
    if kind == "date":
        return _parse_date(value)
    if kind == "datetime":
        return _parse_datetime(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("not a boolean (true/false)")
    if kind == "integer":
        if isinstance(value, bool):
            raise ValueError("wrong type: expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value):
            return int(value)
        raise ValueError("not an integer")
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("wrong type: expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(value.replace(",", ".")) if isinstance(value, str) else float("x")
        except ValueError:
            raise ValueError("not a number") from None
    raise ValueError(f"unknown field type {kind}")


def coerce(field: Field, value: Any, region: str = "RU") -> Any:
    """The stored form of `value`, None for "not given"; raises Invalid naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _coerce(field.type, value, region)
    except ValueError as exc:
        raise Invalid(field.name, str(exc)) from None
