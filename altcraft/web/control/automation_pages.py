"""webcontrol's automation pages: trigger campaigns (list, create, activate and deactivate)
and webhooks (list, create with the signing secret shown once, enable and disable, delete,
and each endpoint's delivery log with a replay of what failed).

The rules are the domain's (altcraft.domain.triggers, altcraft.domain.webhooks): a trigger's
spec is parsed by parse_trigger, a webhook's address is checked by the operator's address
policy (a private address is refused unless main.json allows its network), and what a
trigger names is checked by Platform.check_campaign_refs as the API checks it. Only the
turning of form text into the domain's arguments lives here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, make_response, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError, Invalid
from altcraft.web.app import panel
from altcraft.web.control.sender_choice import sender_ids, sender_options
from altcraft.web.i18n import gettext_

TRIGGER_KINDS = ("event", "subscription", "api")
# the domain's field of an Invalid -> the form's field it is shown under
TRIGGER_FIELDS = {"name": "name", "db_id": "db_id", "template_id": "template_id", "sender_id": "sender",
                  "vsender_id": "sender", "resource_id": "resource_id", "trigger": "kind",
                  "trigger.name": "event", "trigger.status": "status", "trigger.resource_id": "status_resource",
                  "delay_seconds": "delay", "delay": "delay", "status_resource": "status_resource"}
WEBHOOK_FIELDS = {"url": "url", "events": "events", "description": "description"}
LOG_SIZE = 50


def _number(form, name: str, what: str, default: str = "") -> int:
    raw = form.get(name, default).strip()
    if not raw.isdigit():
        raise Invalid(name, what)
    return int(raw)


def trigger_args(form) -> dict[str, Any]:
    """The trigger form as the arguments of Triggers.add (Invalid naming a bad field)."""
    spec: dict[str, Any] = {"type": form.get("kind", "")}
    if spec["type"] == "event":
        spec["name"] = form.get("event", "").strip()
    elif spec["type"] == "subscription":
        spec["status"] = form.get("status", "")
        resource = form.get("status_resource", "").strip()
        if resource:
            spec["resource_id"] = _number(form, "status_resource", "a resource id (a positive integer)")
    return {"name": form.get("name", ""), "db_id": _number(form, "db_id", "choose a profile database"),
            "template_id": _number(form, "template_id", "choose a template"),
            **sender_ids(form.get("sender", "")),
            "resource_id": _number(form, "resource_id", "a resource id (a positive integer)", "1"),
            "trigger": spec, "delay_seconds": _number(form, "delay", "whole seconds", "0")}


def describe(spec: dict[str, Any]) -> str:
    """A trigger's spec in words, for the list and its page."""
    if spec.get("type") == "event":
        return gettext_("custom event %(name)s", name=spec["name"])
    if spec.get("type") == "subscription":
        text = gettext_("subscribed") if spec["status"] == "subscribed" else gettext_("unsubscribed")
        if spec.get("resource_id"):
            return gettext_("profile %(status)s (resource %(id)s)", status=text, id=spec["resource_id"])
        return gettext_("profile %(status)s", status=text)
    return gettext_("API call")


def _place(exc: DomainError, fields: dict[str, str], field_errors: dict[str, str]) -> str | None:
    field = fields.get(exc.field) if isinstance(exc, Invalid) else None
    if field:
        field_errors[field] = exc.reason
        return None
    return exc.message


