"""Scenario graphs: validation when saved, names of what is wrong, derived ids."""

from __future__ import annotations

import copy

import pytest

from altcraft.domain import scenarios
from altcraft.domain.errors import Invalid
from tests.lib.workflows import welcome


def error(nodes, **kw) -> str:
    with pytest.raises(Invalid) as caught:
        scenarios.validate(nodes, **kw)
    return str(caught.value)


def test_the_welcome_graph_is_valid_and_stored_as_given():
    nodes = welcome(template_id=3, sender_id=4)
    assert [n["id"] for n in scenarios.validate(copy.deepcopy(nodes))] == [n["id"] for n in nodes]


def test_exactly_one_entry():
    nodes = welcome()
    assert "exactly one entry node (found 0)" in error([n for n in nodes if n["type"] != "entry"])
    second = {"id": "again", "type": "entry", "trigger": {"type": "api"}, "next": "exit"}
    assert "exactly one entry node (found 2)" in error(nodes + [second])


def test_a_dangling_edge_is_named():
    nodes = welcome()
    nodes[1]["next"] = "nowhere"
    assert error(nodes) == "node 'first'.next: no node 'nowhere' (dangling edge)"


def test_an_unreachable_node_is_named():
    nodes = welcome() + [{"id": "orphan", "type": "exit"}]
    assert error(nodes) == "node 'orphan': not reachable from the entry"


def test_node_fields_are_checked_by_type():
    nodes = welcome()
    nodes[2]["seconds"] = 0
    assert error(nodes).startswith("node 'wait'.seconds: whole seconds")
    nodes = welcome()
    del nodes[1]["template_id"]
    assert error(nodes) == "node 'first'.template_id: missing"
    nodes = welcome()
    nodes[1]["vsender_id"] = 9
    assert error(nodes).startswith("node 'first'.sender_id: give exactly one")
    nodes = welcome()
    nodes[1]["seconds"] = 5
    assert error(nodes) == "node 'first'.seconds: not a field of a send node"
    nodes = welcome()
    nodes[3]["type"] = "loop"
    assert error(nodes).startswith("node 'opened?'.type: one of: entry, send, wait, wait_for, branch, split, "
                                   "update, webhook, exit")
    nodes = welcome()
    nodes[0]["trigger"] = {"type": "event", "name": "has space"}
    assert error(nodes).startswith("node 'start'.trigger.name:")


def test_a_branch_on_activity_must_name_a_send_node():
    nodes = welcome()
    nodes[3]["condition"] = {"opened": "wait"}
    assert error(nodes) == "node 'opened?'.condition: 'wait' is not a send node"


def test_a_profile_condition_is_checked_by_the_compiler_it_is_given():
    nodes = welcome()
    nodes[3]["condition"] = {"profile": {"field": "nope"}}

    def check(condition, where):
        raise Invalid(f"{where}.field", "'nope' is not a field")

    assert error(nodes, check_condition=check) == "node 'opened?'.condition.profile.field: 'nope' is not a field"


def test_an_edge_back_to_the_entry_is_refused_but_cycles_elsewhere_are_allowed():
    nodes = welcome()
    nodes[4]["next"] = "start"
    assert error(nodes) == "node 'reminder'.next: an edge may not lead back to the entry"
    nodes[4]["next"] = "wait"  # a loop, capped by max_visits when it runs
    scenarios.validate(nodes)


def test_message_ids_derive_from_run_node_and_visit():
    run = {"_id": scenarios.run_id(5, "p1", "key:a")}
    assert scenarios.run_id(5, "p1", "key:a") == run["_id"] != scenarios.run_id(5, "p1", "key:b")
    first = scenarios.message_id(run, "first", 1)
    assert first == scenarios.message_id(run, "first", 1)
    assert len({first, scenarios.message_id(run, "first", 2), scenarios.message_id(run, "reminder", 1)}) == 3


