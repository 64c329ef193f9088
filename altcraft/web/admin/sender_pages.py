"""webadmin's sender pages: list, create and edit e-mail senders, generate or rotate the DKIM
key (the page shows the DNS TXT record to publish; the private key never leaves the control
database), sending IPs, and which accounts may use a sender. The rules are domain/senders.py's,
the same the admin API applies."""

from __future__ import annotations

import re

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError, NotFound
from altcraft.domain.senders import public
from altcraft.web import i18n
from altcraft.web.app import panel

FIELDS = ("name", "from_email", "from_name", "reply_to", "dkim_selector", "relay", "ips")
KEY_ALGORITHMS = ("rsa", "ed25519")


def add_routes(bp: Blueprint) -> None:
    @bp.get("/senders")
    def senders():
        return render_template("admin/senders.html", senders=panel().platform.senders.list(include_deleted=True))

    @bp.route("/senders/new", methods=["GET", "POST"])
    def sender_new():
        form = {k: "" for k in FIELDS} | {"dkim_selector": "ak", "dkim_algorithm": "rsa"}
        error, status = None, 200
        if request.method == "POST":
            form = _form() | {"dkim_algorithm": request.form.get("dkim_algorithm", "rsa")}
            try:
                sender = panel().platform.senders.save(**_values(form), dkim_algorithm=form["dkim_algorithm"])
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                g.audit_object = ("sender", sender["id"])
                return redirect(url_for("admin.sender", sender_id=sender["id"]))
        return render_template("admin/sender_new.html", form=form, error=error), status

    @bp.route("/senders/<int:sender_id>", methods=["GET", "POST"])
    def sender(sender_id: int):
        service = panel().platform.senders
        current = public(service.get(sender_id, include_deleted=True))  # 404 when missing
        form = _as_form(current)
        error, status, saved = None, 200, False
        if request.method == "POST":
            form = _form()
            try:
                service.save(id=sender_id, **_values(form))
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                saved = True
        return _sender_page(sender_id, form=form, error=error, saved=saved), status

    @bp.post("/senders/<int:sender_id>/dkim")
    def sender_dkim(sender_id: int):
        """A new key: the old one stops being used at once, so the page says to publish the
        new record first (a new selector lets both records live in DNS meanwhile)."""
        algorithm = request.form.get("dkim_algorithm", "rsa")
        if algorithm not in KEY_ALGORITHMS:
            return _sender_page(sender_id, error=i18n.gettext_("dkim_algorithm: one of rsa, ed25519")), 400
        panel().platform.senders.save(id=sender_id, dkim_algorithm=algorithm)
        return redirect(url_for("admin.sender", sender_id=sender_id, rotated=1))

    @bp.post("/senders/<int:sender_id>/assign")
    def sender_assign(sender_id: int):
        return _assign(sender_id, True)

    @bp.post("/senders/<int:sender_id>/unassign")
    def sender_unassign(sender_id: int):
        return _assign(sender_id, False)

    @bp.post("/senders/<int:sender_id>/delete")
    def sender_delete(sender_id: int):
        panel().platform.senders.set_deleted(sender_id, True)
        return redirect(url_for("admin.sender", sender_id=sender_id))

    @bp.post("/senders/<int:sender_id>/undelete")
    def sender_undelete(sender_id: int):
        panel().platform.senders.set_deleted(sender_id, False)
        return redirect(url_for("admin.sender", sender_id=sender_id))


def _assign(sender_id: int, allowed: bool):
    ctx = panel()
    account = _find_account(request.form.get("account", ""))
    if account is None:
        return _sender_page(sender_id, assign_error=i18n.gettext_(
            "account: no account with this ID or name")), 400
    try:
        ctx.platform.senders.assign(sender_id, account["id"], allowed)
    except NotFound as exc:  # a deleted sender
        return _sender_page(sender_id, assign_error=exc.message), 404
    g.audit_account = account["id"]
    return redirect(url_for("admin.sender", sender_id=sender_id))


def _find_account(text: str) -> dict | None:
    """An account by its ID or its name."""
    text = text.strip()
    accounts = panel().platform.accounts
    if text.isdigit():
        try:
            return accounts.get(int(text))
        except NotFound:
            return None
    return accounts.collection.find_one({"name": text}, {"_id": 0, "id": 1, "name": 1}) if text else None


def _sender_page(sender_id: int, form: dict | None = None, error: str | None = None,
                 assign_error: str | None = None, saved: bool = False) -> str:
    ctx = panel()
    sender = public(ctx.platform.senders.get(sender_id, include_deleted=True))
    names = {a["id"]: a["name"] for a in ctx.platform.accounts.collection.find(
        {"id": {"$in": sender["accounts"] or []}}, {"_id": 0, "id": 1, "name": 1})}
    return render_template("admin/sender.html", sender=sender, form=form or _as_form(sender), error=error,
                           assign_error=assign_error, saved=saved, accounts=[(i, names.get(i, "?"))
                                                                             for i in sender["accounts"] or []],
                           rotated=bool(request.args.get("rotated")), algorithms=KEY_ALGORITHMS)


def _form() -> dict[str, str]:
    return {k: request.form.get(k, "").strip() for k in FIELDS}


def _as_form(sender: dict) -> dict[str, str]:
    return {k: (" ".join(sender.get(k) or []) if k == "ips" else sender.get(k) or "") for k in FIELDS}


def _values(form: dict[str, str]) -> dict:
    """The form as Senders.save's arguments: IPs separated by spaces, commas or new lines."""
    values = {k: form[k] for k in FIELDS if k != "ips"}
    values["ips"] = [ip for ip in re.split(r"[\s,;]+", form["ips"]) if ip]
    return values
