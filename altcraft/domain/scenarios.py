"""Scenarios (workflows): a graph of steps each profile walks through, one run per entry.

A scenario belongs to an account and names a profile database and a resource. Its graph is
a list of nodes; edges are the node fields that name another node (`next`, or a branch's
`yes`/`no`). Each save stores a new version in `workflow_versions`; a run keeps the version
it started on. A graph is validated when saved (`validate`): one entry, every node reachable
from it, no edge to a missing node, each node's own fields, and `max_visits` (how often one
run may pass one node, so a cycle ends).

Node types (NODE_TYPES, checked by `_CHECKS`; a later type adds an entry in both and a
step `Machine._<type>`); docs/api.md has the full schema:
  {"id", "type": "entry", "trigger": {"type": "api"} | {"type": "event", "name"}
                                     | {"type": "segment", "segment_id"}
                                     | {"type": "date", "field", "offset_days"}, "next"}
  {"id", "type": "send", "template_id", "sender_id" | "vsender_id", "next"}
  {"id", "type": "wait", "seconds" | "until": {"time": "HH:MM", "zone", "zone_field"}
                                              | {"field", "offset_seconds"}, "next"}
  {"id", "type": "wait_for", "event": {"opened" | "clicked": <send node>} | {"name": <custom>},
   "timeout", "next", "timeout_next"}
  {"id", "type": "branch", "condition": {"profile": <segment condition>}
                                        | {"opened": <send node>} | {"clicked": <send node>},
   "yes", "no"}
  {"id", "type": "split", "branches": [{"percent", "next"}, ...]}   (percentages sum to 100)
  {"id", "type": "update", "set": {field: value}, "subscription": {"resource_id", "channel",
   "status"}, "segment": {"id", "action": "add" | "remove"}, "next"}   (at least one of three)
  {"id", "type": "webhook", "endpoint_id", "event", "next"}
  {"id", "type": "exit"}
Each send node gets its own campaign id (from the campaigns' counter, kept across versions
by node id), so tracking and reports attribute its opens and clicks to it.

Entries: the API (workflows/start), procevent (a custom event), proctask (members of a
segment, profiles whose date field is due: `scheduled`, `enter_each`). A run waiting for a
custom event is marked by procevent (`deliver`); a wait for an open or a click looks again
every `poll_seconds`. A random split's branch derives from (run, node, visit), so a step
done again takes the same branch.

Runs (`workflow_runs`), one per entry of a profile. The re-entry policy is kept by a unique
index on `entry_key`: `once` -> scenario:profile for good; `after_exit` -> the same key,
released (renamed) by the single update that ends the run; `always` -> the entry's own id.
A run's _id derives from (scenario, profile, entry source), so a repeated event or API call
finds the run already there.

A run is its own timer: `due_at` says when its next step is due. procworkflow claims due
runs in batches with unique inserts (`claim_batch`, domain/scenario_claims.py), steps each as
far as it goes and stores each with one update by _id while its claim lasts (`Batch`); the
single-run form (`claim`, a conditional findAndModify lease, then `Machine.step`) is kept
for tests and tools. The stand-in document store does not make a conditional update atomic
across concurrent writers, so a double claim is made harmless rather than impossible: a step
is computed from the run's stored state only, so two workers doing it store the same
outcome; a send's message id derives from (run, node, visit), so akmtad's de-duplication
drops a repeat; and the step log (`workflow_steps`, _id run:step, a unique insert) is what
the per-node counts are counted from, so a step done twice counts once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain import events
from altcraft.domain import scenario_timing as timing
from altcraft.domain.automation_stamp import AutomationStamps
from altcraft.domain.clock import now as clock_now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id
from altcraft.domain.scenario_claims import Leases
from altcraft.stores.documents import insert_new

REENTRY = ("once", "after_exit", "always")
MAX_NODES = 200
MAX_WAIT = 365 * 86400
DEFAULT_MAX_VISITS = 5
MAX_VISITS = 100
MOST_STEPS = 50  # steps of one run in one claim (a cycle of zero-length waits ends here)
CANDIDATES = 3  # a batch claim looks at this many due runs a run it wants (some are another's)
MAX_BRANCHES = 10
MAX_SET_FIELDS = 20
ACTIVITY = {"opened": ("open",), "clicked": ("click",)}
TRIGGERS = ("api", "event", "segment", "date")
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = uuid.UUID("8d0f3b8e-2c61-4f6e-9a57-51e7f1c3a9b4")
PUBLIC = ("id", "account_id", "name", "db_id", "resource_id", "reentry", "max_visits", "version",
          "active", "nodes", "created_at", "updated_at")
# what a run's wait-for fields are reset to when it leaves any node
_NOT_WAITING = {"waiting": None, "awaiting": None, "got": None, "deadline": None}


@dataclass(frozen=True)
class NodeType:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    edges: tuple[str, ...]  # fields naming the next node (a split's are in its branches)


NODE_TYPES: dict[str, NodeType] = {
    "entry": NodeType(("trigger", "next"), (), ("next",)),
    "send": NodeType(("template_id", "next"), ("sender_id", "vsender_id", "campaign_id"), ("next",)),
    "wait": NodeType(("next",), ("seconds", "until"), ("next",)),
    "wait_for": NodeType(("event", "timeout", "next", "timeout_next"), (), ("next", "timeout_next")),
    "branch": NodeType(("condition", "yes", "no"), (), ("yes", "no")),
    "split": NodeType(("branches",), (), ()),
    "update": NodeType(("next",), ("set", "subscription", "segment"), ("next",)),
    "webhook": NodeType(("endpoint_id", "next"), ("event",), ("next",)),
    "exit": NodeType((), (), ()),
}


def edges(node: dict[str, Any]) -> list[tuple[str, Any]]:
    """A node's outgoing edges: (the field that names the target, the target)."""
    out = [(name, node.get(name)) for name in NODE_TYPES[node["type"]].edges]
    if node["type"] == "split":
        out += [(f"branches[{i}].next", b.get("next")) for i, b in enumerate(node["branches"])]
    return out


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def _positive(value: Any) -> bool:
    return type(value) is int and value > 0


