"""The scenario step form <-> the API's nodes: a graph saved through the API opens in the
form editor and saves back unchanged; a value the form cannot read is refused naming the
node's field, as the domain names its refusals."""

from __future__ import annotations

import pytest

from altcraft.domain import scenarios
from altcraft.domain.errors import Invalid
from altcraft.web.control.scenario_form import from_form, to_form

TYPES = {"age": "int", "vip": "bool", "city": "string", "birthday": "date", "tz": "string"}

# every node type and every shape of each, as the API stores them (after validate)
GRAPH = [
    {"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "by_event"},
    {"id": "by_event", "type": "split", "branches": [{"percent": 30, "next": "hello"},
                                                     {"percent": 70, "next": "hi_v"}]},
    {"id": "hello", "type": "send", "template_id": 3, "sender_id": 5, "campaign_id": 901, "next": "pause"},
    {"id": "hi_v", "type": "send", "template_id": 3, "vsender_id": 2, "next": "pause"},
    {"id": "pause", "type": "wait", "seconds": 3 * 86400, "next": "morning"},
    {"id": "morning", "type": "wait", "until": {"time": "09:30", "zone": "Europe/Moscow", "zone_field": "tz"},
     "next": "bday"},
    {"id": "bday", "type": "wait", "until": {"field": "birthday", "offset_seconds": -7200}, "next": "odd"},
    {"id": "odd", "type": "wait", "seconds": 61, "next": "opened"},
    {"id": "opened", "type": "wait_for", "event": {"opened": "hello"}, "timeout": 7200, "next": "paid",
     "timeout_next": "seen"},
    {"id": "paid", "type": "wait_for", "event": {"name": "order_paid"}, "timeout": 86400, "next": "seen",
     "timeout_next": "rule"},
    {"id": "seen", "type": "branch", "condition": {"clicked": "hello"}, "yes": "rule", "no": "adult"},
    {"id": "rule", "type": "branch", "condition": {"profile": {"field": "city", "op": "eq", "value": "42"}},
     "yes": "adult", "no": "complex"},
    {"id": "adult", "type": "branch", "condition": {"profile": {"field": "age", "op": "gte", "value": 18}},
     "yes": "complex", "no": "complex"},
    {"id": "complex", "type": "branch", "condition": {"profile": {"or": [
        {"field": "city", "op": "in", "value": ["Kazan", "Омск"]}, {"activity": "opened", "days": 30}]}},
     "yes": "mark", "no": "sub"},
    {"id": "mark", "type": "update", "set": {"age": 30, "vip": True, "city": "30"}, "next": "sub"},
    {"id": "sub", "type": "update", "subscription": {"resource_id": 1, "channel": "email", "status": "unsubscribed"},
     "segment": {"id": 7, "action": "remove"}, "next": "hook"},
    {"id": "hook", "type": "webhook", "endpoint_id": 4, "event": "workflow.step", "next": "end"},
    {"id": "end", "type": "exit"},
]
OTHER_ENTRIES = [
    {"id": "start", "type": "entry", "trigger": {"type": "event", "name": "signed_up"}, "next": "end"},
    {"id": "start", "type": "entry", "trigger": {"type": "segment", "segment_id": 12}, "next": "end"},
    {"id": "start", "type": "entry", "trigger": {"type": "date", "field": "birthday", "offset_days": -3}, "next": "end"},
]


def test_every_node_of_a_stored_graph_round_trips_unchanged():
    stored = scenarios.validate(GRAPH)  # what the API stores
    for node in stored + OTHER_ENTRIES:
        form = to_form(node)
        assert all(isinstance(v, str) for v in form.values()), form
        assert from_form(form, TYPES) == node, node["id"]
    assert [from_form(to_form(n), TYPES) for n in stored] == stored


def test_durations_are_shown_in_the_largest_whole_unit():
    assert (to_form(GRAPH[4])["s_amount"], to_form(GRAPH[4])["s_unit"]) == ("3", "days")
    assert (to_form(GRAPH[7])["s_amount"], to_form(GRAPH[7])["s_unit"]) == ("61", "seconds")
    assert (to_form(GRAPH[8])["s_amount"], to_form(GRAPH[8])["s_unit"]) == ("2", "hours")


def test_a_complex_condition_is_kept_as_json_and_a_simple_one_as_a_rule():
    assert to_form(GRAPH[13])["s_cond"] == "json" and to_form(GRAPH[11])["s_cond"] == "rule"


def test_a_new_step_from_the_form_leaves_unset_exits_for_the_domain_to_refuse():
    node = from_form({"s_id": "x", "s_type": "send", "s_template_id": "3", "s_sender": "s:5"})
    assert node == {"id": "x", "type": "send", "template_id": 3, "sender_id": 5, "next": None}
    with pytest.raises(Invalid) as refused:
        scenarios.validate([GRAPH[0] | {"next": "x"}, node])
    assert refused.value.field == "node 'x'.next"


@pytest.mark.parametrize("form, field", [
    ({"s_id": "w", "s_type": "wait", "s_wait": "seconds", "s_amount": "three", "s_unit": "days"}, "node 'w'.seconds"),
    ({"s_id": "s", "s_type": "send", "s_template_id": "x1", "s_sender": "s:5"}, "node 's'.template_id"),
    ({"s_id": "u", "s_type": "update", "s_set_field_0": "age", "s_set_value_0": "old"}, "node 'u'.set.age"),
    ({"s_id": "b", "s_type": "branch", "s_cond": "json", "s_cond_json": "{"}, "node 'b'.condition.profile"),
    ({"s_id": "p", "s_type": "split", "s_percent_0": "half", "s_next_0": "end"}, "node 'p'.branches[0].percent"),
])
def test_an_unreadable_value_is_refused_naming_the_field(form, field):
    with pytest.raises(Invalid) as refused:
        from_form(form, TYPES)
    assert refused.value.field == field


# -- the editor's actions on a draft and where a refusal is placed (scenario_editor) --------

from altcraft.domain.errors import NotFound  # noqa: E402
from altcraft.web.control import scenario_editor as editor  # noqa: E402

CHAIN = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "hello"},
         {"id": "hello", "type": "send", "template_id": 3, "sender_id": 5, "next": "end"},
         {"id": "end", "type": "exit"}]


