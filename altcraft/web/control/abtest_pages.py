"""webcontrol's A/B test pages: the list of the account's A/B campaigns, the form that creates
one (the campaign wizard's fields, two to four variants, the test share, the wait and the
winner's metric), its page (state, phase, the time of the choice, the winner) and its report
(each variant's test group: sent, unique human openers and clickers; the chosen winner).

An A/B test is a campaign with `ab` settings: the form's values go to Campaigns.add (whose
abtest.settings validate them), the references, variant templates included, are checked by
Platform.check_campaign_refs as the API checks them, and the report is
reports.ab_variants, as the API's campaigns/report. Starting, pausing or cancelling one is
the campaign's page's. Only the turning of form text into the domain's arguments lives here:
the test share is typed in percent, as marketers think of it, and becomes the fraction the
domain and the API (as Altcraft's) take.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for

from altcraft.domain import abtest as ab_rules
from altcraft.domain.campaigns import allowed_transitions
from altcraft.domain.errors import DomainError, Invalid, NotFound
from altcraft.domain.reports import ab_variants
from altcraft.web.app import panel
from altcraft.web.control.campaign_pages import (FIELD_OF, PAGE_SIZE, REFRESH_SECONDS, RUNNING, campaign_args,
                                                 wizard_choices)
from altcraft.web.i18n import gettext_

SLOTS = ab_rules.MAX_VARIANTS  # variant rows on the form; empty ones are ignored
AB_FIELDS = {"ab.test_share": "test_share", "ab.wait_seconds": "wait_seconds", "ab.metric": "metric",
             "ab.variants": "variants", "ab": "variants"}


# the form's test share in percent; the domain wants a fraction strictly between 0 and 1 (some
# of the segment must be left for the winner), so 100 is refused here as the domain would
SHARE_PERCENT = (1, 99)


def share_of(text: str) -> float:
    """The form's test share, a percent of the segment ("20", "12,5", "20 %"), as the
    fraction the domain (and the API, as Altcraft's) takes: 20 -> 0.2."""
    raw = text.strip().removesuffix("%").strip().replace(",", ".")
    try:
        percent = Decimal(raw)
    except InvalidOperation:
        percent = None
    low, high = SHARE_PERCENT
    if percent is None or not percent.is_finite() or not low <= percent <= high:
        raise Invalid("ab.test_share", gettext_(
            "the test share, in percent of the segment: a number from %(low)s to %(high)s (e.g. 20)",
            low=low, high=high))
    return float(percent / 100)


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # not a number: the domain names it


def ab_args(form) -> dict[str, Any]:
    """The form's A/B part as the domain's `ab` settings. A variant row gives a subject, a
    template or (so that the domain refuses it) both; a row with neither is unused."""
    variants = []
    for i in range(SLOTS):
        subject, template = form.get(f"variant_{i}_subject", ""), form.get(f"variant_{i}_template", "").strip()
        variant: dict[str, Any] = {}
        if subject.strip():
            variant["subject"] = subject.strip()
        if template:
            variant["template_id"] = _number(template, int)
        if variant:
            variants.append(variant)
    return {"variants": variants, "test_share": share_of(form.get("test_share", "")),
            "wait_seconds": _number(form.get("wait_seconds", "").strip(), int),
            "metric": form.get("metric", "opens")}


def field_of(exc: DomainError, rows: list[int]) -> str | None:
    """The form field a refusal belongs under: ab.variants[2] is the row the third given
    variant came from (`rows`: the form rows of the variants given, in order)."""
    if not isinstance(exc, Invalid):
        return None
    if exc.field.startswith("ab.variants["):
        index = int(exc.field[len("ab.variants["):].split("]")[0])
        return f"variant_{rows[index]}" if index < len(rows) else "variants"
    return AB_FIELDS.get(exc.field) or FIELD_OF.get(exc.field)


def _variant_rows(form) -> list[int]:
    return [i for i in range(SLOTS)
            if form.get(f"variant_{i}_subject", "").strip() or form.get(f"variant_{i}_template", "").strip()]


def register(bp: Blueprint, account_id) -> None:
    @bp.get("/abtests")
    def abtests():
        after = request.args.get("after", type=int)
        items, next_after = panel().platform.campaigns.page(account_id(), after=after, limit=PAGE_SIZE, ab_only=True)
        return render_template("control/abtests.html", campaigns=items, next_after=next_after,
                               args={"after": after}, label=ab_rules.label)

    @bp.route("/abtests/new", methods=["GET", "POST"])
    def abtest_new():
        """Step 1 chooses the database (?db_id=); step 2 the rest, as the campaign wizard."""
        account = account_id()
        platform = panel().platform
        source = request.form if request.method == "POST" else request.args
        db_id = source.get("db_id", type=int)
        database = platform.databases(account).get(db_id) if db_id is not None else None  # another's: 404
        form = {"name": "", "segment_id": "", "template_id": "", "sender": "", "resource_id": "1",
                "schedule": "now", "at": "", "test_share": "20", "wait_seconds": "3600", "metric": "opens",
                **{k: v for k, v in source.items() if k != "csrf_token"}}
        field_errors: dict[str, str] = {}
        form_error, status = None, 200
        if request.method == "POST":
            try:
                args = campaign_args({**request.form.to_dict(), "schedule": (
                    "at" if request.form.get("schedule") == "at" else "now")}, (g.account or {}).get("tz"))
                args["ab"] = ab_args(request.form)
                platform.check_campaign_refs(account, ab=args["ab"], **{k: args[k] for k in (
                    "db_id", "segment_id", "template_id", "sender_id", "vsender_id")})
                doc = platform.campaigns.add(account, **args)
            except DomainError as exc:
                field = field_of(exc, _variant_rows(request.form))
                if field:
                    field_errors[field] = exc.reason
                else:
                    form_error = exc.message
                status = exc.status
            else:
                return redirect(url_for("control.abtest", campaign_id=doc["id"]))
        return render_template("control/abtest_new.html", database=database, form=form, slots=range(SLOTS),
                               field_errors=field_errors, form_error=form_error, label=ab_rules.label,
                               metrics=ab_rules.METRICS, share_percent=SHARE_PERCENT,
                               **wizard_choices(account, db_id)), status

    def _campaign(campaign_id: int) -> dict[str, Any]:
        doc = panel().platform.campaigns.get(account_id(), campaign_id)  # another account's: 404
        if not doc.get("ab"):
            raise NotFound(f"campaign {campaign_id} is not an A/B test")
        return doc

    @bp.get("/abtests/<int:campaign_id>")
    def abtest(campaign_id: int):
        doc = _campaign(campaign_id)
        templates = {t["id"]: t["name"] for t in panel().platform.templates(account_id()).list()}
        return render_template("control/abtest.html", campaign=doc, ab=doc["ab"], label=ab_rules.label,
                               templates=templates, actions=allowed_transitions(doc["state"]),
                               live=doc["state"] in RUNNING, refresh=REFRESH_SECONDS)

    @bp.get("/abtests/<int:campaign_id>/report")
    def abtest_report(campaign_id: int):
        doc = _campaign(campaign_id)
        report = ab_variants(panel().analytics(), doc)
        templates = {t["id"]: t["name"] for t in panel().platform.templates(account_id()).list()}
        return render_template("control/abtest_report.html", campaign=doc, report=report, templates=templates)
