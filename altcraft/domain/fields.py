"""Profile field types: what each accepts and the one form in which it is stored.

Input arrives as JSON values (API) or as text (CSV); `coerce` turns either into the stored
form or raises Invalid naming the field. Empty text means "not given".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Literal

from altcraft.domain.errors import Invalid
from altcraft.domain.phones import normalize_phone

FieldType = Literal["string", "email", "phone", "integer", "number", "boolean", "date",
                    "datetime", "gender"]
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]

# Fields every profile database has; custom fields are declared per database.
STANDARD_FIELDS: dict[str, FieldType] = {
    "email": "email", "phone": "phone", "first_name": "string", "last_name": "string",
    "middle_name": "string", "birthday": "date", "gender": "gender", "city": "string",
    "country": "string", "ip": "string", "region": "string", "timezone": "string", "postal_code": "string",
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


def _parse_date(text: str) -> str:
    # YYYY-MM-DD, the usual case, without strptime (a fifth of an import's validation time);
    # anything else, or a failure here, takes the formats below, which decide
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text.isascii():
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
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
    if type(value) is str:  # text (every CSV cell): a plain string field is done here
        value = value.strip()
        if not value:
            return None
        if field.type == "string" and len(value) <= MAX_STRING:
            return value
    elif value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _coerce(field.type, value, region)
    except ValueError as exc:
        raise Invalid(field.name, str(exc)) from None


# -- Altcraft's system field names ---------------------------------------------------------
# Altcraft names a profile's system fields `_fname`, `_lname`, `_bdate`... and its phones `phones`
# (the Profile data object: https://guides.altcraft.com/en/developer-guide/objects/Profile-data-object_3116008).
# Decision (issue #16): profiles stay stored under this platform's names, so every stored profile,
# segment condition, template and import mapping keeps working with no migration; Altcraft's names
# are translated here, in one place, on the way in (Profiles.prepare: API, import, panel) and added
# beside ours on the way out (`to_altcraft`).
ALTCRAFT_FIELDS: dict[str, str] = {
    "_fname": "first_name", "_lname": "last_name", "_bdate": "birthday", "_sex": "gender",
    "_city": "city", "_country": "country", "_region": "region", "_tz": "timezone",
    "_postal_code": "postal_code", "_ip": "ip", "phones": "phone",
}
# Documented, but Altcraft itself sets them (registration data, lead source, global status):
# accepted in requests and ignored; `_regdate` is answered from the profile's creation time.
ALTCRAFT_IGNORED: frozenset[str] = frozenset({"_regdate", "_regip", "_regurl", "_regcity", "_regcountry",
                                              "_browser", "_vendor", "_status"})
ALTCRAFT_INPUT_NAMES: frozenset[str] = frozenset(ALTCRAFT_FIELDS) | ALTCRAFT_IGNORED
# `_sex` is an int on Altcraft's page (its example is 0); the page does not list the values, so
# this is this platform's reading, documented in docs/api-compatibility.md: 0 unknown, 1 m, 2 f.
_SEX_IN = {0: None, 1: "m", 2: "f"}
_SEX_OUT = {"m": 1, "f": 2}


def _from_altcraft_value(name: str, value: Any) -> Any:
    if name == "phones":
        if isinstance(value, list):
            if len(value) > 1:
                raise Invalid("phones", "one phone per profile here (the field `phone`)")
            return value[0] if value else None
        return value  # a CSV cell: one number as text
    if name == "_sex" and not isinstance(value, bool):
        number = value if isinstance(value, int) else int(value) if isinstance(value, str) \
            and value.strip().isdigit() else None
        if number is not None:
            if number not in _SEX_IN:
                raise Invalid("_sex", "0 (unknown), 1 (male) or 2 (female)")
            return _SEX_IN[number]
    if name == "_bdate" and isinstance(value, str) and len(value) > 10 and value[10:11] in ("T", " "):
        return value[:10]  # RFC 3339 as Altcraft sends it: the date as written
    if name == "_postal_code" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def from_altcraft(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with Altcraft's system field names turned into this platform's (values too:
    `phones` [one] to `phone`, `_sex` 1/2 to m/f, `_bdate` RFC 3339 to a date). A field given
    under both names with two different values is Invalid naming Altcraft's."""
    if ALTCRAFT_INPUT_NAMES.isdisjoint(data):
        return data
    out = {name: value for name, value in data.items() if name not in ALTCRAFT_INPUT_NAMES}
    for name, value in data.items():
        ours = ALTCRAFT_FIELDS.get(name)
        if ours is None:
            continue
        value = _from_altcraft_value(name, value)
        if ours in out and out[ours] != value:
            raise Invalid(name, f"given with {ours!r} too, with another value: send one of them")
        out[ours] = value
    return out


def to_altcraft(data: dict[str, Any], created_at: Any = None) -> dict[str, Any]:
    """Altcraft's names for the system fields of stored `data` (to put beside ours in answers)."""
    out: dict[str, Any] = {}
    for altcraft, ours in ALTCRAFT_FIELDS.items():
        value = data.get(ours)
        if altcraft == "phones":
            out["phones"] = [value] if value else []
        elif value is None:
            continue
        elif altcraft == "_sex":
            out["_sex"] = _SEX_OUT.get(value, 0)
        elif altcraft == "_bdate":
            out["_bdate"] = f"{value}T00:00:00Z"
        else:
            out[altcraft] = value
    if isinstance(created_at, datetime):
        stamp = created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc)
        out["_regdate"] = stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
