"""webcontrol's campaign pages: the list (live while a campaign runs), the wizard (which also
edits a campaign), a campaign's page with its transitions, clone and delete, and its report
(funnel, hourly chart, clicks per link, CSV).

The rules are the domain's (altcraft.domain.campaigns): the wizard's values go to
Campaigns.add, the references are checked by Platform.check_campaign_refs as the API checks
them, and the buttons shown are allowed_transitions of the state; a transition the guard
refuses meanwhile (another user, the worker) is shown with the domain's message. Only the
turning of form text into the domain's arguments lives here.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from altcraft.domain.campaigns import EDITABLE, TRANSITIONS, allowed_transitions
from altcraft.domain.errors import DomainError, Invalid
from altcraft.domain.reports import Reports
from altcraft.stores.analytics import Analytics
from altcraft.web import i18n
from altcraft.web.app import panel
from altcraft.web.control.sender_choice import sender_ids, sender_options
from altcraft.web.i18n import gettext_

RUNNING = ("scheduled", "sending")  # the list and the page refresh themselves while one is so
REFRESH_SECONDS = 2
PAGE_SIZE = 50
SCHEDULES = ("now", "at", "cron")
# the domain's field of an Invalid -> the wizard's field it is shown under
FIELD_OF = {"name": "name", "db_id": "db_id", "segment_id": "segment_id", "template_id": "template_id",
            "sender_id": "sender", "vsender_id": "sender", "resource_id": "resource_id",
            "schedule": "schedule", "schedule.at": "at", "schedule.cron": "cron"}
# the report's series on the chart: (label, colour, kind, human only)
CHART = (("delivered", "#1f5fbf", "delivered", False), ("opens", "#05603a", "open", True),
         ("clicks", "#b54708", "click", True))


def _int(form, name: str, what: str) -> int:
    raw = form.get(name, "").strip()
    if not raw.isdigit() or int(raw) <= 0:
        raise Invalid(name, what)
    return int(raw)


def campaign_args(form, tz: str | None) -> dict[str, Any]:
    """The wizard's fields as the arguments of Campaigns.add (Invalid naming a bad field)."""
    args: dict[str, Any] = {"name": form.get("name", "")}
    args["db_id"] = _int(form, "db_id", "choose a profile database")
    args["segment_id"] = _int(form, "segment_id", "choose a segment")
    args["template_id"] = _int(form, "template_id", "choose a template")
    args.update(sender_ids(form.get("sender", "")))
    resource = form.get("resource_id", "1").strip()
    args["resource_id"] = int(resource) if resource.lstrip("-").isdigit() else resource  # the domain names it
    when = form.get("schedule", "now")
    if when == "cron":
        args["schedule"] = {"type": "regular", "cron": form.get("cron", "").strip()}
    elif when == "at":
        raw = form.get("at", "").strip()
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            args["schedule"] = {"type": "once", "at": raw}  # the domain names it
        else:
            if moment.tzinfo is None:  # the form's time is in the account's time zone
                moment = moment.replace(tzinfo=ZoneInfo(tz or "UTC"))
            args["schedule"] = {"type": "once", "at": moment.isoformat()}
    else:
        args["schedule"] = {"type": "once", "at": None}
    return args


