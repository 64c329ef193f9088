"""webcontrol's segment pages: the list, a condition builder with a live count and a sample
of matching profiles, a segment's page.

The builder's rows (field or activity, operator, value, "not") joined by "all" (and) or
"any" (or) become the domain's condition tree (altcraft.domain.segments); the domain validates and counts it, the
same as the API's segments/add and segments/count. Only the turning of form text into that
tree lives here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError
from altcraft.domain.segments import ACTIVITIES, OPS
from altcraft.web.app import panel

ROWS = 5       # condition rows in the builder; empty ones are ignored
SAMPLE = 5     # matching profiles shown under the live count
LIVE_COUNT_LIMIT = 10_000  # the live count stops here and says "more than"
LIST_OPS = ("in", "nin")
DAY_OPS = ("within_days", "older_than_days")
ACTIVITY = "activity:"  # a builder row's "field" for an activity condition: activity:opened


def _number(text: str) -> Any:
    return int(text) if text.isdigit() else text  # not a number: the domain names it


def _activity(kind: str, raw: str) -> dict[str, Any]:
    """An activity row: its value is "days" or "days, campaign id" (30 days when empty)."""
    numbers = [v.strip() for v in raw.split(",")] if raw else []
    condition: dict[str, Any] = {"activity": kind, "days": _number(numbers[0]) if numbers and numbers[0] else 30}
    if len(numbers) > 1 and numbers[1]:
        condition["campaign_id"] = _number(numbers[1])
    return condition


def condition_from_form(form) -> dict[str, Any]:
    """The builder's rows as the domain's condition ({} when no row names a field). A row's
    "field" is a profile field or ACTIVITY + the domain's activity (opened, clicked,
    received); a row with "not" ticked is negated."""
    parts = []
    for i in range(ROWS):
        name = form.get(f"field_{i}", "").strip()
        if not name:
            continue
        op, raw = form.get(f"op_{i}", "eq"), form.get(f"value_{i}", "").strip()
        if name.startswith(ACTIVITY):
            part = _activity(name[len(ACTIVITY):], raw)
        else:
            value: Any = raw
            if op in LIST_OPS:
                value = [v.strip() for v in raw.split(",") if v.strip()]
            elif op == "between":
                value = [v.strip() for v in raw.split(",")] if raw else []
            elif op == "exists":
                value = raw.lower() not in ("no", "false", "0", "нет")
            elif op in DAY_OPS:
                value = _number(raw)
            part = {"field": name, "op": op, "value": value}
        parts.append({"not": part} if form.get(f"not_{i}") else part)
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {"or" if form.get("join") == "or" else "and": parts}


def _rows(form) -> list[dict[str, str]]:
    return [{"field": form.get(f"field_{i}", ""), "op": form.get(f"op_{i}", "eq"),
             "value": form.get(f"value_{i}", ""), "not": bool(form.get(f"not_{i}"))} for i in range(ROWS)]


def register(bp: Blueprint, account_id) -> None:
    @bp.get("/segments")
    def segments():
        ctx = panel()
        databases = {d.id: d for d in ctx.platform.databases(account_id()).list()}
        return render_template("control/segments.html", segments=ctx.platform.segments(account_id()).list(),
                               databases=databases)

    def _builder(db_id: int, form, error: str | None = None, status: int = 200):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)  # another account's: 404
        return render_template("control/segment_new.html", database=database, rows=_rows(form),
                               name=form.get("name", ""), join=form.get("join", "and"),
                               kind=form.get("kind", "dynamic"), ops=OPS, activities=ACTIVITIES,
                               activity_prefix=ACTIVITY, form_error=error), status

    @bp.get("/databases/<int:db_id>/segments/new")
    def segment_new(db_id: int):
        return _builder(db_id, request.args)

    @bp.post("/databases/<int:db_id>/segments/new")
    def segment_add(db_id: int):
        service = panel().platform.segments(account_id())
        try:
            segment = service.add(request.form.get("name", "").strip(), db_id,
                                  condition_from_form(request.form), request.form.get("kind", "dynamic"))
        except DomainError as exc:
            if exc.status == 404:
                raise
            return _builder(db_id, request.form, exc.message, exc.status)
        return redirect(url_for("control.segment", segment_id=segment["id"]))

    @bp.get("/databases/<int:db_id>/segments/count")
    def segment_count(db_id: int):
        """The live count: the builder's form, counted by the domain as it is now, up to
        LIVE_COUNT_LIMIT: asked again on every change, it must not read a whole large
        database each time. Past the limit the page says "more than"; the saved segment's
        page and the API's segments/count give the exact number."""
        service = panel().platform.segments(account_id())
        database = panel().platform.databases(account_id()).get(db_id)
        try:
            count, sample = service.match(db_id, condition_from_form(request.args), SAMPLE,
                                          limit=LIVE_COUNT_LIMIT + 1)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return render_template("control/_segment_count.html", error=exc.message, database=database)
        return render_template("control/_segment_count.html", count=min(count, LIVE_COUNT_LIMIT),
                               over=count > LIVE_COUNT_LIMIT, sample=sample, database=database, error=None)

    @bp.get("/segments/<int:segment_id>")
    def segment(segment_id: int):
        ctx = panel()
        service = ctx.platform.segments(account_id())
        doc = service.get(segment_id)  # another account's: 404
        database = ctx.platform.databases(account_id()).get(doc["db_id"])
        if doc["kind"] == "static":
            count = doc.get("count", 0)  # its stored members (materialised when made)
        else:
            count = service.count(segment_id)
        sample = next(service.profiles(segment_id, batch=SAMPLE), [])
        return render_template("control/segment.html", segment=doc, database=database, count=count,
                               sample=sample[:SAMPLE])
