"""Altcraft's system field names as aliases of the stored ones (domain/fields.py, #16)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from altcraft.domain.errors import Invalid
from altcraft.domain.fields import ALTCRAFT_FIELDS, STANDARD_FIELDS, from_altcraft, to_altcraft


def test_every_alias_names_a_standard_field():
    assert set(ALTCRAFT_FIELDS.values()) <= set(STANDARD_FIELDS)


def test_names_and_values_are_translated_in():
    got = from_altcraft({"_fname": "Olly", "_bdate": "1990-02-22T21:00:00Z", "_sex": 2, "phones": ["+79161234567"],
                         "_postal_code": 390000, "_regdate": "2019-03-14T22:00:00Z", "_status": 0, "card": "x"})
    assert got == {"first_name": "Olly", "birthday": "1990-02-22", "gender": "f", "phone": "+79161234567",
                   "postal_code": "390000", "card": "x"}
    assert from_altcraft({"_sex": "1", "phones": "+79161234567"}) == {"gender": "m", "phone": "+79161234567"}
    assert from_altcraft({"_sex": 0, "phones": []}) == {"gender": None, "phone": None}  # not given
    plain = {"first_name": "Anna"}
    assert from_altcraft(plain) is plain  # this platform's names pass untouched


@pytest.mark.parametrize("data, field", [
    ({"_fname": "A", "first_name": "B"}, "_fname"),
    ({"phones": ["+79161234567", "+79161234568"]}, "phones"),
    ({"_sex": 7}, "_sex"),
])
def test_what_cannot_be_stored_is_refused_by_its_altcraft_name(data, field):
    with pytest.raises(Invalid) as raised:
        from_altcraft(data)
    assert raised.value.field == field


def test_the_same_value_under_both_names_is_one_value():
    assert from_altcraft({"_fname": "A", "first_name": "A"}) == {"first_name": "A"}


def test_names_and_values_are_translated_out():
    stored = {"first_name": "Olly", "birthday": "1990-02-22", "gender": "m", "phone": "+79161234567", "city": "Ryazan"}
    out = to_altcraft(stored, datetime(2026, 1, 2, 3, 4, 5))
    assert out == {"_fname": "Olly", "_bdate": "1990-02-22T00:00:00Z", "_sex": 1, "phones": ["+79161234567"],
                   "_city": "Ryazan", "_regdate": "2026-01-02T03:04:05Z"}
    assert to_altcraft({}, datetime(2026, 1, 2, tzinfo=timezone.utc)) == {"phones": [], "_regdate": "2026-01-02T00:00:00Z"}
    assert from_altcraft(to_altcraft(stored)) == stored  # a round trip changes nothing