def test_a_custom_event_enters_the_active_scenarios_that_name_it():
    from altcraft.domain import events
    from altcraft.services.procevent import entered

    nodes = welcome()
    nodes[0]["trigger"] = {"type": "event", "name": "signed_up"}
    listening = {"id": 1, "account_id": 1, "db_id": 2, "active": True, "nodes": scenarios.validate(nodes)}
    by_api = {**listening, "id": 2, "nodes": scenarios.validate(welcome())}
    event = events.custom(1, 2, "p1", "signed_up", {})
    assert entered(event, [listening, by_api]) == [listening]
    assert entered(events.custom(1, 2, "p1", "other", {}), [listening]) == []
    assert entered(events.custom(1, 3, "p1", "signed_up", {}), [listening]) == []
    assert entered(event, [{**listening, "active": False}]) == []


def test_scenario_settings_are_checked():
    with pytest.raises(Invalid, match="^max_visits: "):
        scenarios.Scenarios._settings(max_visits=0)
    with pytest.raises(Invalid, match="^reentry: one of: once, after_exit, always"):
        scenarios.Scenarios._settings(reentry="twice")
    with pytest.raises(Invalid, match="^name: "):
        scenarios.Scenarios._settings(name=" ")


# -- the node types added later: wait-for, split, update, webhook, wait until, entries ----------
def graph(*middle: dict, entry: dict | None = None) -> list[dict]:
    """entry -> the given nodes (each `next`ing the following) -> exit."""
    nodes = [{"id": "start", "type": "entry", "trigger": entry or {"type": "api"}, "next": middle[0]["id"]
              if middle else "done"}, *middle, {"id": "done", "type": "exit"}]
    return nodes


def test_a_wait_for_names_its_event_timeout_and_both_exits():
    send = {"id": "mail", "type": "send", "template_id": 1, "sender_id": 1, "next": "clicked?"}
    ok = {"id": "clicked?", "type": "wait_for", "event": {"clicked": "mail"}, "timeout": 3600,
          "next": "done", "timeout_next": "done"}
    scenarios.validate(graph(send, ok))
    assert error(graph(send, {**ok, "timeout_next": "gone"})) == \
        "node 'clicked?'.timeout_next: no node 'gone' (dangling edge)"
    assert error(graph(send, {**ok, "event": {"clicked": "start"}})) == \
        "node 'clicked?'.event: 'start' is not a send node"
    assert error(graph(send, {**ok, "event": {"bought": "x"}})).startswith("node 'clicked?'.event: {\"opened\"")
    assert error(graph(send, {**ok, "event": {"name": "has space"}})).startswith("node 'clicked?'.event.name:")
    assert error(graph(send, {**ok, "timeout": 0})).startswith("node 'clicked?'.timeout: whole seconds")
    no_timeout = {k: v for k, v in ok.items() if k != "timeout_next"}
    assert error(graph(send, no_timeout)) == "node 'clicked?'.timeout_next: missing"
    paid = {**ok, "event": {"name": "paid"}}
    assert scenarios.validate(graph(send, paid))[2]["event"] == {"name": "paid"}


def test_a_split_needs_percentages_that_sum_to_100_and_reaches_every_branch():
    split = {"id": "ab", "type": "split", "branches": [{"percent": 30, "next": "a"}, {"percent": 70, "next": "b"}]}
    a = {"id": "a", "type": "exit"}
    b = {"id": "b", "type": "exit"}
    nodes = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "ab"}, split, a, b]
    scenarios.validate(copy.deepcopy(nodes))
    nodes[1]["branches"][1]["percent"] = 60
    assert error(copy.deepcopy(nodes)) == "node 'ab'.branches: the percentages must sum to 100 (they sum to 90)"
    nodes[1]["branches"] = [{"percent": 100, "next": "a"}]
    assert error(copy.deepcopy(nodes)).startswith("node 'ab'.branches: a list of 2..10 branches")
    nodes[1]["branches"] = [{"percent": 50, "next": "a"}, {"percent": 50, "next": "nowhere"}]
    assert error(copy.deepcopy(nodes)) == "node 'ab'.branches[1].next: no node 'nowhere' (dangling edge)"
    nodes[1]["branches"] = [{"percent": 50, "next": "a"}, {"percent": 50, "next": "a", "weight": 1}]
    assert error(copy.deepcopy(nodes)).startswith("node 'ab'.branches[1].weight: not a field here")
    nodes[1]["branches"] = [{"percent": 50, "next": "a"}, {"percent": 50, "next": "a"}]
    assert error(copy.deepcopy(nodes)) == "node 'b': not reachable from the entry"


