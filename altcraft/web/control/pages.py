"""webcontrol's pages: dashboard, profile databases, profiles, the profile card; segments
(segment_pages.py), templates (template_pages.py), campaigns and their reports
(campaign_pages.py) and imports (import_pages.py) are added to the same blueprint.

Every page is of the signed-in user's account: ids in a URL are looked up in that account's
own database, so another account's ids are simply not found (404). The rules (validation,
keys, normalisation) are the domain's, the same the API applies.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain.errors import Conflict, DomainError, Invalid, NotFound
from altcraft.domain.events import DELIVERY_KINDS
from altcraft.domain.reports import profile_timeline
from altcraft.domain.subscriptions import STATUSES
from altcraft.web.app import panel, protect

PAGE_SIZE = 50
TIMELINE_SIZE = 50
SEARCH = ("email", "phone", "key", "status")  # the profile list's filters (Profiles.page)
DASHBOARD_DAYS = 30
# final outcomes the MTA reports for a message; "sends" on the dashboard is their sum
SEND_OUTCOMES = tuple(k for k in DELIVERY_KINDS if k != "deferred")


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _account_id() -> int:
    return g.account["id"]


def blueprint() -> Blueprint:
    bp = protect(Blueprint("control", __name__, template_folder="templates"))

    @bp.get("/dashboard")
    def dashboard():
        ctx = panel()
        account_id = _account_id()
        campaigns = ctx.platform.campaigns.recent(account_id, limit=10)
        today = int(time.time()) // 86400 * 86400
        since = today - (DASHBOARD_DAYS - 1) * 86400
        hours = ctx.hourly_stats.get(account_id, since, today + 86400)
        days = {since + i * 86400: {"sent": 0, "delivered": 0, "open": 0, "click": 0}
                for i in range(DASHBOARD_DAYS)}
        for hour in hours:
            day = int(datetime.strptime(hour["hour"], "%Y-%m-%dT%H:00:00Z")
                      .replace(tzinfo=timezone.utc).timestamp()) // 86400 * 86400
            slot = days.get(day)
            if slot is None:
                continue
            slot["sent"] += sum(hour.get(k, {}).get("all", 0) for k in SEND_OUTCOMES)
            slot["delivered"] += hour.get("delivered", {}).get("all", 0)
            slot["open"] += hour.get("open", {}).get("human", 0)
            slot["click"] += hour.get("click", {}).get("human", 0)
        x = sorted(days)
        values = [[days[d][k] for d in x] for k in ("sent", "delivered", "open", "click")]
        totals = {k: sum(days[d][k] for d in x) for k in ("sent", "delivered", "open", "click")}
        return render_template("control/dashboard.html", campaigns=campaigns, x=x, values=values,
                               totals=totals, days=DASHBOARD_DAYS)

    # -- profile databases ----------------------------------------------------------------
    @bp.route("/databases", methods=["GET", "POST"])
    def databases():
        service = panel().platform.databases(_account_id())
        form_error, form = None, {"name": "", "key": "email"}
        status = 200
        if request.method == "POST":
            form = {"name": request.form.get("name", "").strip(), "key": request.form.get("key", "email")}
            try:
                service.add(form["name"], key=form["key"])
            except DomainError as exc:
                form_error, status = _message(exc), exc.status
            else:
                if not _htmx():
                    return redirect(url_for("control.databases"))  # post/redirect/get
                form = {"name": "", "key": "email"}
        template = "control/_databases.html" if _htmx() else "control/databases.html"
        return render_template(template, databases=service.list(), form=form,
                               form_error=form_error), status

    # -- profiles --------------------------------------------------------------------------
    @bp.get("/databases/<int:db_id>/profiles")
    def profiles(db_id: int):
        service = panel().platform.profiles(_account_id(), db_id)
        args = {"db_id": db_id, "after": request.args.get("after") or None}
        for name in SEARCH:
            args[name] = request.args.get(name, "").strip() or None
        search_error, status = None, 200
        try:
            items, next_after = service.page(
                after=args["after"], limit=PAGE_SIZE, email_prefix=args["email"], phone_prefix=args["phone"],
                key_value=args["key"], status=args["status"])
        except Invalid as exc:  # a search value the domain cannot read: named by its field
            # htmx swaps only a 2xx answer into the table
            items, next_after, status = [], None, 200 if _htmx() else exc.status
            search_error = {_search_field(exc, args): exc.reason}
        template = "control/_profiles.html" if _htmx() else "control/profiles.html"
        return render_template(template, database=service.database, profiles=items,
                               next_after=next_after, args=args, form={}, form_error=None,
                               search_error=search_error or {}, statuses=STATUSES), status

    @bp.post("/databases/<int:db_id>/profiles")
    def profile_add(db_id: int):
        service = panel().platform.profiles(_account_id(), db_id)
        data = {k: v.strip() for k, v in request.form.items()
                if k in service.database.fields and v.strip()}
        try:
            profile = service.add(data)
        except DomainError as exc:
            items, next_after = service.page(limit=PAGE_SIZE)
            return render_template("control/profiles.html", database=service.database, profiles=items,
                                   next_after=next_after, args={"db_id": db_id, **dict.fromkeys(SEARCH)},
                                   form=data, form_error=_message(exc), search_error={},
                                   statuses=STATUSES), exc.status
        return redirect(url_for("control.profile", db_id=db_id, profile_id=profile["id"]))

    def _card(service, profile: dict, status: int = 200, **extra):
        ctx = panel()
        events = profile_timeline(ctx.analytics(), _account_id(), profile["id"], limit=TIMELINE_SIZE)
        context = {"form": {k: "" if v is None else str(v) for k, v in profile["data"].items()},
                   "field_errors": {}, "form_error": None, "saved": None, **extra}
        return render_template("control/profile.html", database=service.database, profile=profile,
                               events=events, timeline_size=TIMELINE_SIZE, **context), status

    @bp.get("/databases/<int:db_id>/profiles/<profile_id>")
    def profile(db_id: int, profile_id: str):
        service = panel().platform.profiles(_account_id(), db_id)
        return _card(service, service.get(profile_id=profile_id))

    @bp.post("/databases/<int:db_id>/profiles/<profile_id>")
    def profile_edit(db_id: int, profile_id: str):
        """The card's fields, changed: the domain validates every value (the API's rules);
        an error is shown under its field and nothing is stored."""
        service = panel().platform.profiles(_account_id(), db_id)
        current = service.get(profile_id=profile_id)  # another account's: 404
        form = {k: request.form.get(k, "").strip() for k in service.database.fields}
        # only what changed is sent: an emptied field keeps its value (the domain's update
        # sets the values given)
        changes = {k: v for k, v in form.items() if v and v != str(current["data"].get(k, ""))}
        try:
            profile = service.update(changes, profile_id=profile_id)
        except Invalid as exc:
            return _card(service, current, exc.status, form=form, field_errors={exc.field: exc.reason})
        except Conflict as exc:
            return _card(service, current, exc.status, form=form,
                         field_errors={service.database.key: exc.message})
        return _card(service, profile, saved="fields")

    @bp.post("/databases/<int:db_id>/profiles/<profile_id>/unsubscribe")
    def profile_unsubscribe(db_id: int, profile_id: str):
        """One subscription set to unsubscribed by the one writer of subscriptions,
        Profiles.set_subscription (its ordering rule applies as for every other writer)."""
        service = panel().platform.profiles(_account_id(), db_id)
        current = service.get(profile_id=profile_id)  # another account's: 404
        resource = request.form.get("resource_id", "")
        try:
            if not resource.isdigit() or int(resource) <= 0:
                raise Invalid("resource_id", "a positive integer")
            outcome = service.set_subscription(profile_id, int(resource), request.form.get("channel", ""),
                                               "unsubscribed")
        except Invalid as exc:
            return _card(service, current, exc.status, form_error=exc.message)
        if outcome == "no-profile":
            raise NotFound("profile not found")
        return _card(service, service.get(profile_id=profile_id), saved=outcome)

    @bp.get("/databases/<int:db_id>/profiles/<profile_id>/delete")
    def profile_delete_confirm(db_id: int, profile_id: str):
        service = panel().platform.profiles(_account_id(), db_id)
        return render_template("control/profile_delete.html", database=service.database,
                               profile=service.get(profile_id=profile_id))

    @bp.post("/databases/<int:db_id>/profiles/<profile_id>/delete")
    def profile_delete(db_id: int, profile_id: str):
        panel().platform.profiles(_account_id(), db_id).delete(profile_id=profile_id)
        return redirect(url_for("control.profiles", db_id=db_id))

    from altcraft.web.control import (abtest_pages, automation_pages, campaign_pages, import_pages, scenario_pages,
                                      segment_pages, template_pages)
    segment_pages.register(bp, _account_id)
    template_pages.register(bp, _account_id)
    campaign_pages.register(bp, _account_id)
    import_pages.register(bp, _account_id)
    automation_pages.register(bp, _account_id)
    scenario_pages.register(bp, _account_id)
    abtest_pages.register(bp, _account_id)
    return bp


def _search_field(exc: Invalid, args: dict) -> str:
    """Which search box a refused search value came from (the key's own field name is also
    a search box's name, so it is told apart by what was typed)."""
    if exc.field == "status":
        return "status"
    if exc.field == "phone" and args["phone"] and not any(c.isdigit() for c in args["phone"]):
        return "phone"
    return "key"


def _message(exc: DomainError) -> str:
    return exc.message  # names the field (Invalid) or the conflict