def campaign_form(doc: dict[str, Any], tz: str | None) -> dict[str, str]:
    """A stored campaign as the wizard's fields (the inverse of campaign_args)."""
    form = {"name": doc["name"], "segment_id": str(doc.get("segment_id") or ""),
            "template_id": str(doc.get("template_id") or ""), "resource_id": str(doc.get("resource_id", 1)),
            "sender": f"v:{doc['vsender_id']}" if doc.get("vsender_id") else f"s:{doc.get('sender_id') or ''}",
            "schedule": "now", "at": "", "cron": ""}
    schedule = doc.get("schedule") or {}
    if schedule.get("type") == "regular":
        form.update(schedule="cron", cron=schedule.get("cron", ""))
    elif schedule.get("at"):
        moment = datetime.fromisoformat(str(schedule["at"]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        # datetime-local shows the account's wall-clock time, without seconds or zone
        form.update(schedule="at", at=moment.astimezone(ZoneInfo(tz or "UTC")).strftime("%Y-%m-%dT%H:%M"))
    return form


def _hour_epoch(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:00:00Z").replace(tzinfo=timezone.utc).timestamp())


def chart_data(timeline: list[dict[str, Any]]) -> tuple[list[int], list[list[int]]]:
    """Every hour from the first to the last with events (zeros between), one series per
    CHART entry; a lone hour gets its neighbours so that the line has a width."""
    counts = {_hour_epoch(h["hour"]): h for h in timeline}
    if not counts:
        return [], [[] for _ in CHART]
    first, last = min(counts), max(counts)
    if first == last:
        first, last = first - 3600, last + 3600
    x = list(range(first, last + 1, 3600))
    values = [[counts.get(hour, {}).get(kind, {}).get("human" if human else "all", 0) for hour in x]
              for _label, _colour, kind, human in CHART]
    return x, values


def _cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts with one of these as a formula
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def report_csv(campaign: dict[str, Any], report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["campaign", campaign["id"], _cell(campaign["name"])])
    w.writerow([])
    w.writerow(["metric", "all", "human"])
    for name in ("sent", "delivered", "deferred", "dropped", "unsubscribed"):
        w.writerow([name, report[name], ""])
    w.writerow(["bounced_hard", report["bounced"]["hard"], ""])
    w.writerow(["bounced_soft", report["bounced"]["soft"], ""])
    for kind in ("opened", "clicked"):
        for measure in ("unique", "total"):
            w.writerow([f"{kind}_{measure}", report[kind][measure]["all"], report[kind][measure]["human"]])
    w.writerow([])
    w.writerow(["link_id", "url", "unique_all", "unique_human", "total_all", "total_human"])
    for link in report["links"]:
        c = link["clicks"]
        w.writerow([link["link_id"], _cell(link["url"]), c["unique"]["all"], c["unique"]["human"],
                    c["total"]["all"], c["total"]["human"]])
    w.writerow([])
    w.writerow(["hour_utc", "kind", "all", "human"])
    for hour in report["timeline"]:
        for kind, counts in sorted((k, v) for k, v in hour.items() if k != "hour"):
            w.writerow([hour["hour"], kind, counts["all"], counts["human"]])
    return out.getvalue()


def wizard_choices(account: int, db_id: int | None) -> dict[str, list[tuple[Any, str]]]:
    """The campaign wizards' options as (value, label) (campaigns and A/B tests): a sender is
    "s:<id>", a virtual one "v:<id>"; the segments of database `db_id` (none without one)."""
    platform = panel().platform
    return {
        "databases": [(d.id, d.name) for d in platform.databases(account).list()],
        "segments": [(s["id"], s["name"]) for s in platform.segments(account).list() if s["db_id"] == db_id],
        "templates": [(t["id"], t["name"]) for t in platform.templates(account).list()],
        "senders": sender_options(platform, account),
    }


def register(bp: Blueprint, account_id) -> None:
    def _htmx() -> bool:
        return request.headers.get("HX-Request") == "true"

    @bp.get("/campaigns")
    def campaigns():
        service = panel().platform.campaigns
        after = request.args.get("after", type=int)
        items, next_after = service.page(account_id(), after=after, limit=PAGE_SIZE)
        live = service.any_in(account_id(), RUNNING)
        template = "control/_campaigns.html" if _htmx() else "control/campaigns.html"
        return render_template(template, campaigns=items, next_after=next_after, args={"after": after},
                               live=live, refresh=REFRESH_SECONDS)

    def _refused(exc: DomainError, field_errors: dict[str, str]) -> str | None:
        """Puts a refusal under its field; returns the message for the form's top otherwise."""
        field = FIELD_OF.get(exc.field) if isinstance(exc, Invalid) else None
        if field:
            field_errors[field] = exc.reason
            return None
        return exc.message

    @bp.route("/campaigns/new", methods=["GET", "POST"])
    def campaign_new():
        """Step 1 chooses the database (?db_id=); step 2 the rest, its segments among them."""
        account = account_id()
        platform = panel().platform
        source = request.form if request.method == "POST" else request.args
        db_id = source.get("db_id", type=int)
        database = platform.databases(account).get(db_id) if db_id is not None else None  # another's: 404
        form = {"name": "", "segment_id": "", "template_id": "", "sender": "", "resource_id": "1",
                "schedule": "now", "at": "", "cron": "", **{k: v for k, v in source.items() if k != "csrf_token"}}
        field_errors: dict[str, str] = {}
        form_error, status = None, 200
        if request.method == "POST":
            try:
                args = campaign_args(request.form, (g.account or {}).get("tz"))
                platform.check_campaign_refs(account, **{k: args[k] for k in (
                    "db_id", "segment_id", "template_id", "sender_id", "vsender_id")})
                doc = platform.campaigns.add(account, **args)
            except DomainError as exc:  # a field refused, or a reference not found (or not the account's)
                form_error, status = _refused(exc, field_errors), exc.status
            else:
                return redirect(url_for("control.campaign", campaign_id=doc["id"]))
        return render_template("control/campaign_new.html", database=database, form=form,
                               field_errors=field_errors, form_error=form_error,
                               **wizard_choices(account, db_id)), status

    @bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
    def campaign_edit(campaign_id: int):
        """The wizard's second step over a stored campaign; the domain refuses a campaign that
        is scheduled or sending (pause it first), and the form says so."""
        account = account_id()
        platform = panel().platform
        doc = platform.campaigns.get(account, campaign_id)  # another account's: 404
        tz = (g.account or {}).get("tz")
        database = platform.databases(account).get(doc["db_id"])
        form = campaign_form(doc, tz)
        field_errors: dict[str, str] = {}
        form_error, status = None, 200
        if doc["state"] not in EDITABLE:
            form_error = gettext_("The campaign is %(state)s: pause it to edit it.", state=doc["state"])
        if request.method == "POST":
            form.update({k: v for k, v in request.form.items() if k != "csrf_token"})
            try:
                args = campaign_args({**request.form.to_dict(), "db_id": str(doc["db_id"])}, tz)
                platform.check_campaign_refs(account, **{k: args[k] for k in (
                    "db_id", "segment_id", "template_id", "sender_id", "vsender_id")})
                platform.campaigns.update(account, campaign_id, **args)
            except DomainError as exc:
                form_error, status = _refused(exc, field_errors), exc.status
            else:
                return redirect(url_for("control.campaign", campaign_id=campaign_id))
        return render_template("control/campaign_new.html", database=database, form=form, editing=doc,
                               field_errors=field_errors, form_error=form_error,
                               **wizard_choices(account, doc["db_id"])), status

    @bp.post("/campaigns/<int:campaign_id>/clone")
    def campaign_clone(campaign_id: int):
        """A draft copy (the domain's clone: settings, none of the runs), opened at once."""
        copy = panel().platform.campaigns.clone(account_id(), campaign_id)
        g.audit_changes = {"clone": copy["id"]}
        return redirect(url_for("control.campaign", campaign_id=copy["id"]))

    @bp.get("/campaigns/<int:campaign_id>/delete")
    def campaign_delete_confirm(campaign_id: int):
        doc = panel().platform.campaigns.get(account_id(), campaign_id)
        return render_template("control/campaign_delete.html", campaign=doc, error=None)

    @bp.post("/campaigns/<int:campaign_id>/delete")
    def campaign_delete(campaign_id: int):
        platform = panel().platform
        try:
            platform.campaigns.delete(account_id(), campaign_id)
        except DomainError as exc:  # sending or scheduled: cancel it first (not found: 404)
            if exc.status == 404:
                raise
            doc = platform.campaigns.get(account_id(), campaign_id)
            return render_template("control/campaign_delete.html", campaign=doc, error=exc.message), exc.status
        return redirect(url_for("control.campaigns"))

    def _names(doc: dict[str, Any]) -> dict[str, str]:
        """What the campaign names, by name (a deleted one keeps its number)."""
        platform, account = panel().platform, account_id()
        lookups = {"db_id": lambda i: platform.databases(account).get(i).name,
                   "segment_id": lambda i: platform.segments(account).get(i)["name"],
                   "template_id": lambda i: platform.templates(account).get(i)["name"],
                   "sender_id": lambda i: platform.senders.for_account(i, account)["name"],
                   "vsender_id": lambda i: platform.vsenders.get(account, i)["name"]}
        names = {}
        for key, lookup in lookups.items():
            if doc.get(key) is None:
                continue
            try:
                names[key] = lookup(doc[key])
            except DomainError:
                names[key] = f"#{doc[key]}"
        return names

    def _page(campaign_id: int, error: str | None = None, status: int = 200):
        doc = panel().platform.campaigns.get(account_id(), campaign_id)  # another account's: 404
        partial = _htmx() and error is None
        template = "control/_campaign_state.html" if partial else "control/campaign.html"
        return render_template(template, campaign=doc, actions=allowed_transitions(doc["state"]),
                               editable=doc["state"] in EDITABLE, deletable=doc["state"] not in RUNNING,
                               names={} if partial else _names(doc), live=doc["state"] in RUNNING,
                               refresh=REFRESH_SECONDS, error=error), status

    @bp.get("/campaigns/<int:campaign_id>")
    def campaign(campaign_id: int):
        return _page(campaign_id)

    def _transition(name: str):
        def view(campaign_id: int):
            try:
                getattr(panel().platform.campaigns, name)(account_id(), campaign_id)
            except DomainError as exc:  # the guard refused (or not found: 404)
                if exc.status == 404:
                    raise
                return _page(campaign_id, error=exc.message, status=exc.status)
            return redirect(url_for("control.campaign", campaign_id=campaign_id))
        view.__name__ = f"campaign_{name}"
        bp.add_url_rule(f"/campaigns/<int:campaign_id>/{name}", view_func=view, methods=["POST"])

    for name in TRANSITIONS:
        _transition(name)

    def _report(campaign_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx = panel()
        doc = ctx.platform.campaigns.get(account_id(), campaign_id)  # another account's: 404, not zeros
        return doc, Reports(ctx.analytics()).campaign(account_id(), campaign_id)

    def _as_of(epoch: float) -> str:
        """The time the figures were counted, to the second, in the account's time zone."""
        tz = (g.account or {}).get("tz") if g.get("account") else None
        return format_datetime(datetime.fromtimestamp(epoch, timezone.utc), "medium",
                               tzinfo=ZoneInfo(tz or "UTC"), locale=i18n.current())

    @bp.get("/campaigns/<int:campaign_id>/report")
    def campaign_report(campaign_id: int):
        """The figures of the campaign's last count (domain/reports.py, Reports.live): when
        events arrived since, the page says when they were counted and that a recount is
        under way, and htmx asks again until it is done, then reloads the page."""
        ctx = panel()
        doc = ctx.platform.campaigns.get(account_id(), campaign_id)  # another account's: 404, not zeros
        settings = ctx.config.CLICKHOUSE_SYSTEM
        live = Reports(ctx.analytics(), opener=lambda: Analytics(settings)).live(account_id(), campaign_id)
        status = {"as_of": _as_of(live.as_of), "as_of_epoch": int(live.as_of), "recounting": live.recounting,
                  "refresh": REFRESH_SECONDS}
        if _htmx():  # the status line asking again: the whole page once the recount is done
            if not live.recounting:
                return Response("", headers={"HX-Refresh": "true"})
            return render_template("control/_report_status.html", campaign=doc, status=status)
        x, values = chart_data(live.report["timeline"])
        return render_template("control/campaign_report.html", campaign=doc, report=live.report, x=x,
                               values=values, series=CHART, status=status)

    @bp.get("/campaigns/<int:campaign_id>/report.csv")
    def campaign_report_csv(campaign_id: int):
        doc, report = _report(campaign_id)
        return Response(report_csv(doc, report), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'})
