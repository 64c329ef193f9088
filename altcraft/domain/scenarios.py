"""Scenarios (workflows): a graph of steps each profile walks through, one run per entry.

A scenario belongs to an account and names a profile database and a resource. Its graph is
a list of nodes; edges are the node fields that name another node (`next`, or a branch's
`yes`/`no`). Each save stores a new version in `workflow_versions`; a run keeps the version
it started on. A graph is validated when saved (`validate`): one entry, every node reachable
from it, no edge to a missing node, each node's own fields, and `max_visits` (how often one
run may pass one node, so a cycle ends).

Node types (NODE_TYPES; a later type adds an entry there and a step in `Machine`):
  {"id", "type": "entry", "trigger": {"type": "api"} | {"type": "event", "name": ...}, "next"}
  {"id", "type": "send", "template_id", "sender_id" | "vsender_id", "next"}
  {"id", "type": "wait", "seconds", "next"}
  {"id", "type": "branch", "condition": {"profile": <segment condition>}
                                        | {"opened": <send node>} | {"clicked": <send node>},
   "yes", "no"}
  {"id", "type": "exit"}
Each send node gets its own campaign id (from the campaigns' counter, kept across versions
by node id), so tracking and reports attribute its opens and clicks to it.

Runs (`workflow_runs`), one per entry of a profile. The re-entry policy is kept by a unique
index on `entry_key`: `once` -> scenario:profile for good; `after_exit` -> the same key,
released (renamed) by the single update that ends the run; `always` -> the entry's own id.
A run's _id derives from (scenario, profile, entry source), so a repeated event or API call
finds the run already there.

A run is its own timer: `due_at` says when its next step is due; a worker claims it under a
lease (`claim`), does one step and stores the outcome with one single-document update
(`Machine.step`). The stand-in document store does not make a conditional update atomic
across concurrent writers, so a double claim is made harmless rather than impossible: a step
is computed from the run's stored state only, so two workers doing it store the same
outcome; a send's message id derives from (run, node, visit), so akmtad's de-duplication
drops a repeat; and the step log (`workflow_steps`, _id run:step, a unique insert) is what
the per-node counts are counted from, so a step done twice counts once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain import events
from altcraft.domain.clock import now as clock_now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id

REENTRY = ("once", "after_exit", "always")
MAX_NODES = 200
MAX_WAIT = 365 * 86400
DEFAULT_MAX_VISITS = 5
MAX_VISITS = 100
ACTIVITY = {"opened": ("open",), "clicked": ("click",)}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = uuid.UUID("8d0f3b8e-2c61-4f6e-9a57-51e7f1c3a9b4")
PUBLIC = ("id", "account_id", "name", "db_id", "resource_id", "reentry", "max_visits", "version",
          "active", "nodes", "created_at", "updated_at")


@dataclass(frozen=True)
class NodeType:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    edges: tuple[str, ...]  # fields naming the next node


NODE_TYPES: dict[str, NodeType] = {
    "entry": NodeType(("trigger", "next"), (), ("next",)),
    "send": NodeType(("template_id", "next"), ("sender_id", "vsender_id", "campaign_id"), ("next",)),
    "wait": NodeType(("seconds", "next"), (), ("next",)),
    "branch": NodeType(("condition", "yes", "no"), (), ("yes", "no")),
    "exit": NodeType((), (), ()),
}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def _positive(value: Any) -> bool:
    return type(value) is int and value > 0


def _trigger(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") not in ("api", "event") or set(raw) - {"type", "name"}:
        raise Invalid(where, '{"type": "api"} or {"type": "event", "name": ...}')
    if raw["type"] == "api":
        return {"type": "api"}
    try:
        return {"type": "event", "name": events.check_name(raw.get("name"))}
    except events.BadEvent as exc:
        raise Invalid(f"{where}.name", str(exc).split(": ", 1)[-1]) from None


def validate(nodes: Any, check_condition: Callable[[Any, str], None] | None = None) -> list[dict[str, Any]]:
    """The graph as stored, or Invalid naming the node or edge at fault. `check_condition`
    checks a branch's profile condition (the segment compiler, against the database)."""
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
    entries = [n for n in graph.values() if n["type"] == "entry"]
    if len(entries) != 1:
        raise Invalid("nodes", f"exactly one entry node (found {len(entries)})")
    for node in graph.values():
        for edge in NODE_TYPES[node["type"]].edges:
            target = node[edge]
            if not isinstance(target, str) or target not in graph:
                raise Invalid(f"node {node['id']!r}.{edge}", f"no node {target!r} (dangling edge)")
            if graph[target]["type"] == "entry":
                raise Invalid(f"node {node['id']!r}.{edge}", "an edge may not lead back to the entry")
        if node["type"] == "branch" and "profile" not in node["condition"]:
            target = next(iter(node["condition"].values()))
            if target not in graph or graph[target]["type"] != "send":
                raise Invalid(f"node {node['id']!r}.condition", f"{target!r} is not a send node")
    seen, todo = set(), [entries[0]["id"]]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph[current][e] for e in NODE_TYPES[graph[current]["type"]].edges)
    unreachable = [n for n in graph if n not in seen]
    if unreachable:
        raise Invalid(f"node {unreachable[0]!r}", "not reachable from the entry")
    return list(graph.values())


