"""A scenario step as the panel's step form and back: `to_form(node)` gives the form's
fields (text, as a browser sends them), `from_form(form)` the node the API stores.

This module only translates; every rule of a node (required fields, ranges, that a
template or a segment exists) stays in the domain (scenarios.validate, node_checker,
Platform.check_scenario_refs), which the editor runs on the whole draft after each change.
A value the form cannot even read (a number that is not one) is refused here with the same
shape as the domain's refusals ("node 'x'.field: reason"), so the page places both alike.

The form's fields (all prefixed `s_`, so they never meet the page's other forms):
  s_id, s_type, s_next (every single exit), s_timeout_next, s_yes, s_no,
  entry:    s_trigger (api|event|segment|date), s_event_name, s_segment_id, s_field, s_offset_days
  send:     s_template_id, s_sender ("s:<id>" or "v:<id>")
  wait:     s_wait (seconds|time|field), s_amount + s_unit, s_time, s_zone, s_zone_field,
            s_field, s_offset_amount + s_offset_unit
  wait_for: s_event (opened|clicked|name), s_event_send, s_event_name, s_amount + s_unit
  branch:   s_cond (opened|clicked|rule|json), s_cond_send, s_rule_field, s_rule_op,
            s_rule_value, s_cond_json
  split:    s_percent_<i>, s_next_<i> (i < MAX_BRANCHES)
  update:   s_set_field_<i>, s_set_value_<i> (i < SET_ROWS), s_sub_resource, s_sub_status,
            s_sub_channel, s_seg_id, s_seg_action
  webhook:  s_endpoint_id, s_hook_event
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from altcraft.domain.errors import Invalid
from altcraft.domain.scenarios import MAX_BRANCHES

# a duration is entered as an amount of a unit: the largest unit it is a whole number of
UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
_UNIT = dict(UNITS)
# the one-rule form of a branch's profile condition takes one scalar value; any other
# condition (and/or, lists, activity) is kept and edited as JSON
RULE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "within_days", "older_than_days")
SET_ROWS = 3
# field types whose values are JSON scalars (numbers, true/false), not text
_TYPED = ("int", "integer", "float", "number", "bool", "boolean")
# what a send node gets when stored, kept as it is across edits (its opens are counted by it)
KEPT = ("campaign_id",)


def duration(seconds: Any) -> tuple[str, str]:
    if type(seconds) is not int or seconds == 0:
        return (str(seconds) if seconds is not None else "", "hours")
    for unit, size in UNITS:
        if seconds % size == 0:
            return str(seconds // size), unit
    return str(seconds), "seconds"


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def to_form(node: dict[str, Any]) -> dict[str, str]:
    """The step form's fields for a node (a graph saved through the API opens here)."""
    kind = node["type"]
    out = {"s_id": node["id"], "s_type": kind}
    for name in ("next", "timeout_next", "yes", "no"):
        if isinstance(node.get(name), str):
            out[f"s_{name}"] = node[name]
    if kind == "entry":
        trigger = node.get("trigger") or {}
        out["s_trigger"] = trigger.get("type", "api")
        out["s_event_name"] = trigger.get("name", "")
        out["s_segment_id"] = str(trigger.get("segment_id", ""))
        out["s_field"] = trigger.get("field", "")
        out["s_offset_days"] = str(trigger.get("offset_days", 0))
    elif kind == "send":
        out["s_template_id"] = str(node.get("template_id", ""))
        out["s_sender"] = f"v:{node['vsender_id']}" if node.get("vsender_id") is not None \
            else f"s:{node.get('sender_id', '')}"
    elif kind == "wait":
        until = node.get("until") or {}
        out["s_wait"] = "seconds" if "seconds" in node else ("time" if "time" in until else "field")
        out["s_amount"], out["s_unit"] = duration(node.get("seconds"))
        out["s_time"], out["s_zone"] = until.get("time", ""), until.get("zone", "UTC")
        out["s_zone_field"] = until.get("zone_field", "")
        out["s_field"] = until.get("field", "")
        out["s_offset_amount"], out["s_offset_unit"] = duration(until.get("offset_seconds", 0))
        if out["s_offset_amount"] == "0":
            out["s_offset_unit"] = "days"
    elif kind == "wait_for":
        event = node.get("event") or {}
        out["s_event"] = next(iter(event), "opened")
        out["s_event_send" if out["s_event"] != "name" else "s_event_name"] = str(next(iter(event.values()), ""))
        out["s_amount"], out["s_unit"] = duration(node.get("timeout"))
    elif kind == "branch":
        condition = node.get("condition") or {}
        key = next(iter(condition), "opened")
        if key in ("opened", "clicked"):
            out["s_cond"], out["s_cond_send"] = key, str(condition[key])
        else:
            rule = condition.get("profile")
            if isinstance(rule, dict) and set(rule) == {"field", "op", "value"} and rule["op"] in RULE_OPS \
                    and not isinstance(rule["value"], (list, dict)):
                out.update(s_cond="rule", s_rule_field=str(rule["field"]), s_rule_op=rule["op"],
                           s_rule_value=_value_text(rule["value"]))
            else:
                out.update(s_cond="json", s_cond_json=json.dumps(rule, ensure_ascii=False))
    elif kind == "split":
        for i, branch in enumerate(node.get("branches") or []):
            out[f"s_percent_{i}"] = str(branch.get("percent", ""))
            out[f"s_next_{i}"] = str(branch.get("next") or "")
    elif kind == "update":
        for i, (name, value) in enumerate((node.get("set") or {}).items()):
            out[f"s_set_field_{i}"], out[f"s_set_value_{i}"] = name, _value_text(value)
        sub = node.get("subscription") or {}
        out["s_sub_resource"] = str(sub.get("resource_id", ""))
        out["s_sub_status"] = sub.get("status", "")
        out["s_sub_channel"] = sub.get("channel", "email")
        seg = node.get("segment") or {}
        out["s_seg_id"], out["s_seg_action"] = str(seg.get("id", "")), seg.get("action", "add")
    elif kind == "webhook":
        out["s_endpoint_id"] = str(node.get("endpoint_id", ""))
        out["s_hook_event"] = node.get("event", "workflow.step")
    for name in KEPT:
        if name in node:
            out[f"s_{name}"] = str(node[name])
    return out


