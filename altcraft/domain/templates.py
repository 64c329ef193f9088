"""Message templates of an account: subject, HTML and text parts in sandboxed Jinja.

The sandbox (ImmutableSandboxedEnvironment) lets a template reach only the values handed to
it: the one profile's fields and the campaign's links; never Python internals, never
another account's data. HTML is auto-escaped; the subject and text part are not.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id

PARTS = ("subject", "html", "text")
MAX_PART = 512 * 1024
# kept with the template and answered back, not used in sending (the campaign's sender decides
# From and Reply-To): Altcraft's description, draft flag and e-mail channel fields
EXTRAS: dict[str, type] = {"descr": str, "is_draft": bool, "from_email": str, "from_name": str,
                           "replyto_email": str, "replyto_name": str, "is_not_inline": bool}
MAX_EXTRA = 1000


def environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    # Undefined renders as "", so `{{ first_name | default("friend") }}` gives a default.
    return ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=Undefined,
                                         keep_trailing_newline=True)


HTML_ENV, TEXT_ENV = environment(True), environment(False)
_CHECK_ENV = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def compile_parts(parts: dict[str, str]) -> dict[str, Any]:
    compiled = {}
    for name in PARTS:
        source = parts.get(name) or ""
        env = HTML_ENV if name == "html" else TEXT_ENV
        try:
            compiled[name] = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise Invalid(name, f"template syntax error at line {exc.lineno}: {exc.message}") from None
    return compiled


def render_parts(compiled: dict[str, Any], context: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, template in compiled.items():
        try:
            out[name] = template.render(context)
        except SecurityError as exc:
            raise Invalid(name, f"not allowed in a template: {exc}") from None
        except Exception as exc:  # a template error is the author's, reported by part
            raise Invalid(name, f"cannot render: {type(exc).__name__}: {exc}") from None
    if "\n" in out.get("subject", "") or "\r" in out.get("subject", ""):
        out["subject"] = " ".join(out["subject"].split())
    return out


class Templates:
    def __init__(self, account_db: Database):
        self.db = account_db

    def _validate(self, parts: dict[str, Any]) -> dict[str, str]:
        clean = {}
        for name in PARTS:
            value = parts.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise Invalid(name, "a string")
            if len(value) > MAX_PART:
                raise Invalid(name, f"larger than {MAX_PART // 1024} KiB")
            clean[name] = value
        compile_parts(clean)
        return clean

    @staticmethod
    def _extras(values: dict[str, Any]) -> dict[str, Any]:
        clean = {}
        for name, value in values.items():
            kind = EXTRAS.get(name)
            if kind is None:
                raise Invalid(name, "not a template field")
            if value is None:
                continue
            if not isinstance(value, kind) or (kind is str and len(value) > MAX_EXTRA):
                raise Invalid(name, "a boolean" if kind is bool else f"a string of at most {MAX_EXTRA} characters")
            clean[name] = value
        return clean

    def add(self, name: str, subject: str, html: str = "", text: str = "", **extras: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise Invalid("name", "missing")
        if not subject:
            raise Invalid("subject", "missing")
        if not html and not text:
            raise Invalid("html", "a template needs an HTML or a text part")
        parts = self._validate({"subject": subject, "html": html, "text": text})
        kept = self._extras(extras)
        if self.db.templates.find_one({"name": name}):
            raise Conflict(f"a template named {name!r} exists")
        doc = {"id": next_id(self.db, "templates"), "name": name.strip(), **parts, **kept, "created_at": now()}
        self.db.templates.insert_one(doc)
        return self.get(doc["id"])

    def get(self, template_id: Any) -> dict[str, Any]:
        doc = self.db.templates.find_one({"id": template_id}, {"_id": 0})
        if doc is None:
            raise NotFound(f"template {template_id} not found")
        return doc

    def list(self) -> list[dict[str, Any]]:
        return list(self.db.templates.find({}, {"_id": 0, "html": 0, "text": 0}).sort("id", 1))

    def update(self, template_id: int, **parts: Any) -> dict[str, Any]:
        self.get(template_id)
        changes = self._validate(parts)
        changes.update(self._extras({k: v for k, v in parts.items() if k not in PARTS and k != "name"}))
        if parts.get("name"):
            changes["name"] = str(parts["name"]).strip()
        if changes:
            self.db.templates.update_one({"id": template_id}, {"$set": changes})
        return self.get(template_id)

    def delete(self, template_id: int) -> None:
        self.get(template_id)
        self.db.templates.delete_one({"id": template_id})