def test_a_refusal_is_placed_under_its_step_and_field():
    assert editor.place(Invalid("node 'hello'.next", "no node 'x' (dangling edge)"), CHAIN) == \
        editor.Problem("hello", "s_next", "node 'hello'.next: no node 'x' (dangling edge)")
    assert editor.place(NotFound("node 'hello': template 9 not found"), CHAIN).input == "s_template_id"
    assert editor.place(Invalid("nodes[2].id", "a node id"), CHAIN).node_id == "end"
    assert editor.place(Invalid("nodes", "exactly one entry node (found 0)"), CHAIN).node_id is None
    wait_for = [{"id": "w", "type": "wait_for"}, {"id": "h", "type": "webhook"}]
    assert editor.place(Invalid("node 'w'.event", "x"), wait_for).input == "s_event"
    assert editor.place(Invalid("node 'h'.event", "x"), wait_for).input == "s_hook_event"


def test_a_step_put_after_another_takes_its_place_in_the_chain():
    edit = editor.act(CHAIN, {"op": "apply", "s_id": "pause", "s_type": "wait", "s_wait": "seconds",
                              "s_amount": "2", "s_unit": "hours", "s_after": "hello"}, {})
    assert [(n["id"], n.get("next")) for n in edit.nodes] == \
        [("start", "hello"), ("hello", "pause"), ("end", None), ("pause", "end")]
    assert edit.changed and edit.applied == "pause" and CHAIN[1]["next"] == "end"  # the draft given is kept


def test_a_renamed_step_takes_its_edges_and_references_along():
    graph = [*CHAIN[:2], {"id": "seen", "type": "branch", "condition": {"opened": "hello"}, "yes": "end",
                          "no": "end"}, CHAIN[2]]
    graph[1] = {**graph[1], "next": "seen"}
    edit = editor.act(graph, {"op": "apply", **to_form(graph[1]), "s_id": "welcome", "s_was": "hello"}, {})
    assert edit.nodes[0]["next"] == "welcome" and edit.nodes[2]["condition"] == {"opened": "welcome"}
    assert scenarios.validate(edit.nodes)  # still a whole graph


def test_delete_and_open_and_a_draft_that_is_not_one():
    assert [n["id"] for n in editor.act(CHAIN, {"op": "delete:end"}, {}).nodes] == ["start", "hello"]
    assert editor.act(CHAIN, {"op": "edit:hello"}, {}).form["s_template_id"] == "3"
    assert editor.act(CHAIN, {"op": "add", "new_type": "split"}, {}).form["s_id"] == "split_1"
    for text in ("{", "{}", '[{"id": "a", "type": "teleport"}]', '[{"id": "s", "type": "split", "branches": 1}]'):
        with pytest.raises(Invalid):
            editor.draft_of(text)
