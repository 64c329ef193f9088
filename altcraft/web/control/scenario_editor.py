"""webcontrol's step-by-step scenario editor: the draft graph travels with the page (a
hidden field), each action (add a step of a type, edit, apply, delete) is a POST that
computes the next draft and stores nothing, and the draft is checked after each change by
the same code that checks a save (`check_draft`: Platform.check_scenario_refs and
scenarios.validate with the account's condition and node checkers, which Scenarios.add and
update run too). A refusal is placed under its step and field (`place`). Saving posts the
draft to the scenario's page, which saves a new version as the JSON editor does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from altcraft.domain import scenarios as domain
from altcraft.domain.errors import DomainError, Invalid
from altcraft.web.control.scenario_form import KEPT, from_form, to_form

STEP_TYPES = tuple(domain.NODE_TYPES)
_AT_NODE = re.compile(r"^node '(?P<id>[^']*)'(?:\.(?P<field>[^:]+))?: (?P<reason>.*)$", re.S)
_AT_INDEX = re.compile(r"^nodes\[(?P<index>\d+)\](?:\.(?P<field>[^:]+))?: (?P<reason>.*)$", re.S)
# which input of the step form a refused node field is shown under (the rest: under the step)
_INPUT = {"template_id": "s_template_id", "sender_id": "s_sender", "vsender_id": "s_sender",
          "trigger.type": "s_trigger", "trigger.name": "s_event_name", "trigger.segment_id": "s_segment_id",
          "trigger.field": "s_field", "trigger.offset_days": "s_offset_days", "next": "s_next",
          "timeout_next": "s_timeout_next", "yes": "s_yes", "no": "s_no", "seconds": "s_amount",
          "timeout": "s_amount", "until": "s_wait", "until.time": "s_time", "until.zone": "s_zone",
          "until.zone_field": "s_zone_field", "until.field": "s_field", "until.offset_seconds": "s_offset_amount",
          "event.name": "s_event_name", "condition": "s_cond", "condition.profile": "s_cond",
          "condition.profile.value": "s_cond", "branches": "s_percent_0", "set": "s_set",
          "subscription": "s_sub_resource", "subscription.resource_id": "s_sub_resource",
          "subscription.status": "s_sub_status", "segment": "s_seg_id", "segment.id": "s_seg_id",
          "segment.action": "s_seg_action", "endpoint_id": "s_endpoint_id", "id": "s_id", "type": "s_type"}

_REFS = (("template ", "template_id"), ("sender ", "sender_id"), ("virtual sender ", "vsender_id"))


@dataclass
class Problem:
    """One refusal: the step it concerns (None: the graph as a whole), the form input, the words."""
    node_id: str | None
    input: str | None
    text: str


def input_of(kind: str, path: str | None) -> str | None:
    if not path:
        return None
    if path == "event":
        return "s_hook_event" if kind == "webhook" else "s_event"
    if path.startswith("set."):
        return "s_set"
    if path.startswith("condition.profile"):
        return "s_cond"
    found = re.match(r"^branches\[(\d+)\]\.(percent|next)$", path)
    if found:
        return f"s_{found[2]}_{found[1]}"
    return _INPUT.get(path)


def place(exc: DomainError, nodes: list[dict[str, Any]]) -> Problem:
    """Where a refusal (the domain's message) belongs in the editor."""
    message = exc.message
    by_id = {n.get("id"): n for n in nodes if isinstance(n, dict)}
    found = _AT_NODE.match(message)
    if found and found["id"] in by_id:
        # check_scenario_refs names the node only: what it did not find says which field
        named = found["field"] or next((f for word, f in _REFS if found["reason"].startswith(word)), None)
        return Problem(found["id"], input_of(by_id[found["id"]]["type"], named), message)
    found = _AT_INDEX.match(message)
    if found and int(found["index"]) < len(nodes):
        node = nodes[int(found["index"])]
        return Problem(node.get("id"), input_of(node.get("type", ""), found["field"]), message)
    return Problem(None, None, message)


def checkers(platform, account_id: int, db_id: int, nodes: Any) -> tuple[Any, Any]:
    """The account's checks of a graph, as workflows/add|update run them: the templates and
    senders it names (raised here), then validate's condition and node checkers (returned,
    for Scenarios.add/update or check_draft to run)."""
    platform.check_scenario_refs(account_id, db_id, nodes)
    return platform.condition_checker(account_id, db_id), platform.scenario_node_checker(account_id, db_id)


def check_draft(platform, account_id: int, db_id: int, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What saving would check, without saving: the graph as it would be stored, or a DomainError."""
    return domain.validate(nodes, *checkers(platform, account_id, db_id, nodes))


def draft_of(text: str) -> list[dict[str, Any]]:
    """The page's draft: a list of steps each with an id and a known type (what the editor
    can show); anything else is Invalid (the page then starts again from the stored graph)."""
    try:
        nodes = json.loads(text)
    except ValueError:
        raise Invalid("nodes", "the draft is not JSON") from None
    if not isinstance(nodes, list) or not all(
            isinstance(n, dict) and isinstance(n.get("id"), str) and n.get("type") in domain.NODE_TYPES
            and (n["type"] != "split" or isinstance(n.get("branches"), list)
                 and all(isinstance(b, dict) for b in n["branches"]))
            for n in nodes):
        raise Invalid("nodes", "the draft is not a list of steps")
    return nodes


def fresh_id(nodes: list[dict[str, Any]], kind: str) -> str:
    taken = {n["id"] for n in nodes}
    return next(f"{kind}_{i}" for i in range(1, len(nodes) + 2) if f"{kind}_{i}" not in taken)


def _rename(nodes: list[dict[str, Any]], old: str, new: str) -> None:
    """A step renamed: every edge and every reference to a send step follows it."""
    for node in nodes:
        for name in ("next", "timeout_next", "yes", "no"):
            if node.get(name) == old:
                node[name] = new
        for branch in node.get("branches") or [] if node["type"] == "split" else []:
            if branch.get("next") == old:
                branch["next"] = new
        for key in ("event", "condition"):
            ref = node.get(key)
            if isinstance(ref, dict) and any(k in ref for k in ("opened", "clicked")):
                node[key] = {k: new if v == old else v for k, v in ref.items()}


@dataclass
class Edit:
    """The editor after one action: the draft, the step form open (its fields) and where a
    value the form could not read was refused."""
    nodes: list[dict[str, Any]]
    form: dict[str, str] | None = None
    form_problem: Problem | None = None
    changed: bool = False
    applied: str | None = None  # the step a form was applied to

    def reopen(self, problem: Problem | None) -> None:
        """A refusal about the step just applied: its form opens again, the refusal under its field."""
        if problem is not None and problem.node_id is not None and problem.node_id == self.applied:
            node = next(n for n in self.nodes if n["id"] == self.applied)
            self.form = {**to_form(node), "s_was": node["id"]}


def _step_fields(form) -> dict[str, str]:
    return {k: v for k, v in form.items() if k.startswith("s_")}


def act(nodes: list[dict[str, Any]], form, field_types: dict[str, str]) -> Edit:
    """One editor action (`op` in the form) on the draft."""
    op = form.get("op", "")
    verb, _, target = op.partition(":")
    by_id = {n["id"]: n for n in nodes}
    if verb == "add":
        kind = form.get("new_type", "")
        if kind not in domain.NODE_TYPES:
            return Edit(nodes)
        return Edit(nodes, {"s_id": fresh_id(nodes, kind), "s_type": kind, "s_was": "",
                            **({"s_trigger": "api"} if kind == "entry" else {})})
    if verb == "edit" and target in by_id:
        return Edit(nodes, {**to_form(by_id[target]), "s_was": target})
    if verb == "delete" and target in by_id:
        return Edit([n for n in nodes if n["id"] != target], changed=True)
    if verb == "refresh":  # a choice inside the step form changed which fields it has
        return Edit(nodes, _step_fields(form))
    if verb != "apply":
        return Edit(nodes)
    fields = _step_fields(form)
    try:
        node = from_form(fields, field_types)
    except Invalid as exc:
        return Edit(nodes, fields, place(exc, [{"id": fields.get("s_id", ""), "type": fields.get("s_type", "")}]))
    was = fields.get("s_was") or ""
    out = [dict(n) for n in nodes]
    if was in by_id:
        old = by_id[was]
        for name in KEPT:  # a stored step's own values the form does not show
            if name in old and name not in node:
                node[name] = old[name]
        out = [node if n["id"] == was else n for n in out]
        if node["id"] != was:
            _rename(out, was, node["id"])
    else:
        after = by_id.get(form.get("s_after") or "")
        if after is not None and "next" in domain.NODE_TYPES[after["type"]].edges:
            if "next" in node and node["next"] is None and after.get("next") != node["id"]:
                node["next"] = after.get("next")
            out = [dict(n, next=node["id"]) if n["id"] == after["id"] else n for n in out]
        out.append(node)
    return Edit(out, changed=True, applied=node["id"])
