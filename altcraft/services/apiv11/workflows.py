"""Account API: scenarios (workflows/*), Altcraft's names. The graph is domain/scenarios.py's."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain import events, scenarios
from altcraft.domain.errors import Conflict
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
    scenario = ctx.scenarios.get(principal.account_id, p.id)
    trigger = next(n for n in scenario["nodes"] if n["type"] == "entry")["trigger"]
    if trigger["type"] != "api":
        raise Conflict(f"scenario {p.id} is entered by {trigger['type']}, not the API")
    data = _checked(p.content, "content")
    profile_id = _profile_id(ctx, principal.account_id, scenario["db_id"], p)
    source = f"key:{p.idempotency_key}" if p.idempotency_key else f"call:{events.new_event_id()}"
    run, _ = ctx.scenarios.enter(scenario, profile_id, source, data)
    return {"run_id": run["_id"], "scenario_id": run["scenario_id"], "version": run["version"],
            "profile_id": run["profile_id"]}
