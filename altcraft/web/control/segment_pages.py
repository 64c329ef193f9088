"""webcontrol's segment pages: the list, a condition builder with a live count and a sample
of matching profiles, a segment's page.

The builder's rows (field or activity, operator, value, "not") and nested groups, each joined
by "all" (and) or "any" (or) and negatable, become the domain's condition tree
(altcraft.domain.segments; the form's encoding is segment_builder.py); the domain validates and
counts it, the same as the API's segments/add, segments/update and segments/count. A stored
segment opens in the same builder (its edit page) and saves back through Segments.update.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError
from altcraft.domain.segments import ACTIVITIES, OPS
from altcraft.web.app import panel
from altcraft.web.i18n import gettext_
from altcraft.web.control.segment_builder import (ACTIVITY, Unrepresentable, apply_edit, condition_from_form,
                                                  condition_from_tree, tree_from_condition, tree_from_form)

__all__ = ["condition_from_form", "register"]

SAMPLE = 5     # matching profiles shown under the live count
LIVE_COUNT_LIMIT = 10_000  # the live count stops here and says "more than"


def register(bp: Blueprint, account_id) -> None:
    @bp.get("/segments")
    def segments():
        ctx = panel()
        databases = {d.id: d for d in ctx.platform.databases(account_id()).list()}
        return render_template("control/segments.html", segments=ctx.platform.segments(account_id()).list(),
                               databases=databases)

    def _builder(db_id: int, form, tree: dict[str, Any], error: str | None = None, status: int = 200,
                 editing: dict[str, Any] | None = None):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)  # another account's: 404
        return render_template("control/segment_new.html", database=database, tree=tree,
                               name=form.get("name", ""), kind=form.get("kind", "dynamic"), editing=editing,
                               ops=OPS, activities=ACTIVITIES, activity_prefix=ACTIVITY,
                               form_error=error), status

    @bp.get("/databases/<int:db_id>/segments/new")
    def segment_new(db_id: int):
        return _builder(db_id, request.args, tree_from_form(request.args))

    @bp.post("/databases/<int:db_id>/segments/new")
    def segment_add(db_id: int):
        service = panel().platform.segments(account_id())
        tree = tree_from_form(request.form)
        try:
            segment = service.add(request.form.get("name", "").strip(), db_id,
                                  condition_from_tree(tree), request.form.get("kind", "dynamic"))
        except DomainError as exc:
            if exc.status == 404:
                raise
            return _builder(db_id, request.form, tree, exc.message, exc.status)
        return redirect(url_for("control.segment", segment_id=segment["id"]))

    @bp.get("/databases/<int:db_id>/segments/builder")
    def segment_builder(db_id: int):
        """The builder's groups after a change of their shape (a row or a group added, a
        group removed: ?edit=), from the form as it is; changes nothing stored."""
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)  # another account's: 404
        tree = apply_edit(tree_from_form(request.args), request.args.get("edit", ""))
        return render_template("control/_segment_builder.html", database=database, tree=tree, ops=OPS,
                               activities=ACTIVITIES, activity_prefix=ACTIVITY)

    @bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
    def segment_edit(segment_id: int):
        """A stored segment in the builder; saved through Segments.update as the API's
        segments/update (a static segment filled from its condition is filled again)."""
        service = panel().platform.segments(account_id())
        doc = service.get(segment_id)  # another account's: 404
        if doc.get("manual"):
            return _builder(doc["db_id"], {"name": doc["name"], "kind": doc["kind"]}, tree_from_condition({}),
                            gettext_("This segment is filled by hand: it has no condition to edit."), 409,
                            editing=doc)
        if request.method == "GET":
            try:
                tree = tree_from_condition(doc["condition"])
            except Unrepresentable as exc:
                return _builder(doc["db_id"], {"name": doc["name"], "kind": doc["kind"]}, tree_from_condition({}),
                                gettext_("The builder cannot show this condition (%(why)s); change it through the API.",
                                         why=str(exc)), 200, editing={**doc, "unrepresentable": True})
            return _builder(doc["db_id"], {"name": doc["name"], "kind": doc["kind"]}, tree, editing=doc)
        tree = tree_from_form(request.form)
        try:
            service.update(segment_id, request.form.get("name", "").strip() or doc["name"], condition_from_tree(tree))
            if doc["kind"] == "static":
                service.materialize(segment_id)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return _builder(doc["db_id"], {**request.form.to_dict(), "kind": doc["kind"]}, tree, exc.message,
                            exc.status, editing=doc)
        return redirect(url_for("control.segment", segment_id=segment_id))

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
