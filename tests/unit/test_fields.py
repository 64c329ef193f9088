from datetime import datetime, timezone

import pytest

from altcraft.domain.errors import Invalid
from altcraft.domain.fields import Field, coerce


def c(kind, value, region="RU"):
    return coerce(Field("f", kind), value, region)


@pytest.mark.parametrize("raw, stored", [
    (" Bob.Smith@Example.COM ", "bob.smith@example.com"),
    ("a+tag@sub.domain.io", "a+tag@sub.domain.io"),
])
def test_emails_are_normalised(raw, stored):
    assert c("email", raw) == stored


@pytest.mark.parametrize("raw", ["bob", "bob@", "@x.com", "a b@x.com", "a@x", "a@@x.com", "a@x..com"])
def test_bad_emails_name_the_field(raw):
    with pytest.raises(Invalid) as exc:
        c("email", raw)
    assert exc.value.field == "f" and exc.value.reason == "not a valid e-mail address"


def test_phones_become_e164():
    assert c("phone", "8 (916) 123-45-67") == "+79161234567"
    assert c("phone", "+44 20 7946 0958", "RU") == "+442079460958"
    assert c("phone", 79161234567) == "+79161234567"
    with pytest.raises(Invalid, match="not a valid phone number"):
        c("phone", "+7 000 000")


def test_empty_is_not_given():
    assert c("string", "  ") is None and c("integer", None) is None


def test_integers_numbers_booleans():
    assert c("integer", "42") == 42 and c("integer", 7) == 7 and c("integer", 3.0) == 3
    assert c("number", "2,5") == 2.5
    assert c("boolean", "yes") is True and c("boolean", "0") is False
    for kind, value in (("integer", "4.2"), ("integer", True), ("number", "many"), ("boolean", "perhaps")):
        with pytest.raises(Invalid):
            c(kind, value)


def test_dates_and_datetimes():
    assert c("date", "1990-02-28") == "1990-02-28"
    assert c("date", "28.02.1990") == "1990-02-28"
    with pytest.raises(Invalid, match="not a date"):
        c("date", "31.02.1990")
    assert c("datetime", "2026-11-22T10:00:00+03:00") == datetime(2026, 11, 22, 7, 0, tzinfo=timezone.utc)


def test_gender_spellings():
    assert [c("gender", g) for g in ("M", "female", "ж")] == ["m", "f", "f"]


def test_strings_have_a_limit():
    with pytest.raises(Invalid, match="longer than"):
        c("string", "x" * 1001)
    with pytest.raises(Invalid, match="expected a string"):
        c("string", {"nested": 1})
