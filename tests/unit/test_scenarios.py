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
    nodes[3]["type"] = "split"
    assert error(nodes).startswith("node 'opened?'.type: one of: entry, send, wait, branch, exit")
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
