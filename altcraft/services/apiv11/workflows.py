"""Account API: scenarios (workflows/*), Altcraft's names. The graph is domain/scenarios.py's."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain import events, scenarios
from altcraft.domain.errors import Conflict, Invalid
from altcraft.domain.importer import import_rows
from altcraft.http.apiv11 import Params
from altcraft.services.apiv11 import api
from altcraft.services.apiv11.triggers import Matching, _checked, _profile_id, refuse_unsupported

_NODES = Field(..., description="the graph: nodes with id, type (entry, send, wait, wait_for, branch, "
                                "split, update, webhook, exit) and their fields; edges are next, a "
                                "branch's yes and no, a wait_for's timeout_next, a split's branches "
                                "(docs/api.md)")
_REENTRY = Field(None, description="once, after_exit or always (default once)")
_VISITS = Field(None, description=f"how often one run may pass one node, 1..{scenarios.MAX_VISITS} "
                                  f"(default {scenarios.DEFAULT_MAX_VISITS}); ends cycles")


class WorkflowsList(Params):
    pass


class WorkflowId(Params):
    id: int


class WorkflowActivate(Params):
    id: int
    skip_profiles: bool = Field(False, description="end every run still in the scenario first (Altcraft's: "
                                                   "clear the scenario before reactivating)")


class WorkflowAdd(Params):
    name: str
    db_id: int
    resource_id: int = 1
    reentry: Optional[str] = _REENTRY
    max_visits: Optional[int] = _VISITS
    nodes: list[dict[str, Any]] = _NODES


class WorkflowUpdate(Params):
    id: int
    name: Optional[str] = None
    reentry: Optional[str] = _REENTRY
    max_visits: Optional[int] = _VISITS
    nodes: Optional[list[dict[str, Any]]] = Field(None, description="a new graph: a new version; "
                                                                    "running profiles keep theirs")


class WorkflowStart(Matching):
    id: int
    attach: Optional[list[Any]] = Field(None, description="Altcraft's; only empty here (no attachments)")
    content: dict[str, Any] = Field(default_factory=dict, description="available to templates as {{ data.* }} "
                                    "(Altcraft's name)")
    idempotency_key: Optional[str] = Field(None, max_length=200, description="a repeat with the same key "
                                           "enters nothing more and answers the same")


BATCH_MAX = 1000  # items of one workflows/import_and_start_batch call


class WorkflowBatchItem(Params):
    data: dict[str, Any] = Field(..., description="the profile's fields, with the database's key: added, or "
                                                   "updated when a profile has the key")
    content: dict[str, Any] = Field(default_factory=dict, description="available to templates as {{ data.* }}")
    idempotency_key: Optional[str] = Field(None, max_length=200, description="a repeat with the same key "
                                           "enters nothing more and answers the same")


class WorkflowImportAndStartBatch(Params):
    id: int
    data: list[WorkflowBatchItem] = Field(..., min_length=1, max_length=BATCH_MAX)
    subscribe_resource_id: Optional[int] = Field(None, description="subscribe new profiles to this resource (email)")


def _public(ctx, doc: dict[str, Any]) -> dict[str, Any]:
    return {**scenarios.public(doc), "counts": ctx.scenarios.counts(doc["id"])}


@api.endpoint("workflows/list", WorkflowsList, scope="account", tag="workflows", returns_list=True,
              summary="Scenarios")
def workflows_list(ctx, principal, p):
    items = ctx.scenarios.list(principal.account_id)
    return items, len(items)


@api.endpoint("workflows/get", WorkflowId, scope="account", tag="workflows",
              summary="A scenario: its current graph and per-node counts (entered, left)")
def workflows_get(ctx, principal, p: WorkflowId):
    return _public(ctx, ctx.scenarios.get(principal.account_id, p.id))


@api.endpoint("workflows/add", WorkflowAdd, scope="account", tag="workflows", write=True,
              summary="Create a scenario (inactive; validated: one entry, every node reachable)")
def workflows_add(ctx, principal, p: WorkflowAdd):
    ctx.check_campaign_refs(principal.account_id, db_id=p.db_id)
    nodes = ctx.check_scenario_refs(principal.account_id, p.db_id, p.nodes)
    return ctx.scenarios.add(principal.account_id, p.name, p.db_id, nodes, p.resource_id,
                             "once" if p.reentry is None else p.reentry,
                             scenarios.DEFAULT_MAX_VISITS if p.max_visits is None else p.max_visits,
                             ctx.condition_checker(principal.account_id, p.db_id),
                             ctx.scenario_node_checker(principal.account_id, p.db_id))


@api.endpoint("workflows/update", WorkflowUpdate, scope="account", tag="workflows", write=True,
              summary="Change a scenario; a new graph is a new version")
def workflows_update(ctx, principal, p: WorkflowUpdate):
    current = ctx.scenarios.get(principal.account_id, p.id)
    nodes = ctx.check_scenario_refs(principal.account_id, current["db_id"], p.nodes)
    return ctx.scenarios.update(principal.account_id, p.id, nodes,
                                ctx.condition_checker(principal.account_id, current["db_id"]),
                                ctx.scenario_node_checker(principal.account_id, current["db_id"]),
                                name=p.name, reentry=p.reentry, max_visits=p.max_visits)


@api.endpoint("workflows/activate", WorkflowActivate, scope="account", tag="workflows", write=True,
              summary="Let profiles enter the scenario (skip_profiles: end the runs still in it first)")
def workflows_activate(ctx, principal, p: WorkflowActivate):
    if p.skip_profiles:
        ctx.scenarios.clear(principal.account_id, p.id)
    return ctx.scenarios.set_active(principal.account_id, p.id, True)


@api.endpoint("workflows/deactivate", WorkflowId, scope="account", tag="workflows", write=True,
              summary="Let no more profiles enter (runs already in it go on)")
def workflows_deactivate(ctx, principal, p: WorkflowId):
    return ctx.scenarios.set_active(principal.account_id, p.id, False)


@api.endpoint("workflows/start", WorkflowStart, scope="account", tag="workflows", write=True,
              summary="Enter one profile into a scenario whose entry is an API call")
def workflows_start(ctx, principal, p: WorkflowStart):
    refuse_unsupported(p, "attach")
    scenario = _api_entered(ctx, principal.account_id, p.id)
    data = _checked(p.content, "content")
    profile_id = _profile_id(ctx, principal.account_id, scenario["db_id"], p)
    source = f"key:{p.idempotency_key}" if p.idempotency_key else f"call:{events.new_event_id()}"
    run, _ = ctx.scenarios.enter(scenario, profile_id, source, data)
    return {"run_id": run["_id"], "scenario_id": run["scenario_id"], "version": run["version"],
            "profile_id": run["profile_id"]}


def _first(profiles, data: dict[str, Any], seen: set) -> bool:
    """Whether this row's key is new among the rows seen (a row without a valid key is: the
    importer reports it)."""
    try:
        value = profiles.prepare(data, require_key=True)[profiles.database.key]
    except Invalid:
        return True
    if value in seen:
        return False
    seen.add(value)
    return True


def _api_entered(ctx, account_id: int, scenario_id: int) -> dict[str, Any]:
    scenario = ctx.scenarios.get(account_id, scenario_id)
    trigger = next(n for n in scenario["nodes"] if n["type"] == "entry")["trigger"]
    if trigger["type"] != "api":
        raise Conflict(f"scenario {scenario_id} is entered by {trigger['type']}, not the API")
    if not scenario.get("active"):
        raise Conflict(f"scenario {scenario_id} is not active")
    return scenario


@api.endpoint("workflows/import_and_start_batch", WorkflowImportAndStartBatch, scope="account", tag="workflows",
              write=True, summary=f"Add or update up to {BATCH_MAX} profiles and enter each into a scenario "
                                  "whose entry is an API call")
def workflows_import_and_start_batch(ctx, principal, p: WorkflowImportAndStartBatch):
    """The profiles are upserted as profiles/import_batch does (a bad row is reported by its
    index, the others go on), then entered with one insert: per item its run, or why not."""
    scenario = _api_entered(ctx, principal.account_id, p.id)
    errors: dict[int, dict[str, Any]] = {}
    contents: dict[int, Any] = {}
    for index, item in enumerate(p.data):
        try:
            contents[index] = _checked(item.content, "content")
        except Invalid as exc:
            errors[index] = {"index": index, "error": exc.message}
    profiles = ctx.profiles(principal.account_id, scenario["db_id"])
    subscribe = (p.subscribe_resource_id, "email") if p.subscribe_resource_id else None
    # a profile named by more than one item is upserted from its first one (the importer
    # refuses a key twice in one batch); each item is still entered on its own
    rows, firsts = [(i, item.data) for i, item in enumerate(p.data) if i not in errors], set()
    report = import_rows(profiles, [(i, data) for i, data in rows if _first(profiles, data, firsts)],
                         unit="index", subscribe=subscribe)
    for e in report.errors:
        errors[e.line] = {"index": e.line, "error": f"{e.field}: {e.reason}" if e.field else e.reason}
    key = profiles.database.key
    wanted = {i: profiles.prepare(data, require_key=True)[key] for i, data in rows if i not in errors}
    ids = profiles.ids_by_key(list(wanted.values()))
    entries, at = [], []
    for index, value in wanted.items():
        if value not in ids:  # deleted between the upsert and the look-up
            errors[index] = {"index": index, "error": "profile not found"}
            continue
        item = p.data[index]
        source = f"key:{item.idempotency_key}" if item.idempotency_key else f"call:{events.new_event_id()}"
        entries.append((ids[value], source, contents[index]))
        at.append(index)
    results = []
    for index, (run, new) in zip(at, ctx.scenarios.enter_many(scenario, entries)):
        if run is None:
            errors[index] = {"index": index, "error": f"already in scenario {p.id} (re-entry: "
                                                      f"{scenario.get('reentry', 'once')})"}
            continue
        results.append({"index": index, "run_id": run["_id"], "profile_id": run["profile_id"], "new": new})
    return {"scenario_id": scenario["id"], "version": scenario["version"], "entered": sum(r["new"] for r in results),
            "runs": results, "errors": [errors[i] for i in sorted(errors)]}
