"""webadmin's account users pages (reached from an account's page): list and add, edit roles,
language, name and e-mail, reset the password (the password policy applies), lock and unlock.
The rules are the domain's (Users), the same the admin API applies."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError
from altcraft.domain.users import LANGS, ROLES
from altcraft.web import i18n
from altcraft.web.app import panel


def _fields() -> dict:
    return {"name": request.form.get("name", "").strip(), "email": request.form.get("email", "").strip(),
            "lang": request.form.get("lang", "en"), "roles": request.form.getlist("roles")}


def add_routes(bp: Blueprint) -> None:
    def options() -> dict:
        return {"roles": ROLES, "langs": [(code, code) for code in LANGS]}

    @bp.route("/accounts/<int:account_id>/users", methods=["GET", "POST"])
    def account_users(account_id: int):
        ctx = panel()
        account = ctx.platform.accounts.get(account_id)  # 404 when missing
        form = {"login": "", "name": "", "email": "", "lang": "en", "roles": ["viewer"]}
        error, status = None, 200
        if request.method == "POST":
            form = {**_fields(), "login": request.form.get("login", "").strip()}
            try:
                user = ctx.platform.users.add(account_id, form["login"], request.form.get("password", ""),
                                              **{k: form[k] for k in ("name", "email", "lang", "roles")})
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                g.audit_object = ("user", user["id"])
                return redirect(url_for("admin.account_user", account_id=account_id, user_id=user["id"]))
        return render_template("admin/users.html", account=account, users=ctx.platform.users.list(account_id),
                               form=form, error=error, **options()), status

    @bp.route("/accounts/<int:account_id>/users/<int:user_id>", methods=["GET", "POST"])
    def account_user(account_id: int, user_id: int):
        ctx = panel()
        account = ctx.platform.accounts.get(account_id)
        ctx.platform.users.get(user_id, account_id)  # 404 for another account's user
        error, status, saved = None, 200, None
        if request.method == "POST":
            try:
                ctx.platform.users.update(user_id, **_fields())
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                saved = i18n.gettext_("Saved.")
        return _user_page(account, ctx.platform.users.get(user_id), error=error, saved=saved, **options()), status

    @bp.post("/accounts/<int:account_id>/users/<int:user_id>/password")
    def account_user_password(account_id: int, user_id: int):
        ctx = panel()
        account = ctx.platform.accounts.get(account_id)
        ctx.platform.users.get(user_id, account_id)
        new = request.form.get("password", "")
        try:
            if new != request.form.get("password_repeat", ""):  # a name the journal's redaction knows
                return _user_page(account, ctx.platform.users.get(user_id), **options(),
                                  password_error=i18n.gettext_("The new password and its repetition differ.")), 400
            ctx.platform.users.update(user_id, password=new)  # the password policy applies
        except DomainError as exc:
            return _user_page(account, ctx.platform.users.get(user_id), password_error=exc.message,
                              **options()), exc.status
        return _user_page(account, ctx.platform.users.get(user_id), saved=i18n.gettext_("The password is changed."),
                          **options())

    def _active(account_id: int, user_id: int, value: bool):
        panel().platform.users.get(user_id, account_id)
        panel().platform.users.update(user_id, active=value)
        return redirect(url_for("admin.account_user", account_id=account_id, user_id=user_id))

    @bp.post("/accounts/<int:account_id>/users/<int:user_id>/lock")
    def account_user_lock(account_id: int, user_id: int):
        return _active(account_id, user_id, False)

    @bp.post("/accounts/<int:account_id>/users/<int:user_id>/unlock")
    def account_user_unlock(account_id: int, user_id: int):
        return _active(account_id, user_id, True)


def _user_page(account: dict, user: dict, **values):
    return render_template("admin/user.html", account=account, user=user, **values)
