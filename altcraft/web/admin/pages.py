"""webadmin's pages: the TOTP second step and enrolment, and accounts (list, create, edit,
activate/deactivate, freeze/unfreeze, delete). Every rule is the domain's (Accounts, Admins),
the same the admin API applies."""

from __future__ import annotations

import base64
import io
import json

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain import totp as otp
from altcraft.domain.errors import DomainError, Invalid
from altcraft.web import i18n
from altcraft.web.app import after_sign_in, not_a_change, locked_message, open_session, panel, pending_principal, protect

PAGE_SIZE = 50
SECOND_STEP = frozenset({"admin.totp", "admin.totp_enrol"})


def qr_data_uri(text: str) -> str:
    """The QR code of `text` as an SVG data: URI (an <img> the CSP's img-src allows)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def blueprint() -> Blueprint:
    bp = protect(Blueprint("admin", __name__, template_folder="templates"), open_endpoints=SECOND_STEP)

    # -- the second sign-in step ---------------------------------------------------------
    @bp.route("/signin/code", methods=["GET", "POST"])
    @not_a_change  # a sign-in step: the one-use code is spent, nothing else changes
    def totp():
        admin = pending_principal()
        if admin is None or not admin.get("totp_secret"):
            return redirect(url_for("web.signin"))
        error, status = None, 200
        if request.method == "POST":
            ctx = panel()
            locked = ctx.throttle.locked_for(admin["login"])
            if locked:
                error, status = locked_message(locked), 429
            elif ctx.platform.admins.check_totp(admin["id"], request.form.get("code", "")):
                ctx.throttle.succeeded(admin["login"])
                open_session(ctx.platform.admins.get(admin["id"]))
                return after_sign_in()
            else:
                ctx.throttle.failed(admin["login"])
                error, status = i18n.gettext_("Wrong or already used code."), 401
        return render_template("admin/totp.html", error=error), status

    @bp.route("/totp", methods=["GET", "POST"])
    def totp_enrol():
        """Enrolment: a new secret as a QR code and as text; it becomes the admin's when a
        code of it is typed. Reached signed in, or after the password when TOTP is required
        and the admin has none yet."""
        admin = g.user or pending_principal()
        if admin is None:
            return redirect(url_for("web.signin"))
        if g.user is None and admin.get("totp_secret"):
            return redirect(url_for("admin.totp"))
        ctx = panel()
        error, status, done = None, 200, False
        if request.method == "POST":
            locked = ctx.throttle.locked_for(admin["login"]) if g.user is None else 0
            if locked:
                error, status = locked_message(locked), 429
            elif ctx.platform.admins.confirm_totp(admin["id"], request.form.get("code", "")):
                if g.user is None:
                    ctx.throttle.succeeded(admin["login"])
                    open_session(ctx.platform.admins.get(admin["id"]))
                    return after_sign_in()
                done = True
            else:
                if g.user is None:
                    ctx.throttle.failed(admin["login"])
                error, status = i18n.gettext_("Wrong code: type the code the app shows now."), 400
        secret = None
        if not done:
            secret = ctx.platform.admins.get(admin["id"]).get("totp_pending") \
                or ctx.platform.admins.begin_totp(admin["id"])
        uri = otp.provisioning_uri(secret, admin["login"]) if secret else ""
        return render_template("admin/totp_enrol.html", error=error, done=done, secret=secret,
                               qr=qr_data_uri(uri) if secret else "", enrolled=bool(admin.get("totp_secret"))), status

    # -- accounts --------------------------------------------------------------------------
    @bp.get("/accounts")
    def accounts():
        after = request.args.get("after", "")
        after_id = int(after) if after.isdigit() else 0
        items, total = panel().platform.accounts.list(from_id=after_id, limit=PAGE_SIZE)
        next_after = items[-1]["id"] if len(items) == PAGE_SIZE else None
        return render_template("admin/accounts.html", accounts=items, total=total, next_after=next_after)

    @bp.route("/accounts/new", methods=["GET", "POST"])
    def account_new():
        form, error, status = {"name": "", "title": "", "tz": "UTC", "tariff": "default"}, None, 200
        if request.method == "POST":
            form = _form()
            try:
                account = panel().platform.accounts.save(
                    name=form["name"], title=form["title"] or None, tz=form["tz"] or None,
                    tariff=form["tariff"] or None)
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                g.audit_object = ("account", account["id"])
                return redirect(url_for("admin.account", account_id=account["id"]))
        return render_template("admin/account_new.html", form=form, error=error), status

    @bp.route("/accounts/<int:account_id>", methods=["GET", "POST"])
    def account(account_id: int):
        service = panel().platform.accounts
        service.get(account_id)  # 404 when missing
        form, error, status, saved = None, None, 200, False  # None: the stored account (_account_page)
        if request.method == "POST":
            form = _form()
            try:
                service.save(id=account_id, name=form["name"] or None, title=form["title"],
                             tz=form["tz"] or None, tariff=form["tariff"])
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                saved = True
        return _account_page(account_id, form, error=error, saved=saved, status=status)

    @bp.post("/accounts/<int:account_id>/vsenders")
    def vsender_add(account_id: int):
        """A virtual sender from a name and its rules as the admin API takes them (JSON),
        checked by the domain: each refusal names the rule and field."""
        platform = panel().platform
        platform.accounts.get(account_id)  # 404 when missing
        name, text = request.form.get("vsender_name", ""), request.form.get("vsender_rules", "")
        try:
            try:
                rules = json.loads(text)
            except ValueError as exc:
                raise Invalid("rules", f"not JSON: {exc}") from None
            doc = platform.vsenders.add(account_id, name, rules)
        except DomainError as exc:
            return _account_page(account_id, vsender_error=exc.message, status=exc.status,
                                 vsender_form={"name": name, "rules": text})
        g.audit_object = ("vsender", doc["id"])
        return redirect(url_for("admin.account", account_id=account_id))

    @bp.post("/accounts/<int:account_id>/vsenders/<int:vsender_id>/delete")
    def vsender_delete(account_id: int, vsender_id: int):
        try:
            panel().platform.vsenders.delete(account_id, vsender_id)
        except DomainError as exc:  # used by a campaign under way (not found: 404)
            if exc.status == 404:
                raise
            return _account_page(account_id, vsender_error=exc.message, status=exc.status)
        return redirect(url_for("admin.account", account_id=account_id))

    def _flag(account_id: int, flag: str, value: bool):
        panel().platform.accounts.set_flag(account_id, flag, value)
        return redirect(url_for("admin.account", account_id=account_id))

    @bp.post("/accounts/<int:account_id>/activate")
    def account_activate(account_id: int):
        return _flag(account_id, "active", True)

    @bp.post("/accounts/<int:account_id>/deactivate")
    def account_deactivate(account_id: int):
        return _flag(account_id, "active", False)

    @bp.post("/accounts/<int:account_id>/freeze")
    def account_freeze(account_id: int):
        return _flag(account_id, "frozen", True)

    @bp.post("/accounts/<int:account_id>/unfreeze")
    def account_unfreeze(account_id: int):
        return _flag(account_id, "frozen", False)

    @bp.route("/accounts/<int:account_id>/delete", methods=["GET", "POST"])
    def account_delete(account_id: int):
        """Deletes the account, its users, tokens and its data, once its name is typed."""
        ctx = panel()
        account = ctx.platform.accounts.get(account_id)
        error, status = None, 200
        if request.method == "POST":
            if request.form.get("confirm", "").strip() != account["name"]:
                error, status = i18n.gettext_("Type the account's name to delete it."), 400
            else:
                ctx.platform.accounts.delete(account_id)
                ctx.platform.drop_account_data(account_id)
                return redirect(url_for("admin.accounts"))
        return render_template("admin/account_delete.html", account=account, error=error), status

    from altcraft.web.admin.journal import add_routes as journal_routes
    journal_routes(bp)
    from altcraft.web.admin import mta_pages, queue_pages, sender_pages
    mta_pages.add_routes(bp)
    sender_pages.add_routes(bp)
    queue_pages.add_routes(bp)
    from altcraft.web.admin import stoplist_pages
    stoplist_pages.add_routes(bp)
    from altcraft.web.admin import token_pages
    token_pages.add_routes(bp)
    from altcraft.web.admin import user_pages
    user_pages.add_routes(bp)
    from altcraft.web.admin import system_pages
    system_pages.add_routes(bp)
    return bp


VSENDER_EXAMPLE = '[{"match": "to_domain", "values": ["gmail.com"], "senders": [{"id": 1, "weight": 1}]},\n' \
                  ' {"match": "default", "senders": [{"id": 1, "weight": 1}]}]'


def _account_page(account_id: int, form: dict | None = None, error: str | None = None, saved: bool = False,
                  status: int = 200, vsender_error: str | None = None, vsender_form: dict | None = None):
    account = panel().platform.accounts.get(account_id)
    if form is None:
        form = {"name": account["name"], "title": account.get("title") or "", "tz": account.get("tz") or "UTC",
                "tariff": account.get("tariff") or "default"}
    return render_template("admin/account.html", account=account, form=form, error=error, saved=saved,
                           vsender_error=vsender_error,
                           vsender_form=vsender_form or {"name": "", "rules": VSENDER_EXAMPLE},
                           **_virtual_senders(account_id)), status


def _virtual_senders(account_id: int) -> dict:
    """The account's virtual senders and the names of the senders their rules name."""
    platform = panel().platform
    vsenders = platform.vsenders.list(account_id)
    ids = {s["id"] for v in vsenders for rule in v["rules"] for s in rule["senders"]}
    names = {d["id"]: d["name"] for d in platform.senders.collection.find({"id": {"$in": sorted(ids)}},
                                                                        {"id": 1, "name": 1})}
    matches = {"from_domain": i18n.gettext_("sender's domain"), "to_domain": i18n.gettext_("recipient's domain"),
               "from_email": i18n.gettext_("sender's address"), "default": i18n.gettext_("otherwise")}
    return {"vsenders": vsenders, "sender_names": names, "matches": matches}


def _form() -> dict[str, str]:
    return {k: request.form.get(k, "").strip() for k in ("name", "title", "tz", "tariff")}



