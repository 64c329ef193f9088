"""The phone shortcut (domain/phones.py) against phonenumbers itself: for every input, the
result or the error is what parse, is_valid_number and format_number give."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from altcraft.domain import phones

REGIONS = ("RU", "US", "DE", "GB", "IT", "AR")  # default regions the reference is asked with


def reference(value: str, region: str) -> str:
    """What the library alone answers: E.164, or the error text normalize_phone raises."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return "error: not a phone number"
    if not phonenumbers.is_valid_number(number):
        return "error: not a valid phone number"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def ours(value: str, region: str) -> str:
    try:
        return phones.normalize_phone(value, region)
    except ValueError as exc:
        return f"error: {exc}"


def _variants(e164: str, rng: random.Random) -> list[str]:
    """Ways an importer's file writes one international number: E.164, the library's
    international format, separators in odd places, the last digits changed (mostly another
    valid or an invalid number of the same plan), a national prefix or zero put in after
    the country code, digits added or dropped."""
    number = phonenumbers.parse(e164)
    cc, national = str(number.country_code), e164[1 + len(str(number.country_code)):]
    out = [e164, phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
           f"+{cc} ({national[:3]}) {national[3:6]}-{national[6:]}", f"+({cc}) {national}",
           f"+ {cc}-{national}", f"+{cc}{national})", f"+{cc} {national} -", f"+-{cc}{national}",
           f"+{cc}0{national}", f"+{cc}00{national}", f"+{cc}8{national}", f"+{cc}1{national}",
           f"+{cc}9{national}", f"+{cc}{national}0", f"+{cc}{national[:-1]}", f"+{cc}{national[1:]}",
           f"{cc}{national}", f"00{cc}{national}", f"+{cc}{national}#", f"+{cc}{national} ext 12",
           f"+{cc}{national[:-3]}-123#", f"+{cc}{national},12", f"++{cc}{national}", f"+0{cc}{national}"]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        number.country_code, phonenumbers.region_code_for_number(number) or "001")
    if metadata is not None and metadata.national_prefix:
        out.append(f"+{cc}{metadata.national_prefix}{national}")
    for _ in range(3):
        keep = rng.randrange(0, len(national) + 1)
        tail = "".join(rng.choice("0123456789") for _ in range(len(national) - keep))
        out.append(f"+{cc}{national[:keep]}{tail}")
    return out


def generated_numbers() -> list[str]:
    rng = random.Random(18)
    values: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE,
                     PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.PAGER,
                     PhoneNumberType.UAN, PhoneNumberType.SHARED_COST, PhoneNumberType.PERSONAL_NUMBER):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                values += _variants(phonenumbers.format_number(example, PhoneNumberFormat.E164), rng)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            values += _variants(phonenumbers.format_number(example, PhoneNumberFormat.E164), rng)
    # random digits after every country code, of every length E.164 allows and beyond
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        for length in range(0, 16 - len(str(code)) + 2):
            values.append(f"+{code}" + "".join(rng.choice("0123456789") for _ in range(length)))
    # the bench's own kind (Russian mobiles written with spaces), and edge cases of the form
    values += [f"+7 9{rng.randrange(10**2):02d} {rng.randrange(10**7):07d}" for _ in range(2000)]
    return values + EDGE


EDGE = ["+", "+7", "+79", "+0", "+00", "+1", "+12", "+123", "+999999999999999", "+1234567890123456",
               "+7 916 123 45 67", "+7\u00a0916\u00a01234567", "+7 916 １２３ 45 67", "\uff0b79161234567",
               "+7 (916) 123-45-67", "+7..916.123.45.67", "+7/916/1234567", "+7 916 123 45 67 x",
               "+7 916 123-4567;ext=1", "+7-916-123-45-67-", "+7 916 ٣٢١ 45 67", "+7 916 123 45 67\t",
               "+39 06 1234 5678", "+39 0612345678", "+39 3123456789", "+54 9 11 2345-6789",
               "+54 11 2345-6789", "+52 1 55 1234 5678", "+52 55 1234 5678", "+800 1234 5678",
               "+882 3456 7890", "+1 242 357 1234", "+1 800 555 0199", "+44 7400 123456",
               "+44 0 7400 123456", "+49 030 123456", "+49 30 123456", "+7 8 916 123 45 67",
               "+7 800 555 35 35", "+375 29 123 45 67", "+380 50 123 4567", "+998 90 123 45 67",
               "tel:+7-916-123-45-67", "+7 916 CALL ME",
               # valid digits as written, but parse strips Belarus's national prefix 8 from them
               "+375 810 424 2604", "+375 810 454 5602"]
NUMBERS = generated_numbers()


@pytest.fixture(scope="module")
def expected() -> dict[str, str]:
    return {value: reference(value, "RU") for value in NUMBERS}


def test_the_shortcut_gives_what_phonenumbers_gives_for_every_generated_number(expected):
    differ = [(value, ours(value, "RU"), want) for value, want in expected.items() if ours(value, "RU") != want]
    assert not differ, f"{len(differ)} differ, e.g. {differ[:10]}"


def test_the_shortcut_is_taken_for_most_valid_international_numbers(expected):
    """Or the comparison above would be phonenumbers against itself."""
    taken = [value for value in NUMBERS if phones._international_e164(value) is not None]
    valid = [value for value, want in expected.items() if value.startswith("+") and not want.startswith("error")]
    assert len(taken) > 0.6 * len(valid) > 1000


@pytest.mark.parametrize("region", REGIONS)
def test_edge_cases_agree_in_every_default_region(region):
    assert [ours(v, region) for v in EDGE] == [reference(v, region) for v in EDGE]


def test_numbers_parse_reads_differently_are_left_to_parse():
    """A national prefix after the country code, and Italian leading zeros: the digits are not
    the number parse builds, so the shortcut must not answer."""
    for value in ("+375 810 424 2604", "+7 8 916 123 45 67", "+39 06 1234 5678", "+44 0 7400 123456", "+0 79161234567"):
        assert phones._international_e164(value) is None
    assert phones._international_e164("+7 916 123-45-67") == "+79161234567"
