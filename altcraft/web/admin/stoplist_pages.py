"""webadmin's global stop list page: look a contact up (by its MD5, which is all the list
holds; the address goes in a POST body, never in a URL), add, remove, import a file. The
journal gets the contact's hash, never the address: the list keeps no addresses and neither
does its history."""

from __future__ import annotations

import io

from flask import Blueprint, render_template, request

from altcraft.domain.fields import normalize_email
from altcraft.domain.stoplist import IMPORT_MAX_BYTES, StopList, contact_hash
from altcraft.stores import kv
from altcraft.web import i18n
from altcraft.web.app import journal_change, not_a_change, panel, reads_only

INVALID_SHOWN = 100  # line numbers listed on the page; the count covers them all


def _stoplist() -> StopList:
    ctx = panel()
    store = ctx.__dict__.get("_stoplist")
    if store is None:
        store = ctx.__dict__["_stoplist"] = StopList(kv.ssdb(ctx.config, "hbsupp"))
    return store


def _contact(text: str) -> tuple[str | None, str | None]:
    """The normalised address, or the error naming what is wrong."""
    try:
        return normalize_email(text), None
    except ValueError:
        return None, i18n.gettext_("Not an e-mail address: %(value)s", value=text[:200])


def add_routes(bp: Blueprint) -> None:
    def page(status: int = 200, **values):
        values.setdefault("contact", "")
        values.setdefault("max_mb", IMPORT_MAX_BYTES // (1024 * 1024))
        return render_template("admin/stoplist.html", **values), status

    @bp.get("/stoplist")
    def stoplist():
        return page()  # a ?contact= (an old bookmark) is not looked up: addresses go by POST

    @bp.post("/stoplist")
    @reads_only  # the address in the body, not the URL (access logs); a viewer may look up
    def stoplist_lookup():
        text = request.form.get("contact", "").strip()
        contact, error = _contact(text)
        if error:
            return page(400, contact=text, error=error)
        return page(contact=contact, md5=contact_hash(contact), listed=_stoplist().contains(contact))

    def _change(action: str):
        contact, error = _contact(request.form.get("contact", "").strip())
        if error:
            return page(400, contact=request.form.get("contact", ""), error=error)
        store = _stoplist()
        changed = store.add(contact) if action == "add" else store.remove(contact)
        digest = contact_hash(contact)
        journal_change(f"admin.stoplist_{action}", object_kind="stoplist", object_id=digest,
                       changes={"md5": digest, "changed": changed})
        return page(contact=contact, md5=digest, listed=action == "add", done=action, changed=changed)

    # journaled by hand (the hash, not the form's address): one entry each
    @bp.post("/stoplist/add")
    @not_a_change
    def stoplist_add():
        return _change("add")

    @bp.post("/stoplist/remove")
    @not_a_change
    def stoplist_remove():
        return _change("remove")

    @bp.post("/stoplist/import")
    @not_a_change
    def stoplist_import():
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return page(400, import_error=i18n.gettext_("Choose a file to import."))
        data = upload.stream.read(IMPORT_MAX_BYTES + 1)
        if len(data) > IMPORT_MAX_BYTES:
            return page(413, import_error=i18n.gettext_("The file is larger than %(num)d MB: nothing was imported.",
                                                        num=IMPORT_MAX_BYTES // (1024 * 1024)))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return page(400, import_error=i18n.gettext_("The file is not UTF-8 text: nothing was imported."))
        result = _stoplist().import_lines(io.StringIO(text))
        journal_change("admin.stoplist_import", object_kind="stoplist",
                       changes={"file": upload.filename, "added": result.added, "already": result.already,
                                "invalid": len(result.invalid_lines)})
        return page(result=result, invalid_shown=result.invalid_lines[:INVALID_SHOWN])
