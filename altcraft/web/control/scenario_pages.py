"""webcontrol's scenario pages: the list, a new scenario, and a scenario's page with its
graph drawn (scenario_diagram), the runs that entered and left each node, activation, and
the graph edited as JSON - the API's `nodes` - validated by the domain when saved (a new
version; runs under way keep theirs).

The checks are the API's (Platform.check_scenario_refs, scenario_node_checker,
condition_checker, then Scenarios.add/update): a refusal names the node and its field.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from altcraft.domain import scenarios as domain
from altcraft.domain.errors import DomainError, Invalid
from altcraft.web.app import panel
from altcraft.web.control.scenario_diagram import BOX_H, BOX_W, layout

# a first graph to start from: the entry by API call, one send, the exit
STARTER = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "hello"},
           {"id": "hello", "type": "send", "template_id": 0, "sender_id": 0, "next": "end"},
           {"id": "end", "type": "exit"}]


def nodes_of(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Invalid("nodes", f"not JSON: {exc}") from None


def register(bp: Blueprint, account_id) -> None:
    def _save(doc: dict[str, Any] | None, form) -> dict[str, Any]:
        """Adds (doc None) or updates the scenario from the form, through the API's checks."""
        platform, account = panel().platform, account_id()
        nodes = nodes_of(form.get("nodes", ""))
        db_id = doc["db_id"] if doc else int(form.get("db_id") or 0)
        if doc is None:
            platform.check_campaign_refs(account, db_id=db_id)
        platform.check_scenario_refs(account, db_id, nodes)
        checks = (platform.condition_checker(account, db_id), platform.scenario_node_checker(account, db_id))
        if doc is None:
            return platform.scenarios.add(account, form.get("name"), db_id, nodes, 1,
                                          form.get("reentry") or "once", domain.DEFAULT_MAX_VISITS, *checks)
        return platform.scenarios.update(account, doc["id"], nodes, *checks, name=form.get("name"),
                                         reentry=form.get("reentry") or None)

    @bp.get("/scenarios")
    def scenarios():
        return render_template("control/scenarios.html", scenarios=panel().platform.scenarios.list(account_id()))

    @bp.route("/scenarios/new", methods=["GET", "POST"])
    def scenario_new():
        platform = panel().platform
        form = {"name": "", "db_id": "", "reentry": "once", "nodes": json.dumps(STARTER, indent=2)}
        error, status = None, 200
        if request.method == "POST":
            form.update({k: v for k, v in request.form.items() if k in form})
            try:
                doc = _save(None, request.form)
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                return redirect(url_for("control.scenario", scenario_id=doc["id"]))
        return render_template("control/scenario_new.html", form=form, error=error, reentries=domain.REENTRY,
                               databases=[(d.id, d.name) for d in platform.databases(account_id()).list()]), status

    def _page(doc: dict[str, Any], text: str | None = None, error: str | None = None, status: int = 200):
        counts = panel().platform.scenarios.counts(doc["id"])
        return render_template("control/scenario.html", scenario=doc, diagram=layout(doc["nodes"], counts),
                               box_w=BOX_W, box_h=BOX_H, counts=counts, reentries=domain.REENTRY,
                               nodes_text=text if text is not None else json.dumps(doc["nodes"], indent=2),
                               error=error), status

    @bp.route("/scenarios/<int:scenario_id>", methods=["GET", "POST"])
    def scenario(scenario_id: int):
        doc = panel().platform.scenarios.get(account_id(), scenario_id)  # another account's: 404
        if request.method == "POST":
            try:
                _save(doc, request.form)
            except DomainError as exc:
                return _page(doc, request.form.get("nodes", ""), exc.message, exc.status)
            return redirect(url_for("control.scenario", scenario_id=scenario_id))
        return _page(doc)

    def _toggle(active: bool):
        def view(scenario_id: int):
            panel().platform.scenarios.set_active(account_id(), scenario_id, active)
            return redirect(url_for("control.scenario", scenario_id=scenario_id))
        view.__name__ = "scenario_activate" if active else "scenario_deactivate"
        bp.add_url_rule(f"/scenarios/<int:scenario_id>/{'activate' if active else 'deactivate'}",
                        view_func=view, methods=["POST"])

    _toggle(True)
    _toggle(False)