def register(bp: Blueprint, account_id) -> None:
    def _choices(account: int) -> dict[str, list[tuple[Any, str]]]:
        platform = panel().platform
        return {"databases": [(d.id, d.name) for d in platform.databases(account).list()],
                "templates": [(t["id"], t["name"]) for t in platform.templates(account).list()],
                "senders": sender_options(platform, account)}

    # -- trigger campaigns ---------------------------------------------------------------
    @bp.get("/triggers")
    def triggers():
        items = panel().platform.triggers.list(account_id())
        return render_template("control/triggers.html", triggers=items, describe=describe)

    @bp.route("/triggers/new", methods=["GET", "POST"])
    def trigger_new():
        account = account_id()
        platform = panel().platform
        form = {"name": "", "db_id": "", "template_id": "", "sender": "", "resource_id": "1", "kind": "event",
                "event": "", "status": "subscribed", "status_resource": "", "delay": "0"}
        field_errors: dict[str, str] = {}
        form_error, status = None, 200
        if request.method == "POST":
            form.update({k: v for k, v in request.form.items() if k != "csrf_token"})
            try:
                args = trigger_args(request.form)
                platform.check_campaign_refs(account, db_id=args["db_id"], template_id=args["template_id"],
                                             sender_id=args["sender_id"], vsender_id=args["vsender_id"])
                # created inactive: it starts answering events when the marketer says so
                doc = platform.triggers.add(account, active=False, **args)
            except DomainError as exc:
                form_error, status = _place(exc, TRIGGER_FIELDS, field_errors), exc.status
            else:
                return redirect(url_for("control.trigger", trigger_id=doc["id"]))
        return render_template("control/trigger_new.html", form=form, field_errors=field_errors,
                               form_error=form_error, kinds=TRIGGER_KINDS, **_choices(account)), status

    @bp.get("/triggers/<int:trigger_id>")
    def trigger(trigger_id: int):
        platform = panel().platform
        doc = platform.triggers.get(account_id(), trigger_id)  # another account's: 404
        sends = platform.triggers.sends.count_documents({"trigger_id": trigger_id, "account_id": account_id()})
        return render_template("control/trigger.html", trigger=doc, spec=describe(doc["trigger"]), sends=sends)

    def _toggle(active: bool):
        def view(trigger_id: int):
            panel().platform.triggers.update(account_id(), trigger_id, active=active)
            return redirect(url_for("control.trigger", trigger_id=trigger_id))
        view.__name__ = "trigger_activate" if active else "trigger_deactivate"
        bp.add_url_rule(f"/triggers/<int:trigger_id>/{'activate' if active else 'deactivate'}",
                        view_func=view, methods=["POST"])

    _toggle(True)
    _toggle(False)

    # -- webhooks --------------------------------------------------------------------------
    @bp.get("/webhooks")
    def webhooks():
        return render_template("control/webhooks.html", webhooks=panel().platform.webhooks.list(account_id()))

    @bp.route("/webhooks/new", methods=["GET", "POST"])
    def webhook_new():
        form = {"url": "", "events": "#", "description": ""}
        field_errors: dict[str, str] = {}
        form_error, status = None, 200
        if request.method == "POST":
            form.update({k: v for k, v in request.form.items() if k in form})
            try:
                doc = panel().platform.webhooks.add(account_id(), form["url"].strip(),
                                                    events=form["events"].replace(",", " ").split(),
                                                    description=form["description"])
            except DomainError as exc:
                form_error, status = _place(exc, WEBHOOK_FIELDS, field_errors), exc.status
            else:
                # the secret is shown on this answer only (never in a URL, never stored in clear
                # anywhere a page reads it again) and the answer is not cached
                g.audit_object = ("webhook", doc["id"])
                response = make_response(render_template("control/webhook_secret.html", webhook=doc))
                response.headers["Cache-Control"] = "no-store"
                return response
        return render_template("control/webhook_new.html", form=form, field_errors=field_errors,
                               form_error=form_error), status

    @bp.get("/webhooks/<int:webhook_id>")
    def webhook(webhook_id: int):
        ctx = panel()
        doc = ctx.platform.webhooks.get(account_id(), webhook_id)  # another account's: 404
        state = request.args.get("state") or None
        entries, total = ctx.platform.webhook_outbox.log(account_id(), webhook_id, state=state, limit=LOG_SIZE)
        return render_template("control/webhook.html", webhook=doc, entries=entries, total=total, state=state,
                               states=("pending", "delivered", "failed", "cancelled"))

    def _webhook_change(name: str, change):
        def view(webhook_id: int):
            change(panel().platform, account_id(), webhook_id)
            return redirect(url_for("control.webhook", webhook_id=webhook_id))
        view.__name__ = f"webhook_{name}"
        bp.add_url_rule(f"/webhooks/<int:webhook_id>/{name}", view_func=view, methods=["POST"])

    _webhook_change("enable", lambda p, a, i: p.webhooks.update(a, i, enabled=True))
    _webhook_change("disable", lambda p, a, i: p.webhooks.update(a, i, enabled=False))

    @bp.post("/webhooks/<int:webhook_id>/replay")
    def webhook_replay(webhook_id: int):
        platform = panel().platform
        platform.webhooks.get(account_id(), webhook_id)  # another account's: 404
        replayed = platform.webhook_outbox.replay(account_id(), endpoint_id=webhook_id)
        g.audit_changes = {"replayed": replayed}
        return redirect(url_for("control.webhook", webhook_id=webhook_id))

    @bp.get("/webhooks/<int:webhook_id>/delete")
    def webhook_delete_confirm(webhook_id: int):
        return render_template("control/webhook_delete.html",
                               webhook=panel().platform.webhooks.get(account_id(), webhook_id))

    @bp.post("/webhooks/<int:webhook_id>/delete")
    def webhook_delete(webhook_id: int):
        panel().platform.webhooks.delete(account_id(), webhook_id)
        return redirect(url_for("control.webhooks"))
