"""webcontrol's import pages: upload a CSV or JSON Lines file, map its columns to the
database's fields, check it (a dry run showing the bad rows), import it, watch it.

Nothing heavy runs in a request: the upload is streamed to a 0600 file under
{BASEDIR}/run/imports, and the check and the import are jobs procleadsaver runs
(altcraft.domain.import_jobs); these pages queue them and show their progress.
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from altcraft.domain import importer
from altcraft.domain.errors import DomainError
from altcraft.domain.import_jobs import TooLarge, save_upload
from altcraft.web import i18n
from altcraft.web.app import panel

BAD_ROWS_SHOWN = 100
LIST_SIZE = 50
# the multipart envelope around the file: the form's other fields and part headers
ENVELOPE = 64 * 1024


def _limit() -> int:
    return panel().config.IMPORT.MAX_BYTES


def _too_large_message() -> str:
    return i18n.gettext_("The file is larger than the limit of %(mb)s MB.") % {
        "mb": f"{_limit() / 1024 / 1024:.0f}"}


def state_label(state: str | None) -> str:
    """A job's state or run in the user's language."""
    labels = {"uploaded": i18n.gettext_("uploaded"), "queued": i18n.gettext_("queued"),
              "running": i18n.gettext_("running"), "checked": i18n.gettext_("checked"),
              "done": i18n.gettext_("done"), "failed": i18n.gettext_("failed"),
              "check": i18n.gettext_("check"), "import": i18n.gettext_("import")}
    return labels.get(state or "", state or "")


def register(bp: Blueprint, account_id) -> None:
    bp.add_app_template_filter(state_label, "import_state")

    @bp.url_value_preprocessor
    def _upload_limit(endpoint, values):
        # runs before the CSRF check reads the form, so the limit applies to that read too
        if endpoint == "control.import_upload":
            request.max_content_length = _limit() + ENVELOPE

    @bp.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        db_id = (request.view_args or {}).get("db_id")
        if request.endpoint == "control.import_upload" and db_id is not None:
            return _list(db_id, _too_large_message(), 413)
        return render_template("web/error.html", code=413, reason=exc.description), 413

    def _list(db_id: int, error: str | None = None, status: int = 200):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)  # another account's: 404
        jobs = ctx.platform.import_jobs(account_id()).list(db_id, LIST_SIZE)
        return render_template("control/imports.html", database=database, jobs=jobs, form_error=error,
                               limit_mb=f"{_limit() / 1024 / 1024:.0f}"), status

    @bp.get("/databases/<int:db_id>/imports")
    def imports(db_id: int):
        return _list(db_id)

    @bp.post("/databases/<int:db_id>/imports")
    def import_upload(db_id: int):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return _list(db_id, i18n.gettext_("Choose a file to upload."), 400)
        try:
            path, size, lines = save_upload(ctx.config.imports_dir, upload.filename, upload.stream, _limit())
        except TooLarge:
            return _list(db_id, _too_large_message(), 413)
        except importer.FileError as exc:
            return _list(db_id, str(exc), 400)
        try:
            fmt = "csv" if path.suffix == ".csv" else "jsonl"
            with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
                columns = importer.columns(handle, fmt)
        except (importer.FileError, UnicodeDecodeError, ValueError) as exc:
            path.unlink(missing_ok=True)
            reason = str(exc) if isinstance(exc, importer.FileError) else i18n.gettext_(
                "The file is not UTF-8 text.")
            return _list(db_id, reason, 400)
        job = ctx.platform.import_jobs(account_id()).create(database, path, upload.filename, size, lines, columns,
                                                             g.user["login"])
        return redirect(url_for("control.import_job", db_id=db_id, job_id=job["_id"]))

    def _job_page(db_id: int, job_id: str, error: str | None = None, status: int = 200):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)
        jobs = ctx.platform.import_jobs(account_id())
        job = jobs.get(db_id, job_id)
        bad = jobs.bad_rows(job_id, "check", BAD_ROWS_SHOWN) if job["state"] == "checked" else []
        return render_template("control/import.html", database=database, job=job, bad=bad,
                               shown=BAD_ROWS_SHOWN, form_error=error), status

    @bp.get("/databases/<int:db_id>/imports/<job_id>")
    def import_job(db_id: int, job_id: str):
        return _job_page(db_id, job_id)

    def _queue(db_id: int, job_id: str, run: str):
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)
        jobs = ctx.platform.import_jobs(account_id())
        job = jobs.get(db_id, job_id)
        mapping = ({c: request.form.get(f"map_{i}", "") for i, c in enumerate(job["columns"])}
                   if any(k.startswith("map_") for k in request.form) else None)
        try:
            jobs.queue(db_id, job_id, run, database, mapping)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return _job_page(db_id, job_id, exc.message, exc.status)
        return redirect(url_for("control.import_job", db_id=db_id, job_id=job_id))

    @bp.post("/databases/<int:db_id>/imports/<job_id>/check")
    def import_check(db_id: int, job_id: str):
        return _queue(db_id, job_id, "check")

    @bp.post("/databases/<int:db_id>/imports/<job_id>/start")
    def import_start(db_id: int, job_id: str):
        return _queue(db_id, job_id, "import")

    @bp.get("/databases/<int:db_id>/imports/<job_id>/status")
    def import_status(db_id: int, job_id: str):
        """The polled part of the job page: htmx asks again each second while the job is
        queued or running; once it ended the whole page is loaded again (its results)."""
        ctx = panel()
        database = ctx.platform.databases(account_id()).get(db_id)
        job = ctx.platform.import_jobs(account_id()).get(db_id, job_id)
        if job["state"] not in ("queued", "running"):
            page = url_for("control.import_job", db_id=db_id, job_id=job_id)
            if request.headers.get("HX-Request") == "true":
                return Response(status=204, headers={"HX-Redirect": page})
            return redirect(page)
        return render_template("control/_import_status.html", database=database, job=job)

    @bp.get("/databases/<int:db_id>/imports/<job_id>/errors.csv")
    def import_errors(db_id: int, job_id: str):
        ctx = panel()
        ctx.platform.databases(account_id()).get(db_id)
        jobs = ctx.platform.import_jobs(account_id())
        job = jobs.get(db_id, job_id)
        run = request.args.get("run", "import" if "import" in (job.get("results") or {}) else "check")
        if run not in ("check", "import"):
            run = "check"
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["line", "field", "reason"])
        for error in jobs.bad_rows(job_id, run):
            writer.writerow([error.line, error.field, error.reason])
        name = f"import-{job_id[:8]}-{run}-errors.csv"
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