def test_an_update_names_what_is_wrong():
    up = {"id": "up", "type": "update", "next": "done"}
    assert error(graph(up)) == "node 'up'.set: give at least one of set, subscription and segment"
    assert error(graph({**up, "set": {}})).startswith("node 'up'.set: {\"<field>\"")
    scenarios.validate(graph({**up, "set": {"city": "Omsk"}}))
    bad = {**up, "subscription": {"resource_id": 1, "status": "maybe"}}
    assert error(graph(bad)) == "node 'up'.subscription.status: one of: subscribed, unsubscribed"
    stored = scenarios.validate(graph({**up, "subscription": {"resource_id": 2, "status": "unsubscribed"}}))
    assert stored[1]["subscription"] == {"resource_id": 2, "channel": "email", "status": "unsubscribed"}
    assert error(graph({**up, "segment": {"id": 3, "action": "move"}})) == "node 'up'.segment.action: add or remove"


def test_a_webhook_names_an_endpoint_and_an_event_type():
    hook = {"id": "call", "type": "webhook", "endpoint_id": 0, "next": "done"}
    assert error(graph(hook)).startswith("node 'call'.endpoint_id: a webhook endpoint id")
    assert scenarios.validate(graph({**hook, "endpoint_id": 4}))[1]["event"] == "workflow.step"
    assert error(graph({**hook, "endpoint_id": 4, "event": "a b"})).startswith("node 'call'.event:")


def test_wait_variants_are_checked():
    wait = {"id": "w", "type": "wait", "next": "done"}
    assert error(graph(wait)) == "node 'w'.seconds: give exactly one of seconds and until"
    assert error(graph({**wait, "seconds": 5, "until": {"time": "09:00"}})) == \
        "node 'w'.seconds: give exactly one of seconds and until"
    assert error(graph({**wait, "until": {"time": "9am"}})) == "node 'w'.until.time: a time of day, HH:MM (24 hours)"
    assert error(graph({**wait, "until": {"time": "09:00", "zone": "Mars/Base"}})).startswith("node 'w'.until.zone:")
    stored = scenarios.validate(graph({**wait, "until": {"time": "09:00"}}))[1]
    assert stored["until"] == {"time": "09:00", "zone": "UTC"}
    stored = scenarios.validate(graph({**wait, "until": {"field": "renewal"}}))[1]
    assert stored["until"] == {"field": "renewal", "offset_seconds": 0}
    assert error(graph({**wait, "until": {"field": "renewal", "offset_seconds": 1.5}})).startswith(
        "node 'w'.until.offset_seconds: whole seconds")
    assert error(graph({**wait, "until": {"time": "09:00", "field": "x"}})).startswith("node 'w'.until: ")


def test_entry_variants_are_checked():
    assert scenarios.validate(graph(entry={"type": "segment", "segment_id": 3}))[0]["trigger"] == \
        {"type": "segment", "segment_id": 3}
    assert error(graph(entry={"type": "segment"})) == "node 'start'.trigger.segment_id: a segment id (a positive integer)"
    assert scenarios.validate(graph(entry={"type": "date", "field": "birthday"}))[0]["trigger"] == \
        {"type": "date", "field": "birthday", "offset_days": 0}
    assert error(graph(entry={"type": "date", "field": "birthday", "offset_days": 400})).startswith(
        "node 'start'.trigger.offset_days: whole days")
    assert error(graph(entry={"type": "date", "field": "birthday", "name": "x"})) == \
        "node 'start'.trigger.name: not a field of a date trigger"
    assert error(graph(entry={"type": "cron"})).startswith("node 'start'.trigger.type: one of: api, event, segment, date")


