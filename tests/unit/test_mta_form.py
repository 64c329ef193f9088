"""The MTA rules page's form (web/admin/mta_form.py): main.json's rules shown and posted
back unchanged save nothing; blank rows are left out and an error is mapped to the row it
came from; a row with a name and no pattern is refused (an empty pattern matches all)."""

from __future__ import annotations

import pytest

from altcraft.config import MtaSettings
from altcraft.domain.errors import Invalid
from altcraft.domain.mta_rules import check
from altcraft.web.admin import mta_form

DEFAULTS = MtaSettings.model_validate({
    "RETRY": {"TYPE": "fixed", "INTERVAL_SECONDS": 30},
    "BOUNCE_PATTERNS": [{"TYPE": "soft", "PATTERN": "mailbox full", "NAME": "full"}],
    "LOCK_RULES": [{"PATTERN": "421 .*too many", "SECONDS": 120, "ISP": "gmail"}],
    "STRATEGIES": {"gmail": {"DOMAINS": ["gmail.com"], "RATE": "10:1", "HEADERS": {"X-Test": "1"}}}})


def test_the_rules_in_force_posted_back_unchanged_save_nothing():
    posted = mta_form.parse(mta_form.to_form(DEFAULTS))
    assert mta_form.changed_only(check(posted.rules), DEFAULTS) == {}


def test_a_changed_section_alone_is_saved():
    values = mta_form.to_form(DEFAULTS) | {"RETRY.INTERVAL_SECONDS": "5"}
    saved = mta_form.changed_only(check(mta_form.parse(values).rules), DEFAULTS)
    assert list(saved) == ["RETRY"] and saved["RETRY"]["INTERVAL_SECONDS"] == 5


def test_blank_rows_are_left_out_and_an_error_names_the_row_it_came_from():
    values = mta_form.to_form(DEFAULTS) | {"BOUNCE_PATTERNS[0].PATTERN": "", "BOUNCE_PATTERNS[0].NAME": "",
                                           "BOUNCE_PATTERNS[3].TYPE": "hard", "BOUNCE_PATTERNS[3].PATTERN": "a(b"}
    posted = mta_form.parse(values)
    assert posted.rules["BOUNCE_PATTERNS"] == [{"TYPE": "hard", "PATTERN": "a(b", "NAME": ""}]
    with pytest.raises(Invalid) as refused:
        check(posted.rules)
    assert refused.value.field == "rules.BOUNCE_PATTERNS[0].PATTERN"
    assert posted.form_field(refused.value.field) == "BOUNCE_PATTERNS[3].PATTERN"
    assert posted.form_field("rules.STRATEGIES.gmail.RATE") == "STRATEGIES"
    assert mta_form.row_count(values, "BOUNCE_PATTERNS") == 4 + mta_form.BLANK_ROWS


@pytest.mark.parametrize("changes, field", [
    ({"LOCK_RULES[0].PATTERN": "", "LOCK_RULES[0].NAME": "named"}, "LOCK_RULES[0].PATTERN"),
    ({"LOCK_RULES[0].SECONDS": "ten"}, "LOCK_RULES[0].SECONDS"),
    ({"RETRY.MAX_ATTEMPTS": "2.5"}, "RETRY.MAX_ATTEMPTS"),
    ({"DEFAULT_STRATEGY": "[1,"}, "DEFAULT_STRATEGY"),
])
def test_what_cannot_be_read_is_refused_naming_the_input(changes, field):
    with pytest.raises(Invalid) as refused:
        mta_form.parse(mta_form.to_form(DEFAULTS) | changes)
    assert refused.value.field == field