def _seconds(value: Any, where: str, low: int = 1) -> int:
    if type(value) is not int or not low <= value <= MAX_WAIT:
        raise Invalid(where, f"whole seconds, {low}..{MAX_WAIT} (a year)")
    return value


def _event_name(raw: Any, where: str) -> str:
    try:
        return events.check_name(raw)
    except events.BadEvent as exc:
        raise Invalid(where, str(exc).split(": ", 1)[-1]) from None


def _only(raw: Any, where: str, allowed: set[str], shape: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid(where, shape)
    unknown = set(raw) - allowed
    if unknown:
        raise Invalid(f"{where}.{sorted(unknown)[0]}", f"not a field here ({shape})")
    return raw


def _trigger(raw: Any, where: str) -> dict[str, Any]:
    shape = ('{"type": "api"}, {"type": "event", "name"}, {"type": "segment", "segment_id"} '
             'or {"type": "date", "field", "offset_days"}')
    raw = _only(raw, where, {"type", "name", "segment_id", "field", "offset_days"}, shape)
    kind = raw.get("type")
    if kind not in TRIGGERS:
        raise Invalid(f"{where}.type", f"one of: {', '.join(TRIGGERS)}")
    allowed = {"api": set(), "event": {"name"}, "segment": {"segment_id"}, "date": {"field", "offset_days"}}[kind]
    extra = set(raw) - {"type"} - allowed
    if extra:
        raise Invalid(f"{where}.{sorted(extra)[0]}", f"not a field of a {kind} trigger")
    if kind == "api":
        return {"type": "api"}
    if kind == "event":
        return {"type": "event", "name": _event_name(raw.get("name"), f"{where}.name")}
    if kind == "segment":
        if not _positive(raw.get("segment_id")):
            raise Invalid(f"{where}.segment_id", "a segment id (a positive integer)")
        return {"type": "segment", "segment_id": raw["segment_id"]}
    if not isinstance(raw.get("field"), str) or not raw["field"]:
        raise Invalid(f"{where}.field", "the name of a date field (e.g. birthday)")
    offset = raw.get("offset_days", 0)
    if type(offset) is not int or not -365 <= offset <= 365:
        raise Invalid(f"{where}.offset_days", "whole days, -365..365 (-3: three days before the date)")
    return {"type": "date", "field": raw["field"], "offset_days": offset}


def validate(nodes: Any, check_condition: Callable[[Any, str], None] | None = None,
             check_node: Callable[[dict[str, Any], str], None] | None = None) -> list[dict[str, Any]]:
    """The graph as stored, or Invalid naming the node or edge at fault. `check_condition`
    checks a branch's profile condition (the segment compiler, against the database);
    `check_node` what a node names in the account (fields, segments, webhook endpoints)."""
    if not isinstance(nodes, list) or not nodes:
        raise Invalid("nodes", "a non-empty list of nodes")
    if len(nodes) > MAX_NODES:
        raise Invalid("nodes", f"at most {MAX_NODES} nodes")
    graph: dict[str, dict[str, Any]] = {}
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise Invalid(where, "an object")
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id or len(node_id) > 64:
            raise Invalid(f"{where}.id", "a node id (text, 1-64 characters)")
        where = f"node {node_id!r}"
        if node_id in graph:
            raise Invalid(where, "a second node with this id")
        kind = NODE_TYPES.get(node.get("type"))
        if kind is None:
            raise Invalid(f"{where}.type", f"one of: {', '.join(NODE_TYPES)}")
        unknown = set(node) - {"id", "type", *kind.required, *kind.optional}
        if unknown:
            raise Invalid(f"{where}.{sorted(unknown)[0]}", f"not a field of a {node['type']} node")
        for name in kind.required:
            if node.get(name) is None:
                raise Invalid(f"{where}.{name}", "missing")
        graph[node_id] = _check_node(dict(node), where, check_condition)
        if check_node is not None:
            check_node(graph[node_id], where)
    entries = [n for n in graph.values() if n["type"] == "entry"]
    if len(entries) != 1:
        raise Invalid("nodes", f"exactly one entry node (found {len(entries)})")
    for node in graph.values():
        for edge, target in edges(node):
            if not isinstance(target, str) or target not in graph:
                raise Invalid(f"node {node['id']!r}.{edge}", f"no node {target!r} (dangling edge)")
            if graph[target]["type"] == "entry":
                raise Invalid(f"node {node['id']!r}.{edge}", "an edge may not lead back to the entry")
        activity = node.get("condition") if node["type"] == "branch" else node.get("event")
        if node["type"] in ("branch", "wait_for") and next(iter(activity)) in ACTIVITY:
            target = next(iter(activity.values()))
            if target not in graph or graph[target]["type"] != "send":
                field = "condition" if node["type"] == "branch" else "event"
                raise Invalid(f"node {node['id']!r}.{field}", f"{target!r} is not a send node")
    seen, todo = set(), [entries[0]["id"]]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(target for _, target in edges(graph[current]))
    unreachable = [n for n in graph if n not in seen]
    if unreachable:
        raise Invalid(f"node {unreachable[0]!r}", "not reachable from the entry")
    return list(graph.values())


def _check_node(node: dict[str, Any], where: str, check_condition) -> dict[str, Any]:
    check = _CHECKS.get(node["type"])
    if check is not None:
        check(node, where, check_condition)
    return node


def _check_entry(node, where, _):
    node["trigger"] = _trigger(node["trigger"], f"{where}.trigger")


def _check_send(node, where, _):
    if not _positive(node["template_id"]):
        raise Invalid(f"{where}.template_id", "a template id (a positive integer)")
    if (node.get("sender_id") is None) == (node.get("vsender_id") is None):
        raise Invalid(f"{where}.sender_id", "give exactly one of sender_id and vsender_id")
    sender = node.get("sender_id", node.get("vsender_id"))
    if not _positive(sender):
        raise Invalid(f"{where}.{'sender_id' if 'sender_id' in node else 'vsender_id'}", "a positive integer")


def _check_wait(node, where, _):
    if ("seconds" in node) == ("until" in node):
        raise Invalid(f"{where}.seconds", "give exactly one of seconds and until")
    if "seconds" in node:
        _seconds(node["seconds"], f"{where}.seconds")
    else:
        node["until"] = timing.check_until(node["until"], f"{where}.until")


def _check_wait_for(node, where, _):
    shape = '{"opened": <send node>}, {"clicked": <send node>} or {"name": <custom event>}'
    event = node["event"]
    if not isinstance(event, dict) or len(event) != 1 or next(iter(event)) not in ("name", *ACTIVITY):
        raise Invalid(f"{where}.event", shape)
    if "name" in event:
        node["event"] = {"name": _event_name(event["name"], f"{where}.event.name")}
    elif not isinstance(next(iter(event.values())), str):
        raise Invalid(f"{where}.event", "the id of a send node")
    _seconds(node["timeout"], f"{where}.timeout")


def _check_branch(node, where, check_condition):
    condition = node["condition"]
    if not isinstance(condition, dict) or len(condition) != 1 or \
            next(iter(condition)) not in ("profile", *ACTIVITY):
        raise Invalid(f"{where}.condition", '{"profile": <condition>}, {"opened": <send node>} '
                                            'or {"clicked": <send node>}')
    if "profile" in condition:
        if check_condition is not None:
            check_condition(condition["profile"], f"{where}.condition.profile")
    elif not isinstance(next(iter(condition.values())), str):
        raise Invalid(f"{where}.condition", "the id of a send node")


def _check_split(node, where, _):
    branches = node["branches"]
    if not isinstance(branches, list) or not 2 <= len(branches) <= MAX_BRANCHES:
        raise Invalid(f"{where}.branches", f"a list of 2..{MAX_BRANCHES} branches "
                                           '[{"percent": 50, "next": <node>}, ...]')
    for i, branch in enumerate(branches):
        at = f"{where}.branches[{i}]"
        _only(branch, at, {"percent", "next"}, '{"percent": 1..99, "next": <node>}')
        if type(branch.get("percent")) is not int or not 1 <= branch["percent"] <= 99:
            raise Invalid(f"{at}.percent", "a whole percentage, 1..99")
    total = sum(b["percent"] for b in branches)
    if total != 100:
        raise Invalid(f"{where}.branches", f"the percentages must sum to 100 (they sum to {total})")


def _check_update(node, where, _):
    if not any(k in node for k in ("set", "subscription", "segment")):
        raise Invalid(f"{where}.set", "give at least one of set, subscription and segment")
    if "set" in node:
        values = node["set"]
        if not isinstance(values, dict) or not 1 <= len(values) <= MAX_SET_FIELDS or \
                not all(isinstance(k, str) and k for k in values):
            raise Invalid(f"{where}.set", f'{{"<field>": <value>, ...}}, 1..{MAX_SET_FIELDS} fields')
    if "subscription" in node:
        shape = '{"resource_id": <id>, "channel": "email", "status": "subscribed" | "unsubscribed"}'
        sub = _only(node["subscription"], f"{where}.subscription", {"resource_id", "channel", "status"}, shape)
        if not _positive(sub.get("resource_id")):
            raise Invalid(f"{where}.subscription.resource_id", "a resource id (a positive integer)")
        if sub.get("status") not in SUBSCRIPTION_STATUSES:
            raise Invalid(f"{where}.subscription.status", f"one of: {', '.join(SUBSCRIPTION_STATUSES)}")
        node["subscription"] = {"resource_id": sub["resource_id"], "channel": sub.get("channel", "email"),
                                "status": sub["status"]}
    if "segment" in node:
        seg = _only(node["segment"], f"{where}.segment", {"id", "action"},
                    '{"id": <static segment>, "action": "add" | "remove"}')
        if not _positive(seg.get("id")):
            raise Invalid(f"{where}.segment.id", "a static segment's id (a positive integer)")
        if seg.get("action") not in ("add", "remove"):
            raise Invalid(f"{where}.segment.action", "add or remove")


def _check_webhook(node, where, _):
    if not _positive(node["endpoint_id"]):
        raise Invalid(f"{where}.endpoint_id", "a webhook endpoint id (a positive integer)")
    node["event"] = _event_name(node.get("event", "workflow.step"), f"{where}.event")


def node_checker(database: Any, segment: Callable[[int], dict[str, Any]],
                 endpoint: Callable[[int], Any], region: str = "RU") -> Callable[[dict[str, Any], str], None]:
    """`validate`'s check_node for one profile database (domain/databases.ProfileDatabase):
    the fields a node names exist with a fitting type, an update's values fit their fields,
    a segment is the database's (and static where a profile is added or removed), a webhook
    endpoint is the account's. `segment` and `endpoint` raise NotFound."""
    from altcraft.domain.fields import coerce

    def field(name: str, where: str, types: tuple[str, ...] = ()) -> None:
        definition = database.fields.get(name)
        if definition is None:
            raise Invalid(where, f"{name!r} is not a field of database {database.id}")
        if types and definition.type not in types:
            raise Invalid(where, f"{name!r} is a {definition.type} field, not {' or '.join(types)}")

    def own_segment(segment_id: int, where: str, static: bool) -> None:
        try:
            found = segment(segment_id)
        except NotFound as exc:
            raise NotFound(f"{where}: {exc.message}") from None
        if found.get("db_id") != database.id:
            raise Invalid(where, f"segment {segment_id} is not of database {database.id}")
        if static and (found.get("kind") != "static" or not found.get("manual")):
            # the one rule of who may add members by hand: Segments.add_member (segstatic)
            raise Invalid(where, f"segment {segment_id} is not filled by hand: an update node adds profiles to a "
                                 "static segment made without a condition (Altcraft's is_static) only")

    def check(node: dict[str, Any], where: str) -> None:
        kind = node["type"]
        trigger = node.get("trigger") if kind == "entry" else {}
        if trigger.get("type") == "segment":
            own_segment(trigger["segment_id"], f"{where}.trigger.segment_id", static=False)
        if trigger.get("type") == "date":
            field(trigger["field"], f"{where}.trigger.field", ("date", "datetime"))
        until = node.get("until") if kind == "wait" else None
        if until and "field" in until:
            field(until["field"], f"{where}.until.field", ("date", "datetime"))
        if until and until.get("zone_field"):
            field(until["zone_field"], f"{where}.until.zone_field", ("string",))
        if kind == "update":
            for name, value in node.get("set", {}).items():
                field(name, f"{where}.set.{name}")
                if name == database.key:
                    raise Invalid(f"{where}.set.{name}", "the database's key is not changed by a scenario")
                try:
                    coerce(database.fields[name], value, region)
                except Invalid as exc:
                    raise Invalid(f"{where}.set.{name}", exc.reason) from None
            if "segment" in node:
                own_segment(node["segment"]["id"], f"{where}.segment.id", static=True)
        if kind == "webhook":
            try:
                endpoint(node["endpoint_id"])
            except NotFound as exc:
                raise NotFound(f"{where}.endpoint_id: {exc.message}") from None
    return check


_CHECKS = {"entry": _check_entry, "send": _check_send, "wait": _check_wait, "wait_for": _check_wait_for,
           "branch": _check_branch, "split": _check_split, "update": _check_update,
           "webhook": _check_webhook}


def run_id(scenario_id: int, profile_id: str, source: str) -> str:
    """A run's id: the same entry (event id, or an API call's key) gives the same run."""
    return f"wf{scenario_id}.{uuid.uuid5(_NS, f'{scenario_id}:{profile_id}:{source}').hex}"


def message_id(run: dict[str, Any], node_id: str, visit: int) -> str:
    """The message id of a send step; the same step done again gets the same id."""
    return f"{run['_id']}.{uuid.uuid5(_NS, f'{node_id}:{visit}').hex[:16]}"


def entry_key(policy: str, scenario_id: int, profile_id: str, rid: str) -> str:
    return rid if policy == "always" else f"{scenario_id}:{profile_id}"


def entered_by(scenario: dict[str, Any], event: events.AutomationEvent) -> bool:
    """Whether an event starts a run of an active scenario (API entries: never by events)."""
    if not scenario.get("active") or scenario["account_id"] != event.account_id or scenario["db_id"] != event.db_id:
        return False
    trigger = next(n for n in scenario["nodes"] if n["type"] == "entry")["trigger"]
    return trigger["type"] == "event" and event.kind == events.CUSTOM and event.name == trigger["name"]


class Scenarios:
    """Scenarios of all accounts (control DB), their versions, runs and step log."""

    def __init__(self, control: Database, clock: Callable[[], datetime] = clock_now):
        self.control = control
        self.collection = control.workflows
        self.versions = control.workflow_versions
        self.runs = control.workflow_runs
        self.steps = control.workflow_steps
        self.stamps = AutomationStamps(control)
        self.clock = clock
        self.leases = Leases(control)

    # -- scenarios -----------------------------------------------------------------------
    def _campaign_ids(self, nodes: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
        kept = {n["id"]: n.get("campaign_id") for n in before if n["type"] == "send"}
        for node in nodes:
            if node["type"] == "send":
                node["campaign_id"] = kept.get(node["id"]) or next_id(self.control, "campaigns")

    def add(self, account_id: int, name: Any, db_id: int, nodes: Any, resource_id: int = 1,
            reentry: str = "once", max_visits: int = DEFAULT_MAX_VISITS,
            check_condition: Callable[[Any, str], None] | None = None,
            check_node: Callable[[dict[str, Any], str], None] | None = None) -> dict[str, Any]:
        if name is None:
            raise Invalid("name", "a non-empty name")
        fields = self._settings(name=name, reentry=reentry, max_visits=max_visits)
        graph = validate(nodes, check_condition, check_node)
        self._campaign_ids(graph, [])
        stamp = self.clock()
        doc = {"id": next_id(self.control, "workflows"), "account_id": account_id, "db_id": db_id,
               "resource_id": resource_id, **fields, "version": 1, "nodes": graph, "active": False,
               "created_at": stamp, "updated_at": stamp}
        self.versions.insert_one({"scenario_id": doc["id"], "version": 1, "nodes": graph, "saved_at": stamp})
        self.collection.insert_one(doc)
        self.stamps.bump(account_id)
        return public(doc)

    @staticmethod
    def _settings(**raw: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if raw.get("name") is not None:
            if not isinstance(raw["name"], str) or not raw["name"].strip():
                raise Invalid("name", "a non-empty name")
            out["name"] = raw["name"].strip()
        if raw.get("reentry") is not None:
            if raw["reentry"] not in REENTRY:
                raise Invalid("reentry", f"one of: {', '.join(REENTRY)}")
            out["reentry"] = raw["reentry"]
        if raw.get("max_visits") is not None:
            if type(raw["max_visits"]) is not int or not 1 <= raw["max_visits"] <= MAX_VISITS:
                raise Invalid("max_visits", f"how often a run may pass one node, 1..{MAX_VISITS}")
            out["max_visits"] = raw["max_visits"]
        return out

    def get(self, account_id: int, scenario_id: Any) -> dict[str, Any]:
        doc = self.collection.find_one({"id": scenario_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"scenario {scenario_id} not found")
        return doc

    def list(self, account_id: int) -> list[dict[str, Any]]:
        return [public(d) for d in self.collection.find({"account_id": account_id}).sort("id", 1)]

    def listening(self, account_id: int) -> list[dict[str, Any]]:
        return list(self.collection.find({"account_id": account_id, "active": True}))

    def update(self, account_id: int, scenario_id: int, nodes: Any = None,
               check_condition: Callable[[Any, str], None] | None = None,
               check_node: Callable[[dict[str, Any], str], None] | None = None, **settings: Any) -> dict[str, Any]:
        """A new version when `nodes` is given; running runs keep theirs."""
        current = self.get(account_id, scenario_id)
        fields = self._settings(**settings)
        if nodes is not None:
            graph = validate(nodes, check_condition, check_node)
            self._campaign_ids(graph, current["nodes"])
            version = current["version"] + 1
            # the version is stored first: a scenario never names a version that is missing
            try:
                self.versions.insert_one({"scenario_id": scenario_id, "version": version, "nodes": graph,
                                          "saved_at": self.clock()})
            except DuplicateKeyError:
                raise Conflict(f"scenario {scenario_id} was changed at the same time; try again") from None
            fields.update(nodes=graph, version=version)
        fields["updated_at"] = self.clock()
        self.collection.update_one({"id": scenario_id, "account_id": account_id}, {"$set": fields})
        self.stamps.bump(account_id)
        return public(self.get(account_id, scenario_id))

    def set_active(self, account_id: int, scenario_id: int, active: bool) -> dict[str, Any]:
        self.get(account_id, scenario_id)
        self.collection.update_one({"id": scenario_id, "account_id": account_id},
                                   {"$set": {"active": active, "updated_at": self.clock()}})
        self.stamps.bump(account_id)
        return public(self.get(account_id, scenario_id))

    def clear(self, account_id: int, scenario_id: int) -> int:
        """Ends every run still in the scenario (state `cleared`; Altcraft's `skip_profiles`):
        their next steps never happen (a cleared run is never claimed again). A batch that
        claimed a run before it was cleared still stores what it stepped (its messages are
        published by then): the run's node and step move, and one that reached an exit is
        marked `exited` instead. Returns how many runs were ended."""
        self.get(account_id, scenario_id)
        scenario = self.collection.find_one({"id": scenario_id}, {"reentry": 1}) or {}
        cleared = 0
        for run in self.runs.find({"scenario_id": scenario_id, "account_id": account_id, "state": "active"},
                                  {"_id": 1, "entry_key": 1, "profile_id": 1}):
            changes: dict[str, Any] = {"state": "cleared", "ended_at": self.clock(), "owner": None,
                                       "lease_until": _EPOCH}
            if scenario.get("reentry") == "after_exit" and run["entry_key"] == f"{scenario_id}:{run['profile_id']}":
                changes["entry_key"] = f"{run['_id']}:ended"  # as an exit: the profile may enter again
            cleared += self.runs.update_one({"_id": run["_id"], "state": "active"}, {"$set": changes}).modified_count
        return cleared

    def graph(self, scenario_id: int, version: int) -> dict[str, dict[str, Any]]:
        doc = self.versions.find_one({"scenario_id": scenario_id, "version": version})
        if doc is None:
            raise NotFound(f"version {version} of scenario {scenario_id} not found")
        return {n["id"]: n for n in doc["nodes"]}

    def counts(self, scenario_id: int) -> dict[str, dict[str, int]]:
        """Per node: runs that entered it and runs that left it (from the step log)."""
        out: dict[str, dict[str, int]] = {}
        for row in self.steps.find({"scenario_id": scenario_id}, {"node": 1, "next": 1}):
            out.setdefault(row["node"], {"entered": 0, "left": 0})["left"] += 1
            if row.get("next"):
                out.setdefault(row["next"], {"entered": 0, "left": 0})["entered"] += 1
        for row in self.runs.find({"scenario_id": scenario_id}, {"entry": 1}):
            out.setdefault(row["entry"], {"entered": 0, "left": 0})["entered"] += 1
        return out

    # -- runs ----------------------------------------------------------------------------
    def enter(self, scenario: dict[str, Any], profile_id: str, source: str,
              data: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Starts a run of an active scenario (the run, whether new); Conflict when the
        re-entry policy refuses it. A repeated entry (same source) finds its run."""
        run, new = self.enter_many(scenario, [(profile_id, source, data)])[0]
        if run is None:
            raise Conflict(f"profile {profile_id} is already in scenario {scenario['id']} "
                           f"(re-entry: {scenario.get('reentry', 'once')})")
        return run, new

    def enter_many(self, scenario: dict[str, Any],
                   entries: list[tuple[str, str, dict[str, Any] | None]]) -> list[tuple[dict[str, Any] | None, bool]]:
        """`enter` for many (profile, source, data) with one unordered insert: per entry the
        run and whether it is new, or (None, False) when the re-entry policy refuses it.

        Inserted first, read only on a duplicate (one read for all of them): a read of a run
        that is not there is a scan of every run on the FerretDB stand-in (docs/benchmarks.md,
        "What grows with the runs"), so a read before each entry made entries slower as the
        runs grew, while a unique insert is an index probe."""
        if not scenario.get("active"):
            raise Conflict(f"scenario {scenario['id']} is not active")
        entry, stamp = _entry(scenario), self.clock()
        policy = scenario.get("reentry", "once")
        docs = []
        for profile_id, source, data in entries:
            rid = run_id(scenario["id"], profile_id, source)
            docs.append({"_id": rid, "account_id": scenario["account_id"], "scenario_id": scenario["id"],
                         "version": scenario["version"], "db_id": scenario["db_id"], "profile_id": profile_id,
                         "data": data or {}, "entry": entry["id"], "node": entry["id"], "step": 0, "visits": {},
                         "state": "active", "due_at": stamp, "lease_until": _EPOCH, "owner": None,
                         "entry_key": entry_key(policy, scenario["id"], profile_id, rid), "created_at": stamp})
        taken = insert_new(self.runs, docs)
        found = {d["_id"]: d for d in self.runs.find({"_id": {"$in": [docs[i]["_id"] for i in taken]}})} \
            if taken else {}
        return [(found.get(doc["_id"]), False) if i in taken else (doc, True) for i, doc in enumerate(docs)]

    def claim(self, owner: str, run_id_: str | None = None, lease_seconds: float = 30.0) -> dict[str, Any] | None:
        """An active run whose step is due and not leased (this one, or the earliest), leased."""
        stamp = self.clock()
        query: dict[str, Any] = {"state": "active", "due_at": {"$lte": stamp}, "lease_until": {"$lte": stamp}}
        if run_id_ is not None:
            query["_id"] = run_id_
        return self.runs.find_one_and_update(
            query, {"$set": {"owner": owner, "lease_until": stamp + timedelta(seconds=lease_seconds)}},
            sort=[("due_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    def claim_batch(self, owner: str, limit: int, lease_seconds: float = 30.0) -> list[dict[str, Any]]:
        """Up to `limit` due, unleased active runs (in the store's order), claimed with unique inserts
        (`Leases`): one query for the candidates and one insert_many a chunk, instead of one
        conditional findAndModify a run. On the FerretDB stand-in a filter other than {_id}
        alone is a scan of the whole collection, so a claim a run cost a scan a run; and the
        conditional update it replaces was not atomic there anyway (docs/benchmarks.md,
        "Automation"). Each run comes back with `claim` (in memory only: when the claim ends);
        `Batch.flush` stores a run whose claim has ended only if it is still at its step.
        Not sorted by due time: FerretDB sorts by reading and decoding every due run (16 s for
        10,000 on a loaded machine, against 0.9 s for the same query stopping at its limit); a
        due run is stepped by a later batch, and a step's lateness is logged (`due`, `at`)."""
        stamp = self.clock()
        query = {"state": "active", "due_at": {"$lte": stamp}, "lease_until": {"$lte": stamp}}
        candidates = list(self.runs.find(query).limit(limit * CANDIDATES))
        return self.leases.take(candidates, owner, limit, lease_seconds, stamp)

    def store(self, run: dict[str, Any], outcome: dict[str, Any], log: dict[str, Any] | None,
              guard: dict[str, Any] | None = None) -> bool:
        """Stores a step's outcome on the run (one update, only if the run is still at that
        step, and matches `guard`) after logging it (a unique insert: a step done twice is
        logged once)."""
        if log is not None:
            try:
                # `due`: when the step was due (a wait's timer), so a timer's lateness is at - due
                self.steps.insert_one({"_id": f"{run['_id']}:{run['step']}", "scenario_id": run["scenario_id"],
                                       "version": run["version"], **log, "due": run["due_at"], "at": self.clock()})
            except DuplicateKeyError:
                pass
        result = self.runs.update_one({"_id": run["_id"], "step": run["step"], "state": "active", **(guard or {})},
                                      {"$set": {**outcome, "owner": None, "lease_until": _EPOCH}})
        return result.modified_count == 1

    def release(self, run: dict[str, Any]) -> None:
        """Gives up a claim without a step: the run is due again at once."""
        self.runs.update_one({"_id": run["_id"], "step": run["step"], "state": "active"},
                             {"$set": {"owner": None, "lease_until": _EPOCH, "due_at": self.clock()}})

    def deliver(self, event: events.AutomationEvent) -> int:
        """A custom event to the profile's runs waiting for it (wait_for {"name"}): each is
        marked and due at once; procworkflow takes the node's "got it" edge. An event that
        comes before the run reaches its wait-for is not kept for it."""
        if event.kind != events.CUSTOM:
            return 0
        return self.runs.update_many(
            {"profile_id": event.profile_id, "awaiting": event.name, "account_id": event.account_id,
             "db_id": event.db_id, "state": "active", "got": None},
            {"$set": {"got": event.event_id, "due_at": self.clock()}}).modified_count

    def awaited(self, account_id: int) -> list[str]:
        """The custom events a wait_for node of any version of the account's scenarios waits
        for: only these can mark a run (`deliver`). procevent keeps the list per account stamp
        and calls `deliver` only for them, since the update `deliver` makes is not done by the
        index on the FerretDB stand-in but by reading every run (docs/benchmarks.md)."""
        ids = [s["id"] for s in self.collection.find({"account_id": account_id}, {"id": 1})]
        names: set[str] = set()
        for version in self.versions.find({"scenario_id": {"$in": ids}}, {"nodes": 1}) if ids else ():
            names.update(n["event"]["name"] for n in version["nodes"]
                         if n["type"] == "wait_for" and "name" in n["event"])
        return sorted(names)

    def scheduled(self) -> list[dict[str, Any]]:
        """Active scenarios entered by proctask: a segment or a date field."""
        return [s for s in self.collection.find({"active": True})
                if _entry(s)["trigger"]["type"] in ("segment", "date")]

    def enter_each(self, scenario: dict[str, Any], profile_ids: Any, source: str) -> int:
        """Enters each profile with one source (a repeat finds its run); how many runs are new.
        Profiles the re-entry policy keeps out are passed over."""
        new = 0
        for profile_id in profile_ids:
            try:
                new += self.enter(scenario, profile_id, source)[1]
            except Conflict:
                pass
        return new


def _entry(scenario: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in scenario["nodes"] if n["type"] == "entry")


def enter_scheduled(store: Scenarios, segment_members: Callable[[int, int], Iterable[str]],
                    date_values: Callable[[int, int, str], Iterable[tuple[str, Any]]],
                    due: datetime) -> dict[int, int]:
    """proctask's entries (per scenario: how many runs are new). A segment entry enters
    each member once (source segment:<id>: a profile already entered finds its run); a
    date entry enters on `due`'s day (UTC) the profiles whose field's anniversary plus
    offset_days it is, once per day (source date:<field>:<day>)."""
    out = {}
    for scenario in store.scheduled():
        trigger = _entry(scenario)["trigger"]
        account, db = scenario["account_id"], scenario["db_id"]
        if trigger["type"] == "segment":
            ids: Iterable[str] = segment_members(account, trigger["segment_id"])
            source = f"segment:{trigger['segment_id']}"
        else:
            day = due.astimezone(timezone.utc).date()
            ids = (pid for pid, value in date_values(account, db, trigger["field"])
                   if timing.anniversary_due(value, day, trigger["offset_days"]))
            source = f"date:{trigger['field']}:{day.isoformat()}"
        out[scenario["id"]] = store.enter_each(scenario, ids, source)
    return out


@dataclass(frozen=True)
class Step:
    """What one step works on: the run as claimed, its node, the visit this is, and now."""
    run: dict[str, Any]
    node: dict[str, Any]
    graph: dict[str, dict[str, Any]]
    visit: int
    now: datetime
    out: Any = None  # where the step is stored: the Scenarios (at once) or a Batch

    @property
    def arriving(self) -> bool:
        """True on a waiting node's first step (its timer is not set yet)."""
        return self.run.get("waiting") != self.run["step"]


class Machine:
    """One step of a run: what its current node does, and the update that records it.

    Effects are injected: the worker wires them to the stores, tests to fakes.
    `send(run, node, message_id)` publishes one message (its id derived from run, node and
    visit); `activity(run, kinds, campaign_id)` says whether the profile opened or clicked a
    send node's message; `matches(run, condition)` whether the profile matches a profile
    condition; `profile(run)` is the profile's `data` (waits until a time or a date field);
    `update(run, node)` applies an update node; `webhook(run, node, event_id)` puts a
    webhook node's call in the outbox (prochook sends it). A send that will not go (no
    address, unsubscribed) is the sender's to log; the run goes on.

    A node type's step is the method `_<type>`: each ends in `_leave` (the next node, one
    logged step), `_hold` (a stored timer: the run is due again at `due_at`) or `_end`."""

    def __init__(self, scenarios: Scenarios, send: Callable[[dict, dict, str], None],
                 activity: Callable[[dict, tuple[str, ...], int], bool],
                 matches: Callable[[dict, Any], bool], scale: float = 1.0, *,
                 profile: Callable[[dict], dict[str, Any]] = lambda run: {},
                 update: Callable[[dict, dict], None] | None = None,
                 webhook: Callable[[dict, dict, str], None] | None = None,
                 poll_seconds: float = 60.0):
        self.scenarios = scenarios
        self.scale = scale  # main.json WORKFLOWS.TIME_SCALE: shortens every wait (tests)
        self.send, self.activity, self.matches = send, activity, matches
        self.profile, self.update, self.webhook = profile, update, webhook
        self.poll_seconds = poll_seconds  # how often a wait for an open or a click looks again

    def step(self, run: dict[str, Any], out: Any = None) -> bool:
        """Does the run's current step and stores it (through `out`, a Batch, or at once);
        False if another worker stored it first."""
        graph = self.scenarios.graph(run["scenario_id"], run["version"])
        scenario = self._scenario(run)
        node = graph[run["node"]]
        s = Step(run, node, graph, run["visits"].get(node["id"], 0) + 1, self.scenarios.clock(),
                 out if out is not None else self.scenarios)
        if s.visit > scenario.get("max_visits", DEFAULT_MAX_VISITS):
            return self._end(s, "capped")
        return getattr(self, f"_{node['type']}")(s)

    def advance(self, run: dict[str, Any], batch: Batch, most: int = MOST_STEPS) -> int:
        """Steps a claimed run as far as it goes now (until a timer, its end, or `most` steps),
        into `batch`: nothing is stored until the batch is. How many steps were taken."""
        taken = 0
        while taken < most:
            node_type = self.scenarios.graph(run["scenario_id"], run["version"])[run["node"]]["type"]
            before = run["step"]
            self.step(run, batch)
            taken += 1
            batch.taken.append(node_type)
            if run["state"] != "active" or run["step"] == before or run["due_at"] > self.scenarios.clock():
                break
        return taken

    def _scenario(self, run: dict[str, Any]) -> dict[str, Any]:
        """The run's scenario (its visit cap and re-entry policy), through the store's get, which
        procworkflow caches; a scenario deleted meanwhile has neither."""
        try:
            return self.scenarios.get(run["account_id"], run["scenario_id"])
        except NotFound:
            return {}

    # -- the node types --------------------------------------------------------------------
    def _entry(self, s: Step) -> bool:
        return self._leave(s, s.node["next"])

    def _send(self, s: Step) -> bool:
        self.send(s.run, s.node, message_id(s.run, s.node["id"], s.visit))
        return self._leave(s, s.node["next"])

    def _wait(self, s: Step) -> bool:
        if not s.arriving:
            return self._leave(s, s.node["next"])
        if "seconds" in s.node:
            return self._hold(s, self._later(s.now, s.node["seconds"]))
        ends = timing.until(s.node["until"], self.profile(s.run) or {}, s.now)
        return self._hold(s, self._later(s.now, (ends - s.now).total_seconds()))

    def _wait_for(self, s: Step) -> bool:
        event = s.node["event"]
        if s.arriving:  # the timer: the deadline, and for a custom event the name procevent marks
            deadline = self._later(s.now, s.node["timeout"])
            awaiting = event.get("name")
            due = deadline if awaiting else min(deadline, self._poll(s.now))
            return self._hold(s, due, awaiting=awaiting, got=None, deadline=deadline)
        if self._got(s):
            return self._leave(s, s.node["next"], "got")
        if s.now >= s.run["deadline"]:
            return self._leave(s, s.node["timeout_next"], "timed_out")
        if "name" in event:  # woken early, but not by its event (a lease ran out): wait on
            return self._hold(s, s.run["deadline"], guard={"got": None})
        return self._hold(s, min(s.run["deadline"], self._poll(s.now)), guard={"got": None})

    def _branch(self, s: Step) -> bool:
        condition = s.node["condition"]
        if "profile" in condition:
            yes = self.matches(s.run, condition["profile"])
        else:
            what = next(iter(condition))
            yes = self.activity(s.run, ACTIVITY[what], s.graph[condition[what]]["campaign_id"])
        return self._leave(s, s.node["yes" if yes else "no"])

    def _split(self, s: Step) -> bool:
        branches = s.node["branches"]
        chosen = timing.split_branch(s.run["_id"], s.node["id"], s.visit, [b["percent"] for b in branches])
        return self._leave(s, branches[chosen]["next"])

    def _update(self, s: Step) -> bool:
        if self.update is None:
            raise NotImplementedError("this machine has no update effect")
        self.update(s.run, s.node)
        return self._leave(s, s.node["next"])

    def _webhook(self, s: Step) -> bool:
        if self.webhook is None:
            raise NotImplementedError("this machine has no webhook effect")
        self.webhook(s.run, s.node, message_id(s.run, s.node["id"], s.visit))
        return self._leave(s, s.node["next"])

    def _exit(self, s: Step) -> bool:
        return self._end(s, "exited")

    # -- how a step is stored --------------------------------------------------------------
    def _got(self, s: Step) -> bool:
        event = s.node["event"]
        if "name" in event:
            return s.run.get("got") is not None
        what = next(iter(event))
        return self.activity(s.run, ACTIVITY[what], s.graph[event[what]]["campaign_id"])

    def _later(self, now: datetime, seconds: float) -> datetime:
        return now + timedelta(seconds=max(0.0, seconds) * self.scale)

    def _poll(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.poll_seconds)

    def _leave(self, s: Step, target: str, outcome: str | None = None) -> bool:
        change = {"node": target, "step": s.run["step"] + 1, f"visits.{s.node['id']}": s.visit,
                  "due_at": s.now, **_NOT_WAITING}
        log = {"node": s.node["id"], "next": target, **({"outcome": outcome} if outcome else {})}
        return s.out.store(s.run, change, log)

    def _hold(self, s: Step, due: datetime, guard: dict[str, Any] | None = None, **fields: Any) -> bool:
        """The node's timer, stored: a restart resumes it; the step is taken again when due.
        A guarded hold that finds the run changed (procevent marked its event) lets it go."""
        stored = s.out.store(s.run, {"waiting": s.run["step"], "due_at": due, **fields}, None, guard)
        if not stored and guard:
            s.out.release(s.run)
        return stored

    def _end(self, s: Step, state: str) -> bool:
        run = s.run
        out = {"state": state, "step": run["step"] + 1, "ended_at": s.now, **_NOT_WAITING}
        if run["entry_key"] == f"{run['scenario_id']}:{run['profile_id']}":
            if self._scenario(run).get("reentry") == "after_exit":
                out["entry_key"] = f"{run['_id']}:ended"  # releases the key for the next entry
        return s.out.store(run, out, {"node": s.node["id"], "next": None, "outcome": state})


class Batch:
    """The steps of a claimed batch of runs, stored together: the caller first makes the
    batch's effects durable (procworkflow publishes its messages in one broker transaction),
    then `flush` inserts the step log with one unordered insert_many and updates each run
    once. Each run's update is the one a single step would make,
    its outcomes merged, and only if the run is still at the step it was claimed at: a
    batch that lost its lease (or a cleared run) changes nothing, and the steps done again
    by the next claim get the same message ids and the same step-log ids.

    A guarded hold (a wait-for woken by a lease, not by its event) is stored at once, as a
    single step: it is a run's first step in a claim, so nothing of it is pending."""

    def __init__(self, scenarios: Scenarios):
        self.scenarios = scenarios
        self.logs: list[dict[str, Any]] = []
        self.claimed: dict[str, int] = {}  # run id -> the step it was claimed at
        self.sets: dict[str, dict[str, Any]] = {}
        self.taken: list[str] = []  # node types stepped (procworkflow's counts)
        self.until: dict[str, datetime] = {}  # run id -> when its claim (Leases) ends
        self.late = 0  # runs the last flush stored after their claims had ended

    def store(self, run: dict[str, Any], outcome: dict[str, Any], log: dict[str, Any] | None,
              guard: dict[str, Any] | None = None) -> bool:
        rid = run["_id"]
        if guard:
            if rid in self.sets:
                raise RuntimeError(f"run {rid}: a guarded hold after other steps in one batch")
            return self.scenarios.store(run, outcome, log, guard)
        if rid not in self.claimed:
            self.claimed[rid] = run["step"]
            if run.get("claim"):  # claimed by Leases: stored by _id while the claim lasts
                self.until[rid] = run["claim"]["until"]
        if log is not None:
            self.logs.append({"_id": f"{rid}:{run['step']}", "scenario_id": run["scenario_id"],
                              "version": run["version"], **log, "due": run["due_at"], "at": self.scenarios.clock()})
        self.sets.setdefault(rid, {}).update(outcome)
        _apply(run, outcome)
        return True

    def release(self, run: dict[str, Any]) -> None:
        self.scenarios.release(run)

    def drop(self, run_id_: str) -> None:
        """Forgets a run's steps (one failed): it stays at its claimed step until its lease ends."""
        self.sets.pop(run_id_, None)
        self.claimed.pop(run_id_, None)
        self.until.pop(run_id_, None)
        self.logs = [entry for entry in self.logs if not entry["_id"].startswith(f"{run_id_}:")]

    def flush(self) -> int:
        """Stores the batch (log first, as a single step does); how many runs were updated."""
        insert_new(self.scenarios.steps, self.logs)  # a step already there: logged by an earlier claim
        # One update a run, by _id alone while the run's claim (Leases) lasts: on the FerretDB
        # stand-in that is the one filter that does not scan the collection (and not one
        # bulk_write: two workers' multi-document updates deadlocked it); the claim is what
        # keeps other workers off the run meanwhile. A batch that outlasted its claim stores
        # a run only if it is still at the step it was claimed at (the conditional update,
        # a scan there), so a slow batch still makes progress but never moves a run back.
        modified = self.late = 0
        for rid, changes in self.sets.items():
            until = self.until.get(rid)
            if until is not None and self.scenarios.clock() < until:
                query: dict[str, Any] = {"_id": rid}
            else:
                query = {"_id": rid, "step": self.claimed[rid], "state": "active"}
                self.late += until is not None
            modified += self.scenarios.runs.update_one(
                query, {"$set": {**changes, "owner": None, "lease_until": _EPOCH}}).modified_count
        self.logs, self.claimed, self.sets, self.until = [], {}, {}, {}
        return modified


def _apply(run: dict[str, Any], outcome: dict[str, Any]) -> None:
    """A step's $set applied to the run in memory, so the next step of the batch sees it."""
    for key, value in outcome.items():
        if key.startswith("visits."):
            run["visits"] = {**run["visits"], key.split(".", 1)[1]: value}
        else:
            run[key] = value
