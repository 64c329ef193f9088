"""webadmin's MTA rules page: the rules akmtad applies (main.json's defaults with the newest
saved version over them), a form to change them (domain/mta_rules.py checks, versions and
refuses a stale save), and the saved versions with who saved them and when."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain.errors import Conflict, Invalid, Unavailable
from altcraft.domain.mta_rules import check, effective
from altcraft.mta import control_client
from altcraft.web import i18n
from altcraft.web.admin import mta_form
from altcraft.web.app import panel

HISTORY = 20


def add_routes(bp: Blueprint) -> None:
    @bp.route("/mta/rules", methods=["GET", "POST"])
    def mta_rules():
        ctx = panel()
        store = ctx.platform.mta_rules
        current = _dated(store.get())
        values = mta_form.to_form(effective(ctx.config.MTA, check(current["rules"]) if current["version"] else None))
        base_version = current["version"]
        error, field_errors, status = None, {}, 200
        if request.method == "POST":
            values = dict(request.form)
            base_version = _int(request.form.get("base_version", ""))
            posted = None
            try:
                posted = mta_form.parse(request.form)
                rules = mta_form.changed_only(check(posted.rules), ctx.config.MTA)
                saved = store.save(rules, base_version=base_version, saved_by=g.user["login"])
            except Invalid as exc:
                name = posted.form_field(exc.field) if posted else exc.field
                field_errors[name] = exc.message
                error, status = i18n.gettext_("Nothing was saved: %(reason)s", reason=exc.message), 400
            except Conflict:
                error = i18n.gettext_("Someone else changed the MTA rules since this page was opened (version "
                                      "%(version)d now): nothing was saved. Reload the page and make the change "
                                      "again.", version=store.version())
                status = 409
            else:
                g.audit_object = ("mta_rules", saved["version"])
                g.audit_changes = {"base_version": base_version, "saved": saved["rules"]}  # not the whole form
                return redirect(url_for("admin.mta_rules", saved=saved["version"]))
        try:
            in_force = control_client.rules_in_force(ctx.config)
        except Unavailable:
            in_force = None
        return render_template(
            "admin/mta_rules.html", values=values, base_version=base_version, current=current,
            history=[_dated(v) for v in store.history(HISTORY)], in_force=in_force, error=error, field_errors=field_errors,
            saved=request.args.get("saved", ""),
            bounce_rows=mta_form.row_count(values, "BOUNCE_PATTERNS"),
            lock_rows=mta_form.row_count(values, "LOCK_RULES")), status


def _dated(version: dict) -> dict:
    stamp = version.get("saved_at")
    return {**version, "saved_at": datetime.fromtimestamp(stamp, timezone.utc) if stamp else None}


def _int(text: str) -> int:
    return int(text) if text.strip().isdigit() else -1