def checker(segments: dict | None = None):
    from altcraft.domain.databases import ProfileDatabase
    from altcraft.domain.errors import NotFound
    from altcraft.domain.fields import Field

    database = ProfileDatabase(7, "shop", "email", (Field("renewal", "date"), Field("tz", "string")))

    def segment(segment_id):
        if segment_id not in (segments or {}):
            raise NotFound(f"segment {segment_id} not found")
        return segments[segment_id]

    def endpoint(endpoint_id):
        if endpoint_id != 4:
            raise NotFound(f"webhook {endpoint_id} not found")

    return scenarios.node_checker(database, segment, endpoint)


def test_what_a_node_names_is_checked_against_the_database_and_the_account():
    from altcraft.domain.errors import NotFound
    check = checker()
    up = {"id": "up", "type": "update", "next": "done"}
    assert error(graph({**up, "set": {"nope": 1}}), check_node=check) == \
        "node 'up'.set.nope: 'nope' is not a field of database 7"
    assert error(graph({**up, "set": {"renewal": "soon"}}), check_node=check).startswith("node 'up'.set.renewal: ")
    assert error(graph({**up, "set": {"email": "a@b.example"}}), check_node=check) == \
        "node 'up'.set.email: the database's key is not changed by a scenario"
    scenarios.validate(graph({**up, "set": {"renewal": "2027-01-31", "city": "Omsk"}}), check_node=check)
    wait = {"id": "w", "type": "wait", "next": "done"}
    assert error(graph({**wait, "until": {"field": "city"}}), check_node=check) == \
        "node 'w'.until.field: 'city' is a string field, not date or datetime"
    assert error(graph({**wait, "until": {"time": "09:00", "zone_field": "renewal"}}), check_node=check) == \
        "node 'w'.until.zone_field: 'renewal' is a date field, not string"
    assert error(graph(entry={"type": "date", "field": "tz"}), check_node=check).startswith(
        "node 'start'.trigger.field: 'tz' is a string field")
    with pytest.raises(NotFound, match="^node 'call'.endpoint_id: webhook 9 not found"):
        scenarios.validate(graph({"id": "call", "type": "webhook", "endpoint_id": 9, "next": "done"}),
                           check_node=check)
    scenarios.validate(graph({"id": "call", "type": "webhook", "endpoint_id": 4, "next": "done"}), check_node=check)
    with pytest.raises(NotFound, match="^node 'up'.segment.id: segment 3 not found"):
        scenarios.validate(graph({**up, "segment": {"id": 3, "action": "add"}}), check_node=check)
    check = checker({3: {"db_id": 7, "kind": "dynamic"}, 4: {"db_id": 8, "kind": "static", "manual": True},
                     5: {"db_id": 7, "kind": "static", "manual": True}, 6: {"db_id": 7, "kind": "static"}})
    assert error(graph({**up, "segment": {"id": 3, "action": "add"}}), check_node=check).startswith(
        "node 'up'.segment.id: segment 3 is not filled by hand")
    assert error(graph({**up, "segment": {"id": 6, "action": "add"}}), check_node=check).startswith(
        "node 'up'.segment.id: segment 6 is not filled by hand")  # static, but from its condition
    assert error(graph({**up, "segment": {"id": 4, "action": "add"}}), check_node=check) == \
        "node 'up'.segment.id: segment 4 is not of database 7"
    scenarios.validate(graph({**up, "segment": {"id": 5, "action": "remove"}}), check_node=check)
    scenarios.validate(graph(entry={"type": "segment", "segment_id": 3}), check_node=check)
