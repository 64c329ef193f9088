"""webcontrol's scenario pages: the list, a new scenario, and a scenario's page with its
graph drawn (scenario_diagram), the runs that entered and left each node, activation, the
step-by-step editor (scenario_editor: a draft changed one step at a time, drawn and checked
after each change) and, as the advanced view, the graph edited as JSON - the API's `nodes`.
Either is validated by the domain when saved (a new version; runs under way keep theirs).

The checks are the API's (Platform.check_scenario_refs, scenario_node_checker,
condition_checker, then Scenarios.add/update): a refusal names the node and its field.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from altcraft.domain import scenarios as domain
from altcraft.domain.errors import DomainError, Invalid
from altcraft.web.app import not_a_change, panel
from altcraft.web.control import scenario_editor as editor
from altcraft.web.control.scenario_diagram import BOX_H, BOX_W, layout
from altcraft.web.control.sender_choice import sender_options
from altcraft.web.control.scenario_form import MAX_BRANCHES, RULE_OPS, SET_ROWS, UNITS, duration
from altcraft.web.i18n import gettext_

# a first graph that saves as it is: the entry by API call and the exit; steps are added
# between them on the scenario's page
STARTER = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "end"},
           {"id": "end", "type": "exit"}]


def type_names() -> dict[str, str]:
    return {"entry": gettext_("Entry"), "send": gettext_("Send a message"), "wait": gettext_("Wait"),
            "wait_for": gettext_("Wait for an event"), "branch": gettext_("Branch (yes or no)"),
            "split": gettext_("Random split"), "update": gettext_("Update the profile"),
            "webhook": gettext_("Call a webhook"), "exit": gettext_("Exit")}


def unit_names() -> dict[str, str]:
    return {"days": gettext_("days"), "hours": gettext_("hours"), "minutes": gettext_("minutes"),
            "seconds": gettext_("seconds")}


def span_text(seconds: Any) -> str:
    """A step's duration in the largest whole unit: "3 days"."""
    amount, unit = duration(seconds)
    return f"{amount} {unit_names()[unit]}"


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
        checks = editor.checkers(platform, account, db_id, nodes)
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

    def _choices(doc: dict[str, Any]) -> dict[str, Any]:
        """The step form's options as (value, label); a sender is "s:<id>", a virtual one "v:<id>"."""
        platform, account = panel().platform, account_id()
        database = platform.databases(account).get(doc["db_id"])
        segments = [s for s in platform.segments(account).list() if s["db_id"] == doc["db_id"]]
        return {"templates": [(str(t["id"]), t["name"]) for t in platform.templates(account).list()],
                "senders": sender_options(platform, account), "fields": sorted(database.fields),
                "field_types": {n: f.type for n, f in database.fields.items()},
                "segments": [(str(s["id"]), s["name"]) for s in segments],
                "static_segments": [(str(s["id"]), s["name"]) for s in segments
                                    if s.get("kind") == "static" and s.get("manual")],
                "endpoints": [(str(e["id"]), e["url"]) for e in platform.webhooks.list(account)]}

    def _editor_args(doc: dict[str, Any], edit: editor.Edit, problem: editor.Problem | None) -> dict[str, Any]:
        counts = panel().platform.scenarios.counts(doc["id"])
        problems = [p for p in (problem, edit.form_problem) if p is not None]
        names = type_names()
        number = {n["id"]: i + 1 for i, n in enumerate(edit.nodes)}
        choices = _choices(doc)
        return {"type_names": names, "span_text": span_text,
                "exit_options": [(n["id"], f"{number[n['id']]}. {n['id']} ({names[n['type']]})")
                                 for n in edit.nodes if n["type"] != "entry"],
                "send_options": [(n["id"], f"{number[n['id']]}. {n['id']}") for n in edit.nodes if n["type"] == "send"],
                "after_options": [(n["id"], f"{number[n['id']]}. {n['id']}") for n in edit.nodes
                                  if "next" in domain.NODE_TYPES[n["type"]].edges],
                "field_options": [(f, f) for f in choices["fields"]],
                "unit_options": [(u, unit_names()[u]) for u, _ in UNITS],
                "scenario": doc, "nodes": edit.nodes, "draft": json.dumps(edit.nodes), "open_form": edit.form,
                "changed": edit.changed, "problems": problems, "step_types": editor.STEP_TYPES,
                "diagram": layout(edit.nodes, counts), "box_w": BOX_W, "box_h": BOX_H, "counts": counts,
                "choices": choices, "edges": domain.edges, "rule_ops": [(o, o) for o in RULE_OPS],
                "set_rows": SET_ROWS, "max_branches": MAX_BRANCHES, "number": number}

    def _page(doc: dict[str, Any], text: str | None = None, error: str | None = None, status: int = 200,
              edit: editor.Edit | None = None, problem: editor.Problem | None = None):
        return render_template("control/scenario.html", reentries=domain.REENTRY,
                               nodes_text=text if text is not None else json.dumps(doc["nodes"], indent=2),
                               error=error, **_editor_args(doc, edit or editor.Edit(doc["nodes"]), problem)), status

    @bp.route("/scenarios/<int:scenario_id>", methods=["GET", "POST"])
    def scenario(scenario_id: int):
        doc = panel().platform.scenarios.get(account_id(), scenario_id)  # another account's: 404
        if request.method == "POST":
            try:
                _save(doc, request.form)
            except DomainError as exc:
                if request.form.get("editor") == "steps":  # saved from the step editor: shown there
                    try:
                        nodes = editor.draft_of(request.form.get("nodes", ""))
                    except DomainError:
                        return _page(doc, None, exc.message, exc.status)
                    return _page(doc, status=exc.status, edit=editor.Edit(nodes, changed=True),
                                 problem=editor.place(exc, nodes))
                return _page(doc, request.form.get("nodes", ""), exc.message, exc.status)
            return redirect(url_for("control.scenario", scenario_id=scenario_id))
        return _page(doc)

    @bp.post("/scenarios/<int:scenario_id>/steps")
    @not_a_change  # a draft: nothing is stored until it is saved on the scenario's page
    def scenario_steps(scenario_id: int):
        platform = panel().platform
        doc = platform.scenarios.get(account_id(), scenario_id)  # another account's: 404
        try:
            nodes = editor.draft_of(request.form.get("nodes", ""))
        except DomainError as exc:
            edit, problem = editor.Edit(doc["nodes"]), editor.Problem(None, None, exc.message)
        else:
            edit = editor.act(nodes, request.form, _choices(doc)["field_types"])
            problem = None
            try:  # after any action, so a step opened for editing shows its refusal under its field
                editor.check_draft(platform, account_id(), doc["db_id"], edit.nodes)
            except DomainError as exc:
                problem = editor.place(exc, edit.nodes)
                edit.reopen(problem)
        if request.headers.get("HX-Request") == "true":
            return Response(render_template("control/_scenario_editor.html", **_editor_args(doc, edit, problem)))
        return _page(doc, edit=edit, problem=problem)

    def _toggle(active: bool):
        def view(scenario_id: int):
            panel().platform.scenarios.set_active(account_id(), scenario_id, active)
            return redirect(url_for("control.scenario", scenario_id=scenario_id))
        view.__name__ = "scenario_activate" if active else "scenario_deactivate"
        bp.add_url_rule(f"/scenarios/<int:scenario_id>/{'activate' if active else 'deactivate'}",
                        view_func=view, methods=["POST"])

    _toggle(True)
    _toggle(False)
