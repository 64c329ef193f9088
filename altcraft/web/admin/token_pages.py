"""webadmin's API token pages: create (the token is in that one answer and nowhere after:
the control database keeps its hash and its first characters), list filtered by those
first characters, revoke after a confirmation. The rules are the domain's (Tokens)."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError, Invalid
from altcraft.web import i18n
from altcraft.web.app import panel

LIST_LIMIT = 100


def _optional_id(name: str) -> int | None:
    text = request.form.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise Invalid(name, "a number")
    return int(text)


def add_routes(bp: Blueprint) -> None:
    def page(status: int = 200, **values):
        prefix = request.args.get("prefix", "").strip()
        values.setdefault("form", {"scope": "account", "account_id": request.args.get("account_id", ""),
                                   "user_id": "", "name": ""})
        scopes = [("account", i18n.gettext_("An account's")), ("admin", i18n.gettext_("Administrator"))]
        return render_template("admin/tokens.html", tokens=panel().platform.tokens.list(prefix, LIST_LIMIT),
                               prefix=prefix, scopes=scopes, **values), status

    @bp.get("/tokens")
    def tokens():
        return page()

    @bp.post("/tokens")
    def token_create():
        form = {k: request.form.get(k, "").strip() for k in ("scope", "account_id", "user_id", "name")}
        try:
            if form["scope"] not in ("admin", "account"):
                raise Invalid("scope", "admin or account")
            account_id = _optional_id("account_id")
            if form["scope"] == "account" and account_id is None:
                raise Invalid("account_id", "missing (required for an account's token)")
            token, info = panel().platform.tokens.create(
                form["scope"], account_id if form["scope"] == "account" else None,  # type: ignore[arg-type]
                _optional_id("user_id"), form["name"][:200])
        except DomainError as exc:
            return page(exc.status, form=form, error=exc.message)
        g.audit_object = ("token", info["id"])
        # shown in this answer only: the page is not cached and nothing stores the token
        return page(created=info, token=token)

    @bp.route("/tokens/<int:token_id>/revoke", methods=["GET", "POST"])
    def token_revoke(token_id: int):
        tokens = panel().platform.tokens
        token = tokens.get(token_id)  # 404 when missing
        if request.method == "POST":
            tokens.revoke(token_id)
            return redirect(url_for("admin.tokens", prefix=token.get("prefix") or ""))
        return render_template("admin/token_revoke.html", token=token)