def _check_node(node: dict[str, Any], where: str, check_condition) -> dict[str, Any]:
    kind = node["type"]
    if kind == "entry":
        node["trigger"] = _trigger(node["trigger"], f"{where}.trigger")
    elif kind == "send":
        if not _positive(node["template_id"]):
            raise Invalid(f"{where}.template_id", "a template id (a positive integer)")
        if (node.get("sender_id") is None) == (node.get("vsender_id") is None):
            raise Invalid(f"{where}.sender_id", "give exactly one of sender_id and vsender_id")
        sender = node.get("sender_id", node.get("vsender_id"))
        if not _positive(sender):
            raise Invalid(f"{where}.{'sender_id' if 'sender_id' in node else 'vsender_id'}", "a positive integer")
    elif kind == "wait":
        if type(node["seconds"]) is not int or not 1 <= node["seconds"] <= MAX_WAIT:
            raise Invalid(f"{where}.seconds", f"whole seconds, 1..{MAX_WAIT} (a year)")
    elif kind == "branch":
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
    return node


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
        self.clock = clock

    # -- scenarios -----------------------------------------------------------------------
    def _campaign_ids(self, nodes: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
        kept = {n["id"]: n.get("campaign_id") for n in before if n["type"] == "send"}
        for node in nodes:
            if node["type"] == "send":
                node["campaign_id"] = kept.get(node["id"]) or next_id(self.control, "campaigns")

    def add(self, account_id: int, name: Any, db_id: int, nodes: Any, resource_id: int = 1,
            reentry: str = "once", max_visits: int = DEFAULT_MAX_VISITS,
            check_condition: Callable[[Any, str], None] | None = None) -> dict[str, Any]:
        if name is None:
            raise Invalid("name", "a non-empty name")
        fields = self._settings(name=name, reentry=reentry, max_visits=max_visits)
        graph = validate(nodes, check_condition)
        self._campaign_ids(graph, [])
        stamp = self.clock()
        doc = {"id": next_id(self.control, "workflows"), "account_id": account_id, "db_id": db_id,
               "resource_id": resource_id, **fields, "version": 1, "nodes": graph, "active": False,
               "created_at": stamp, "updated_at": stamp}
        self.versions.insert_one({"scenario_id": doc["id"], "version": 1, "nodes": graph, "saved_at": stamp})
        self.collection.insert_one(doc)
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
               check_condition: Callable[[Any, str], None] | None = None, **settings: Any) -> dict[str, Any]:
        """A new version when `nodes` is given; running runs keep theirs."""
        current = self.get(account_id, scenario_id)
        fields = self._settings(**settings)
        if nodes is not None:
            graph = validate(nodes, check_condition)
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
        return public(self.get(account_id, scenario_id))

    def set_active(self, account_id: int, scenario_id: int, active: bool) -> dict[str, Any]:
        self.get(account_id, scenario_id)
        self.collection.update_one({"id": scenario_id, "account_id": account_id},
                                   {"$set": {"active": active, "updated_at": self.clock()}})
        return public(self.get(account_id, scenario_id))

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
        if not scenario.get("active"):
            raise Conflict(f"scenario {scenario['id']} is not active")
        rid = run_id(scenario["id"], profile_id, source)
        existing = self.runs.find_one({"_id": rid})
        if existing is not None:
            return existing, False
        entry = next(n for n in scenario["nodes"] if n["type"] == "entry")
        stamp = self.clock()
        doc = {"_id": rid, "account_id": scenario["account_id"], "scenario_id": scenario["id"],
               "version": scenario["version"], "db_id": scenario["db_id"], "profile_id": profile_id,
               "data": data or {}, "entry": entry["id"], "node": entry["id"], "step": 0, "visits": {},
               "state": "active", "due_at": stamp, "lease_until": _EPOCH, "owner": None,
               "entry_key": entry_key(scenario.get("reentry", "once"), scenario["id"], profile_id, rid),
               "created_at": stamp}
        try:
            self.runs.insert_one(doc)
        except DuplicateKeyError:
            existing = self.runs.find_one({"_id": rid})
            if existing is not None:
                return existing, False
            raise Conflict(f"profile {profile_id} is already in scenario {scenario['id']} "
                           f"(re-entry: {scenario.get('reentry', 'once')})") from None
        return doc, True

    def claim(self, owner: str, run_id_: str | None = None, lease_seconds: float = 30.0) -> dict[str, Any] | None:
        """An active run whose step is due and not leased (this one, or the earliest), leased."""
        stamp = self.clock()
        query: dict[str, Any] = {"state": "active", "due_at": {"$lte": stamp}, "lease_until": {"$lte": stamp}}
        if run_id_ is not None:
            query["_id"] = run_id_
        return self.runs.find_one_and_update(
            query, {"$set": {"owner": owner, "lease_until": stamp + timedelta(seconds=lease_seconds)}},
            sort=[("due_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    def store(self, run: dict[str, Any], outcome: dict[str, Any], log: dict[str, Any] | None) -> bool:
        """Stores a step's outcome on the run (one update, only if the run is still at that
        step) after logging it (a unique insert: a step done twice is logged once)."""
        if log is not None:
            try:
                # `due`: when the step was due (a wait's timer), so a timer's lateness is at - due
                self.steps.insert_one({"_id": f"{run['_id']}:{run['step']}", "scenario_id": run["scenario_id"],
                                       "version": run["version"], **log, "due": run["due_at"], "at": self.clock()})
            except DuplicateKeyError:
                pass
        result = self.runs.update_one({"_id": run["_id"], "step": run["step"], "state": "active"},
                                      {"$set": {**outcome, "owner": None, "lease_until": _EPOCH}})
        return result.modified_count == 1


class Machine:
    """One step of a run: what its current node does, and the update that records it.

    `send(run, node, message_id)` publishes one message (its id derived from run, node and
    visit); `activity(run, kinds, campaign_id)` says whether the profile opened or clicked a
    send node's message; `matches(run, condition)` whether the profile matches a profile
    condition. A send that will not go (no address, unsubscribed) is the sender's to log;
    the run goes on. All three are injected: the worker wires them to the stores, tests to fakes."""

    def __init__(self, scenarios: Scenarios, send: Callable[[dict, dict, str], None],
                 activity: Callable[[dict, tuple[str, ...], int], bool],
                 matches: Callable[[dict, Any], bool], scale: float = 1.0):
        self.scenarios = scenarios
        self.scale = scale  # main.json WORKFLOWS.TIME_SCALE: shortens every wait (tests)
        self.send, self.activity, self.matches = send, activity, matches

    def step(self, run: dict[str, Any]) -> bool:
        """Does the run's current step and stores it; False if another worker stored it first."""
        graph = self.scenarios.graph(run["scenario_id"], run["version"])
        scenario = self.scenarios.collection.find_one({"id": run["scenario_id"]}, {"max_visits": 1}) or {}
        node = graph[run["node"]]
        visit = run["visits"].get(node["id"], 0) + 1
        now = self.scenarios.clock()
        kind = node["type"]
        if visit > scenario.get("max_visits", DEFAULT_MAX_VISITS):
            return self.scenarios.store(run, self._end(run, "capped", now),
                                        {"node": node["id"], "next": None, "outcome": "capped"})
        if kind == "wait" and run.get("waiting") != run["step"]:
            # the timer: stored, so a restart resumes it; the node is left when it is due
            return self.scenarios.store(run, {"waiting": run["step"],
                                              "due_at": now + timedelta(seconds=node["seconds"] * self.scale)}, None)
        if kind == "exit":
            return self.scenarios.store(run, self._end(run, "exited", now),
                                        {"node": node["id"], "next": None, "outcome": "exited"})
        if kind == "send":
            self.send(run, node, message_id(run, node["id"], visit))
            target = node["next"]
        elif kind == "branch":
            condition = node["condition"]
            if "profile" in condition:
                yes = self.matches(run, condition["profile"])
            else:
                what = next(iter(condition))
                yes = self.activity(run, ACTIVITY[what], graph[condition[what]]["campaign_id"])
            target = node["yes" if yes else "no"]
        else:  # entry, a wait that is due
            target = node["next"]
        outcome = {"node": target, "step": run["step"] + 1, f"visits.{node['id']}": visit, "due_at": now,
                   "waiting": None}
        return self.scenarios.store(run, outcome, {"node": node["id"], "next": target})

    def _end(self, run: dict[str, Any], state: str, now: datetime) -> dict[str, Any]:
        out = {"state": state, "step": run["step"] + 1, "ended_at": now}
        if run["entry_key"] == f"{run['scenario_id']}:{run['profile_id']}":
            scenario = self.scenarios.collection.find_one({"id": run["scenario_id"]}, {"reentry": 1}) or {}
            if scenario.get("reentry") == "after_exit":
                out["entry_key"] = f"{run['_id']}:ended"  # releases the key for the next entry
        return out
