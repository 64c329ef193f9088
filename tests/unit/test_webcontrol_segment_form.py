"""The segment builder's form rows become the domain's condition tree (the domain then
validates and counts it; see tests/integration/test_webcontrol_pages.py)."""

from altcraft.web.control.segment_pages import condition_from_form


def test_no_row_naming_a_field_is_no_condition():
    assert condition_from_form({"join": "or", "field_0": "", "value_0": "x"}) == {}


def test_one_row_is_the_condition_itself():
    assert condition_from_form({"field_2": "city", "op_2": "eq", "value_2": " Kazan "}) == \
        {"field": "city", "op": "eq", "value": "Kazan"}


def test_rows_are_joined_by_and_unless_any_is_chosen():
    form = {"field_0": "city", "op_0": "in", "value_0": "Kazan, Omsk,", "field_1": "age", "op_1": "between",
            "value_1": "18, 30"}
    both = [{"field": "city", "op": "in", "value": ["Kazan", "Omsk"]},
            {"field": "age", "op": "between", "value": ["18", "30"]}]
    assert condition_from_form(form) == {"and": both}
    assert condition_from_form({**form, "join": "or"}) == {"or": both}


def test_exists_and_days_take_their_types():
    assert condition_from_form({"field_0": "phone", "op_0": "exists", "value_0": "no"})["value"] is False
    assert condition_from_form({"field_0": "phone", "op_0": "exists", "value_0": "yes"})["value"] is True
    assert condition_from_form({"field_0": "birthday", "op_0": "within_days", "value_0": "30"})["value"] == 30
    # not a number: passed on as written, so the domain names the error
    assert condition_from_form({"field_0": "birthday", "op_0": "within_days", "value_0": "x"})["value"] == "x"


def test_a_ticked_not_negates_its_row_only():
    form = {"field_0": "city", "op_0": "eq", "value_0": "Kazan", "not_0": "1",
            "field_1": "first_name", "op_1": "eq", "value_1": "Anna"}
    assert condition_from_form(form) == {"and": [{"not": {"field": "city", "op": "eq", "value": "Kazan"}},
                                                 {"field": "first_name", "op": "eq", "value": "Anna"}]}


def test_activity_rows_take_days_and_an_optional_campaign():
    assert condition_from_form({"field_0": "activity:opened", "op_0": "eq", "value_0": ""}) == \
        {"activity": "opened", "days": 30}
    assert condition_from_form({"field_0": "activity:clicked", "value_0": "7, 12"}) == \
        {"activity": "clicked", "days": 7, "campaign_id": 12}
    assert condition_from_form({"field_0": "activity:received", "value_0": "7", "not_0": "1"}) == \
        {"not": {"activity": "received", "days": 7}}
    # not numbers: passed on as written, so the domain names the error
    assert condition_from_form({"field_0": "activity:opened", "value_0": "week"})["days"] == "week"
