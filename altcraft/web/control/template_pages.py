"""webcontrol's template pages: the list, create and edit (name, subject, HTML, text) with
the domain's validation (a syntax error names its part and line), and a preview for a
chosen profile.

The preview is rendered here, on the server, by the domain (altcraft.domain.message, as the
message would be sent, without the open pixel). Its HTML is served by a route of its own
(`.../preview/frame`) with the preview's CSP (security.PREVIEW_POLICY: inline styles and
images, no script at all, CSP `sandbox`) and shown in an `<iframe sandbox>` without
allow-scripts: the template's styling shows, its scripts and handlers run nowhere, and the
frame, an opaque origin, cannot reach the panel.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from altcraft.domain.errors import DomainError, Invalid
from altcraft.domain.message import Envelope, render_preview
from altcraft.domain.templates import PARTS, compile_parts
from altcraft.web import security
from altcraft.web.app import panel
from altcraft.web.control import test_send

EDITABLE = ("name",) + PARTS


def _form(source) -> dict[str, str]:
    return {k: source.get(k, "") for k in EDITABLE}


def _errors(exc: DomainError) -> tuple[dict[str, str], str | None]:
    """An Invalid error shown by its field (its message carries the line of a syntax error);
    any other (a name taken) above the form."""
    if isinstance(exc, Invalid) and exc.field in EDITABLE:
        return {exc.field: exc.reason}, None
    return {}, exc.message


def register(bp: Blueprint, account_id) -> None:
    @bp.get("/templates")
    def templates():
        return render_template("control/templates.html",
                               templates=panel().platform.templates(account_id()).list())

    @bp.route("/templates/new", methods=["GET", "POST"])
    def template_new():
        form, field_errors, form_error, status = _form({}), {}, None, 200
        if request.method == "POST":
            form = _form(request.form)
            try:
                doc = panel().platform.templates(account_id()).add(
                    form["name"].strip(), form["subject"], form["html"], form["text"])
            except DomainError as exc:
                field_errors, form_error = _errors(exc)
                status = exc.status
            else:
                return redirect(url_for("control.template", template_id=doc["id"]))
        return render_template("control/template.html", template=None, form=form, field_errors=field_errors,
                               form_error=form_error, databases=[], saved=False), status

    def _page(doc: dict, form: dict, status: int = 200, **extra):
        ctx = panel()
        context = {"field_errors": {}, "form_error": None, "saved": False, "test_form": {},
                   "test_errors": {}, "test_sent": None, **extra}
        return render_template("control/template.html", template=doc, form=form,
                               databases=ctx.platform.databases(account_id()).list(),
                               senders=test_send.senders_of(ctx.platform, account_id()), **context), status

    @bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
    def template(template_id: int):
        ctx = panel()
        service = ctx.platform.templates(account_id())
        doc = service.get(template_id)  # another account's: 404
        form, field_errors, form_error, status, saved = _form(doc), {}, None, 200, False
        if request.method == "POST":
            form = _form(request.form)
            try:
                doc = service.update(template_id, **form)
            except DomainError as exc:
                field_errors, form_error = _errors(exc)
                status = exc.status
            else:
                form, saved = _form(doc), True
        return _page(doc, form, status, field_errors=field_errors, form_error=form_error, saved=saved)

    @bp.post("/templates/<int:template_id>/test-send")
    def template_test_send(template_id: int):
        """One message of the saved template for a chosen profile, to an address (test_send.py)."""
        ctx = panel()
        doc = ctx.platform.templates(account_id()).get(template_id)  # another account's: 404
        outcome = test_send.send(ctx.platform, ctx.config, account_id(), doc, request.form)
        test_form = {k: request.form.get(k, "") for k in test_send.FIELDS}
        return _page(doc, _form(doc), 400 if outcome.errors else 200, test_form=test_form,
                     test_errors=outcome.errors, test_sent=outcome.rcpt or None)

    def _render(template_id: int, args) -> tuple[dict, dict | None, str | None]:
        """The saved template for one profile, found by its database's key (an e-mail or a
        phone) or its id: (template, parts, None) or (template, None, the error)."""
        ctx = panel()
        account = account_id()
        doc = ctx.platform.templates(account).get(template_id)  # another account's: 404
        db_id = args.get("db_id", type=int)
        key = args.get("profile", "").strip()
        if db_id is None or not key:
            return doc, None, Invalid("profile", "choose a database and a profile").message
        profiles = ctx.platform.profiles(account, db_id)  # another account's database: 404
        try:
            raw = test_send.find_profile(profiles, key)
            envelope = Envelope(account, db_id, 1, 0, 0, "preview@example.invalid",
                                tracking_base=ctx.config.TRACKING_BASE_URL,
                                tracking_key=ctx.config.TRACKING_CRYPT_KEY)
            return doc, render_preview(compile_parts(doc), envelope, raw), None
        except DomainError as exc:
            return doc, None, exc.message

    @bp.get("/templates/<int:template_id>/preview")
    def template_preview(template_id: int):
        doc, parts, error = _render(template_id, request.args)
        frame = url_for("control.template_preview_frame", template_id=template_id,
                        db_id=request.args.get("db_id", type=int), profile=request.args.get("profile", "").strip())
        template = "control/_template_preview.html" if request.headers.get("HX-Request") == "true" \
            else "control/template_preview.html"
        return render_template(template, template=doc, parts=parts, error=error, frame=frame)

    @bp.get("/templates/<int:template_id>/preview/frame")
    def template_preview_frame(template_id: int):
        """The preview's HTML alone, under the preview's own CSP (see the module's doc)."""
        _doc, parts, error = _render(template_id, request.args)
        if error is not None:
            return security.preview_headers(Response(error, status=400, mimetype="text/plain"))
        return security.preview_headers(Response(parts["html"] or "", mimetype="text/html"))
