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


# -- nested groups (segment_builder.py) -----------------------------------------------------
from altcraft.web.control.segment_builder import (  # noqa: E402
    Unrepresentable, apply_edit, condition_from_tree, tree_from_condition, tree_from_form)

NESTED = {"and": [
    {"field": "city", "op": "eq", "value": "Kazan"},
    {"not": {"or": [{"field": "age", "op": "gt", "value": 30},
                    {"activity": "opened", "days": 7, "campaign_id": 5},
                    {"and": [{"field": "first_name", "value": "Anna"},
                             {"not": {"field": "tags", "op": "in", "value": ["vip", "b2b"]}}]}]}},
    {"field": "phone", "op": "exists", "value": False}]}


def _as_form(tree, prefix="", form=None):
    """The fields a browser sends for a rendered tree (what _segment_builder.html writes)."""
    form = {} if form is None else form
    form[f"{prefix}rows"] = str(len(tree["children"]))
    form[f"{prefix}join"] = tree["join"]
    if tree["not"]:
        form[f"{prefix}not"] = "1"
    for i, child in enumerate(tree["children"]):
        if child["type"] == "group":
            form[f"{prefix}group_{i}"] = "1"
            _as_form(child, f"{prefix}g{i}_", form)
        else:
            form.update({f"{prefix}field_{i}": child["field"], f"{prefix}op_{i}": child["op"],
                         f"{prefix}value_{i}": child["value"]})
            if child["not"]:
                form[f"{prefix}not_{i}"] = "1"
            if child["orig"]:
                form[f"{prefix}orig_{i}"] = child["orig"]
    if prefix == "":
        form["bare"] = "1" if tree.get("bare") else "0"
    return form


def test_a_stored_nested_condition_round_trips_through_the_form_unchanged():
    for condition in (NESTED, {"or": [{"field": "city", "value": "Omsk"}]}, {"not": {"and": [NESTED]}},
                      {"field": "age", "op": "between", "value": [18, 30]}, {"not": {"activity": "clicked"}}, {}):
        back = condition_from_form(_as_form(tree_from_condition(condition)))
        assert back == condition and list(back) == list(condition)


def test_a_changed_row_is_read_from_its_text_not_from_the_stored_condition():
    form = _as_form(tree_from_condition(NESTED))
    form["g1_value_0"] = "40"
    changed = condition_from_form(form)
    assert changed["and"][1]["not"]["or"][0] == {"field": "age", "op": "gt", "value": "40"}
    assert changed["and"][1]["not"]["or"][2] == NESTED["and"][1]["not"]["or"][2]  # the rest as stored


def test_groups_nest_and_negate_and_an_empty_group_adds_nothing():
    form = {"join": "or", "field_0": "city", "op_0": "eq", "value_0": "Kazan", "rows": "3",
            "group_1": "1", "g1_rows": "2", "g1_join": "and", "g1_not": "1",
            "g1_field_0": "age", "g1_op_0": "gte", "g1_value_0": "18", "g1_field_1": "activity:opened",
            "group_2": "1", "g2_rows": "1"}
    assert condition_from_form(form) == {"or": [
        {"field": "city", "op": "eq", "value": "Kazan"},
        {"not": {"and": [{"field": "age", "op": "gte", "value": "18"}, {"activity": "opened", "days": 30}]}}]}


def test_edits_add_rows_and_groups_and_remove_a_group_but_never_the_top_one():
    tree = tree_from_form({"rows": "1", "field_0": "city", "value_0": "Kazan"})
    apply_edit(tree, "add_group:")
    assert [c["type"] for c in tree["children"]] == ["row", "group"]
    apply_edit(tree, "add_group:g1_")
    apply_edit(tree, "add_row:g1_g2_")
    assert len(tree["children"][1]["children"][2]["children"]) == 3
    apply_edit(tree, "remove:g1_g2_")
    assert [c["type"] for c in tree["children"][1]["children"]] == ["row", "row"]
    apply_edit(tree, "remove:")
    apply_edit(tree, "remove:g9_")
    assert len(tree["children"]) == 2


def test_a_condition_without_a_form_is_said_so():
    for condition in ({"not": {"not": {"field": "city", "value": "x"}}}, {"and": [], "x": 1}, {"color": "red"}):
        try:
            tree_from_condition(condition)
        except Unrepresentable:
            continue
        raise AssertionError(condition)
    assert condition_from_tree(tree_from_condition({})) == {}
