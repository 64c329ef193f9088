"""Altcraft's request and answer shapes of segments and templates, over this platform's objects.

A segment here is a condition tree (domain/segments.py); Altcraft writes `is_static`, `list_id`
and `segment` rule groups. A template here is one e-mail (subject, html, text); Altcraft writes
`channels: [{sid, fields}]`. What can be said in both is translated here; what cannot (rule
groups, other channels, updatable segments) is refused naming the parameter
(docs/api-compatibility.md).
"""

from __future__ import annotations

from typing import Any

from altcraft.domain.errors import Invalid
from altcraft.domain.templates import PARTS

# the e-mail channel's fields Altcraft documents beside the parts: kept with the template and
# answered back; the sender of a campaign decides the From and Reply-To here
EMAIL_EXTRAS = ("from_email", "from_name", "replyto_email", "replyto_name", "is_not_inline")


def segment_db(db_id: int | None, list_id: int | None) -> int:
    if db_id is not None and list_id is not None and db_id != list_id:
        raise Invalid("list_id", "names another database than db_id: send one of them")
    chosen = db_id if db_id is not None else list_id
    if chosen is None:
        raise Invalid("list_id", "missing (required): the profile database (db_id)")
    return chosen


def _no_rules(segment: list[dict[str, Any]] | None) -> None:
    if segment:
        raise Invalid("segment", "Altcraft's rule groups are not translated here: give this platform's "
                                 "condition (docs/api.md), or an empty list")


def segment_kind(kind: str | None, is_static: bool | None, refresh_daily: bool,
                 segment: list[dict[str, Any]] | None, condition: dict[str, Any]) -> tuple[str, bool]:
    """(kind, filled by hand) from this platform's `kind` or Altcraft's `is_static`."""
    _no_rules(segment)
    if refresh_daily:
        raise Invalid("is_refresh_daily", "updatable segments are not served: a static segment with a "
                                          "condition is filled again by segments/count")
    if kind is not None and is_static is not None and (kind == "static") != is_static:
        raise Invalid("is_static", f"contradicts kind {kind!r}: send one of them")
    chosen = kind or ("static" if is_static else "dynamic")
    # Altcraft's static segment has no rules: its members are added by profiles/segstatic/add
    return chosen, bool(is_static) and not condition


def check_segment_update(current: dict[str, Any], list_id: int | None, is_static: bool | None,
                         refresh_daily: bool, segment: list[dict[str, Any]] | None) -> None:
    _no_rules(segment)
    if refresh_daily:
        raise Invalid("is_refresh_daily", "updatable segments are not served")
    if list_id is not None and list_id != current["db_id"]:
        raise Invalid("list_id", f"a segment's database cannot change (segment {current['id']} is of "
                                 f"database {current['db_id']})")
    if is_static is not None and is_static != (current["kind"] == "static"):
        raise Invalid("is_static", f"a segment's kind cannot change (segment {current['id']} is {current['kind']})")


def altcraft_segment(segment: dict[str, Any]) -> dict[str, Any]:
    """The segment with Altcraft's keys beside this platform's (`segment`: the rule groups,
    empty for a segment filled by hand; absent where the segment is a condition of ours)."""
    out = {**segment, "list_id": segment["db_id"], "is_static": segment["kind"] == "static",
           "is_refresh_daily": False}
    if segment.get("manual"):
        out["segment"] = []
    return out


def template_parts(channels: list[dict[str, Any]] | None, flat: dict[str, Any]) -> dict[str, Any]:
    """The template's parts and e-mail extras from Altcraft's `channels` or this platform's
    flat `subject`/`html`/`text` (one of the two forms)."""
    given = {k: v for k, v in flat.items() if v is not None}
    if channels is None:
        return given
    if any(k in PARTS for k in given):
        raise Invalid("channels", "given with subject/html/text beside it: send one form")
    email = None
    for index, channel in enumerate(channels):
        if not isinstance(channel, dict):
            raise Invalid(f"channels[{index}]", "an object {sid, fields}")
        if channel.get("sid") != "email":
            raise Invalid(f"channels[{index}].sid", "only the email channel is served here")
        if email is not None:
            raise Invalid(f"channels[{index}]", "the email channel given twice")
        email = channel.get("fields") or {}
        if not isinstance(email, dict):
            raise Invalid(f"channels[{index}].fields", "an object of the channel's fields")
        unknown = sorted(set(email) - set(PARTS) - set(EMAIL_EXTRAS))
        if unknown:
            raise Invalid(f"channels[{index}].fields.{unknown[0]}", "not a field of the email channel")
    return {**given, **(email or {})}


def altcraft_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template with Altcraft's `channels` beside this platform's flat parts."""
    fields = {k: template[k] for k in (*PARTS, *EMAIL_EXTRAS) if k in template}
    return {**template, "channels": [{"sid": "email", "fields": fields}]}