class _Reader:
    """Reads one step form; a value it cannot read is refused naming the node's field."""

    def __init__(self, form: Mapping[str, str], node_id: str):
        self.form, self.where = form, f"node {node_id!r}"

    def text(self, name: str) -> str:
        return (self.form.get(name) or "").strip()

    def edge(self, name: str) -> str | None:
        return self.text(name) or None  # unset: the domain says "missing"

    def number(self, name: str, field: str, blank: Any = None) -> Any:
        return self.parse(self.text(name), field, blank)

    def parse(self, raw: str, field: str, blank: Any = None) -> Any:
        if not raw:
            return blank
        try:
            return int(raw)
        except ValueError:
            raise Invalid(f"{self.where}.{field}", f"a whole number, not {raw!r}") from None

    def seconds(self, amount: str, unit: str, field: str, blank: Any = None) -> Any:
        value = self.number(amount, field, blank)
        return value * _UNIT.get(self.text(unit), 1) if type(value) is int else value

    def value(self, raw: str, field_type: str | None, field: str) -> Any:
        """A value for a profile field: text stays text; a number or true/false field's is JSON."""
        if field_type not in _TYPED:
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            raise Invalid(f"{self.where}.{field}", f"a {field_type} value, not {raw!r}") from None


def from_form(form: Mapping[str, str], field_types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The node a step form describes (`field_types`: the database's field name -> type)."""
    types = field_types or {}
    node_id = (form.get("s_id") or "").strip()
    kind = (form.get("s_type") or "").strip()
    r = _Reader(form, node_id)
    node: dict[str, Any] = {"id": node_id, "type": kind}
    if kind == "entry":
        trigger: dict[str, Any] = {"type": r.text("s_trigger") or "api"}
        if trigger["type"] == "event":
            trigger["name"] = r.text("s_event_name")
        elif trigger["type"] == "segment":
            trigger["segment_id"] = r.number("s_segment_id", "trigger.segment_id")
        elif trigger["type"] == "date":
            trigger["field"] = r.text("s_field")
            trigger["offset_days"] = r.number("s_offset_days", "trigger.offset_days", 0)
        node.update(trigger=trigger, next=r.edge("s_next"))
    elif kind == "send":
        node["template_id"] = r.number("s_template_id", "template_id")
        sender = r.text("s_sender")
        key = "vsender_id" if sender.startswith("v:") else "sender_id"
        node[key] = r.parse(sender.split(":", 1)[-1], key)
        node["next"] = r.edge("s_next")
    elif kind == "wait":
        how = r.text("s_wait") or "seconds"
        if how == "seconds":
            node["seconds"] = r.seconds("s_amount", "s_unit", "seconds")
        elif how == "time":
            node["until"] = {"time": r.text("s_time"), "zone": r.text("s_zone") or "UTC"}
            if r.text("s_zone_field"):
                node["until"]["zone_field"] = r.text("s_zone_field")
        else:
            node["until"] = {"field": r.text("s_field"),
                             "offset_seconds": r.seconds("s_offset_amount", "s_offset_unit", "until.offset_seconds", 0)}
        node["next"] = r.edge("s_next")
    elif kind == "wait_for":
        event = r.text("s_event") or "opened"
        node["event"] = {"name": r.text("s_event_name")} if event == "name" else {event: r.text("s_event_send")}
        node.update(timeout=r.seconds("s_amount", "s_unit", "timeout"), next=r.edge("s_next"),
                    timeout_next=r.edge("s_timeout_next"))
    elif kind == "branch":
        how = r.text("s_cond") or "opened"
        if how in ("opened", "clicked"):
            node["condition"] = {how: r.text("s_cond_send")}
        elif how == "rule":
            name = r.text("s_rule_field")
            node["condition"] = {"profile": {"field": name, "op": r.text("s_rule_op") or "eq",
                                             "value": r.value(form.get("s_rule_value") or "", types.get(name),
                                                              "condition.profile.value")}}
        else:
            try:
                node["condition"] = {"profile": json.loads(form.get("s_cond_json") or "")}
            except ValueError as exc:
                raise Invalid(f"{r.where}.condition.profile", f"not JSON: {exc}") from None
        node.update(yes=r.edge("s_yes"), no=r.edge("s_no"))
    elif kind == "split":
        branches = []
        for i in range(MAX_BRANCHES):
            if r.text(f"s_percent_{i}") or r.text(f"s_next_{i}"):
                branches.append({"percent": r.number(f"s_percent_{i}", f"branches[{len(branches)}].percent"),
                                 "next": r.edge(f"s_next_{i}")})
        node["branches"] = branches
    elif kind == "update":
        values = {}
        for i in range(MAX_BRANCHES):  # rows beyond SET_ROWS come from a graph saved through the API
            name = r.text(f"s_set_field_{i}")
            if name:
                values[name] = r.value(form.get(f"s_set_value_{i}") or "", types.get(name), f"set.{name}")
        if values:
            node["set"] = values
        if r.text("s_sub_resource") or r.text("s_sub_status"):
            node["subscription"] = {"resource_id": r.number("s_sub_resource", "subscription.resource_id"),
                                    "channel": r.text("s_sub_channel") or "email",
                                    "status": r.text("s_sub_status")}
        if r.text("s_seg_id"):
            node["segment"] = {"id": r.number("s_seg_id", "segment.id"), "action": r.text("s_seg_action") or "add"}
        node["next"] = r.edge("s_next")
    elif kind == "webhook":
        node.update(endpoint_id=r.number("s_endpoint_id", "endpoint_id"),
                    event=r.text("s_hook_event") or "workflow.step", next=r.edge("s_next"))
    elif kind != "exit":
        raise Invalid(f"{r.where}.type", f"unknown step type {kind!r}")
    for name in KEPT:
        if r.text(f"s_{name}"):
            node[name] = r.number(f"s_{name}", name)
    return {k: v for k, v in node.items() if v is not None or k in ("next", "timeout_next", "yes", "no")}
