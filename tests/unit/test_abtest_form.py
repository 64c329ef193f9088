"""The A/B test form's test share: typed in percent, stored as the domain's fraction."""

from __future__ import annotations

import pytest
from flask import Flask, g

from altcraft.domain import abtest
from altcraft.domain.errors import Invalid
from altcraft.web.control.abtest_pages import share_of

GOOD = {"variants": [{"subject": "A"}, {"subject": "B"}], "wait_seconds": 3600}


@pytest.mark.parametrize("typed, share", [("20", 0.2), (" 12,5 % ", 0.125), ("1", 0.01), ("99", 0.99),
                                          ("33.3", 0.333), ("7%", 0.07)])
def test_a_percent_becomes_the_fraction_the_domain_takes(typed, share):
    assert share_of(typed) == share
    assert abtest.settings({**GOOD, "test_share": share_of(typed)})["test_share"] == share


@pytest.mark.parametrize("typed", ["0.2", "0", "0.99", "100", "150", "-5", "a fifth", "", "%", "nan", "inf", "1e9"])
def test_anything_else_is_refused_naming_the_field(typed):
    with Flask(__name__).test_request_context():
        with pytest.raises(Invalid) as refused:
            share_of(typed)
    assert refused.value.field == "ab.test_share"
    assert refused.value.reason.startswith("the test share, in percent of the segment: a number from 1 to 99")


def test_the_refusal_is_said_in_russian_to_a_russian_user():
    with Flask(__name__).test_request_context():
        g.lang = "ru"
        with pytest.raises(Invalid) as refused:
            share_of("0.2")
    assert refused.value.reason == "тестовая доля в процентах от сегмента: число от 1 до 99 (например, 20)"
