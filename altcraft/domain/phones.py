"""Phone numbers in their one stored form, E.164, with `phonenumbers` deciding validity.

`phonenumbers.parse` is most of an import's CPU (issue #18) and most of it is spent on forms
an import rarely holds: national formats, IDD prefixes, extensions, RFC 3966, letters. A
number written internationally, `+` and digits with at most spaces, hyphens and parentheses
between them, is read here directly into the PhoneNumber that parse would build, and
`phonenumbers.is_valid_number` judges it. The shortcut answers only when that number is
valid and parse could not have read the digits otherwise (no national prefix to strip, no
leading zero); anything else, including every invalid number, goes through parse, so errors
and results are the library's (tests/unit/test_phones.py compares both over generated and
edge-case numbers).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, region_code_for_country_code

_SEPARATORS = str.maketrans("", "", " -()")
_MAX_E164_DIGITS = 15
# per country calling code: the pattern of its national prefix (None: it has none); a number
# it matches could be read by parse with the prefix stripped, so it takes the full path
_NATIONAL_PREFIX: dict[int, re.Pattern[str] | None] = {}


def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    try:
        return _NATIONAL_PREFIX[country_code]
    except KeyError:
        pass
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region_code_for_country_code(country_code))
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    pattern = re.compile(prefix) if prefix else None
    _NATIONAL_PREFIX[country_code] = pattern
    return pattern


def _international_e164(value: str) -> str | None:
    """E.164 of `value` when it is a valid number written internationally in plain digits;
    None when parse has to decide."""
    if not value.startswith("+"):
        return None
    digits = value[1:].translate(_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()) or not 3 <= len(digits) <= _MAX_E164_DIGITS:
        return None
    # the country calling code as parse finds it: the shortest known prefix of 1-3 digits
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    if len(national) < 2 or national[0] == "0" or digits[0] == "0":
        return None  # Italian leading zeros and too-short numbers: parse's own rules
    prefix = _national_prefix(country_code)
    if prefix is not None and prefix.match(national):
        return None
    if not phonenumbers.is_valid_number(PhoneNumber(country_code=country_code, national_number=int(national))):
        return None  # invalid: parse gives the error (not a number, or not valid)
    return "+" + digits


def normalize_phone(value: str, region: str) -> str:
    """`value` in E.164; raises ValueError when it is not a valid phone number."""
    fast = _international_e164(value)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
