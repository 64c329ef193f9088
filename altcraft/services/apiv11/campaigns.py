"""Account API: segments, templates, campaigns."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain.message import Envelope, render
from altcraft.domain.templates import MAX_PART, compile_parts
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.services.apiv11 import api
from altcraft.services.apiv11.shapes import (altcraft_segment, altcraft_template, check_segment_update, segment_db,
                                             segment_kind, template_parts)


class NoParams(Params):
    pass


class SegmentsList(Paging):
    pass


class TemplatesList(Paging):
    channel: Optional[str] = Field(None, description="Altcraft's filter: email lists every template "
                                                     "(all are e-mail here), another channel none")


class CampaignsList(Paging):
    type: Optional[str] = Field(None, description="broadcast or regular (trigger mailings: campaigns/triggers/list)")
    is_active: Optional[bool] = Field(None, description="only active (true) or inactive (false) campaigns")


class ById(Params):
    id: int


class SegmentAdd(Params):
    name: str
    db_id: Optional[int] = Field(None, description="the profile database (or Altcraft's list_id)")
    list_id: Optional[int] = Field(None, description="Altcraft's name of db_id")
    condition: dict[str, Any] = Field(default_factory=dict, description="see docs/api.md")
    kind: Optional[str] = Field(None, description="dynamic (default) or static")
    is_static: Optional[bool] = Field(None, description="Altcraft's kind: true is static; static without condition: "
                                                        "filled by profiles/segstatic/add")
    is_refresh_daily: bool = Field(False, description="Altcraft's updatable segments: only false is served")
    segment: Optional[list[dict[str, Any]]] = Field(None, description="Altcraft's rule groups: only an empty list "
                                                                      "is served; give condition")


class SegmentUpdate(Params):
    id: int
    name: Optional[str] = None
    condition: Optional[dict[str, Any]] = None
    list_id: Optional[int] = Field(None, description="Altcraft's: the segment's database (it cannot change)")
    is_static: Optional[bool] = Field(None, description="Altcraft's: the segment's kind (it cannot change)")
    is_refresh_daily: bool = Field(False, description="Altcraft's updatable segments: only false is served")
    segment: Optional[list[dict[str, Any]]] = Field(None, description="Altcraft's rule groups: only an empty list")


class TemplateFields(Params):
    """Altcraft's template parameters beside this platform's flat parts (one form or the other)."""

    channels: Optional[list[dict[str, Any]]] = Field(None, max_length=1, description=(
        "Altcraft's form: [{sid: email, fields: {subject, html, text, from_email, from_name, replyto_email, "
        "replyto_name, is_not_inline}}] (only the email channel)"))
    descr: Optional[str] = Field(None, description="a description, kept")
    is_draft: Optional[bool] = Field(None, description="kept and answered; a draft can still be used")
    json_url: Optional[str] = Field(None, description="accepted and ignored (no block editor here)")
    is_confirm: Optional[bool] = Field(None, description="accepted and ignored (no double opt-in templates here)")
    suppress_id: Optional[int] = Field(None, ge=1, description="accepted and ignored (the stop list is global here)")


class TemplateAdd(TemplateFields):
    name: str
    subject: Optional[str] = None
    html: Optional[str] = Field(None, max_length=MAX_PART)
    text: Optional[str] = Field(None, max_length=MAX_PART)


class TemplateUpdate(TemplateFields):
    id: int
    name: Optional[str] = None
    subject: Optional[str] = None
    html: Optional[str] = Field(None, max_length=MAX_PART)
    text: Optional[str] = Field(None, max_length=MAX_PART)


def _template_values(p: TemplateFields) -> dict[str, Any]:
    values = template_parts(p.channels, {k: getattr(p, k) for k in ("subject", "html", "text")})
    return {**values, **{k: v for k in ("descr", "is_draft") if (v := getattr(p, k)) is not None}}


class TemplatePreview(Params):
    id: int
    db_id: int
    profile_id: str


class CampaignAdd(Params):
    name: str
    db_id: int
    segment_id: int
    template_id: int
    sender_id: Optional[int] = Field(None, description="a sender assigned to the account, or:")
    vsender_id: Optional[int] = Field(None, description="a virtual sender of the account (exactly one of the two)")
    resource_id: int = 1
    schedule: Optional[dict[str, Any]] = Field(None, description='{"type": "once", "at": ISO|null} or {"type": "regular", "cron": "0 9 * * 1"}')
    ab: Optional[dict[str, Any]] = Field(None, description='A/B test: {"variants": [{"subject": ...} or {"template_id": id}, 2 to 4], "test_share": 0.2, "wait_seconds": 3600, "metric": "opens" or "clicks"}')


class CampaignUpdate(Params):
    id: int
    name: Optional[str] = None
    db_id: Optional[int] = None
    segment_id: Optional[int] = None
    template_id: Optional[int] = None
    sender_id: Optional[int] = None
    vsender_id: Optional[int] = Field(None, description="replaces sender_id (and vice versa)")
    resource_id: Optional[int] = None
    schedule: Optional[dict[str, Any]] = None
    ab: Optional[dict[str, Any]] = Field(None, description='A/B test: {"variants": [{"subject": ...} or {"template_id": id}, 2 to 4], "test_share": 0.2, "wait_seconds": 3600, "metric": "opens" or "clicks"}')


def _check_refs(ctx, account_id: int, p) -> None:
    """Everything a campaign names must belong to the account (NotFound otherwise)."""
    ctx.check_campaign_refs(account_id, **{k: getattr(p, k, None) for k in
                                           ("db_id", "segment_id", "template_id", "sender_id", "vsender_id", "ab")})


# -- segments --------------------------------------------------------------------------
@api.endpoint("segments/list", SegmentsList, scope="account", tag="segments", returns_list=True, summary="Segments")
def segments_list(ctx, principal, p):
    return page([altcraft_segment(s) for s in ctx.segments(principal.account_id).list()], p)


@api.endpoint("segments/add", SegmentAdd, scope="account", tag="segments", write=True,
              summary="Create a segment (static segments are materialised at once; Altcraft's is_static without "
                      "a condition makes one filled by profiles/segstatic/add); data carries saved_id")
def segments_add(ctx, principal, p: SegmentAdd):
    kind, manual = segment_kind(p.kind, p.is_static, p.is_refresh_daily, p.segment, p.condition)
    segment = ctx.segments(principal.account_id).add(p.name, segment_db(p.db_id, p.list_id), p.condition,
                                                     kind, manual=manual)
    return {**altcraft_segment(segment), "saved_id": segment["id"]}  # Altcraft's answer: data.saved_id


@api.endpoint("segments/get", ById, scope="account", tag="segments",
              summary="A segment, with Altcraft's count, list_id, is_static")
def segments_get(ctx, principal, p: ById):
    segments = ctx.segments(principal.account_id)
    segment = segments.get(p.id)
    count = segment.get("count", 0) if segment["kind"] == "static" else segments.count(p.id)
    return {**altcraft_segment(segment), "count": count}


@api.endpoint("segments/update", SegmentUpdate, scope="account", tag="segments", write=True,
              summary="Rename a segment or change its condition")
def segments_update(ctx, principal, p: SegmentUpdate):
    segments = ctx.segments(principal.account_id)
    check_segment_update(segments.get(p.id), p.list_id, p.is_static, p.is_refresh_daily, p.segment)
    return altcraft_segment(segments.update(p.id, p.name, p.condition))


@api.endpoint("segments/delete", ById, scope="account", tag="segments", write=True, summary="Delete a segment")
def segments_delete(ctx, principal, p: ById):
    ctx.segments(principal.account_id).delete(p.id)
    return {"id": p.id}


@api.endpoint("segments/count", ById, scope="account", tag="segments",
              summary="Count a segment's profiles now (static: materialise again first)")
def segments_count(ctx, principal, p: ById):
    segments = ctx.segments(principal.account_id)
    if segments.get(p.id)["kind"] == "static":
        return {"id": p.id, "count": segments.materialize(p.id)}
    return {"id": p.id, "count": segments.count(p.id)}


# -- templates ---------------------------------------------------------------------------
@api.endpoint("templates/list", TemplatesList, scope="account", tag="templates", returns_list=True, summary="Templates")
def templates_list(ctx, principal, p: TemplatesList):
    templates = ctx.templates(principal.account_id).list() if p.channel in (None, "email") else []
    return page([altcraft_template(t) for t in templates], p)


@api.endpoint("templates/add", TemplateAdd, scope="account", tag="templates", write=True,
              summary="Create a template (subject, HTML and/or text in sandboxed Jinja, flat or in Altcraft's "
                      "channels); data carries saved_id")
def templates_add(ctx, principal, p: TemplateAdd):
    values = _template_values(p)
    template = ctx.templates(principal.account_id).add(
        p.name, values.pop("subject", ""), values.pop("html", None) or "", values.pop("text", None) or "", **values)
    return {**altcraft_template(template), "saved_id": template["id"]}  # Altcraft's answer: data.saved_id


@api.endpoint("templates/get", ById, scope="account", tag="templates", summary="A template (with Altcraft's channels)")
def templates_get(ctx, principal, p: ById):
    return altcraft_template(ctx.templates(principal.account_id).get(p.id))


@api.endpoint("templates/update", TemplateUpdate, scope="account", tag="templates", write=True,
              summary="Change a template")
def templates_update(ctx, principal, p: TemplateUpdate):
    values = _template_values(p)
    if p.name is not None:
        values["name"] = p.name
    return altcraft_template(ctx.templates(principal.account_id).update(p.id, **values))


@api.endpoint("templates/delete", ById, scope="account", tag="templates", write=True, summary="Delete a template")
def templates_delete(ctx, principal, p: ById):
    ctx.templates(principal.account_id).delete(p.id)
    return p.id  # Altcraft's answer: data is the deleted template's id itself


@api.endpoint("templates/preview", TemplatePreview, scope="account", tag="templates",
              summary="Render a template for one profile, as it would be sent")
def templates_preview(ctx, principal, p: TemplatePreview):
    account = principal.account_id
    template = ctx.templates(account).get(p.id)
    profile = ctx.profiles(account, p.db_id).collection.find_one({"_id": p.profile_id})
    if profile is None:
        from altcraft.domain.errors import NotFound
        raise NotFound("profile not found")
    envelope = Envelope(account, p.db_id, 1, 0, 0, "preview@example.invalid",
                        tracking_base=ctx.config.TRACKING_BASE_URL, tracking_key=ctx.config.TRACKING_CRYPT_KEY)
    rendered = render(compile_parts(template), envelope, profile)
    return {"rcpt": rendered.rcpt, "message": rendered.data.decode("ascii", "replace")}


# -- campaigns ---------------------------------------------------------------------------
@api.endpoint("campaigns/list", CampaignsList, scope="account", tag="campaigns", returns_list=True, summary="Campaigns")
def campaigns_list(ctx, principal, p: CampaignsList):
    from altcraft.domain.errors import Invalid
    from altcraft.services.apiv11.campaign_verbs import altcraft_item
    if p.type == "trigger":
        raise Invalid("type", "trigger mailings are listed by campaigns/triggers/list here")
    if p.type not in (None, "broadcast", "regular"):
        raise Invalid("type", "one of: broadcast, regular")
    items = [altcraft_item(c) for c in ctx.campaigns.list(principal.account_id)]
    items = [c for c in items if (p.type is None or c["type"] == p.type)
             and (p.is_active is None or c["is_active"] is p.is_active)]
    return page(items, p)


@api.endpoint("campaigns/add", CampaignAdd, scope="account", tag="campaigns", write=True,
              summary="Create a campaign (a draft)")
def campaigns_add(ctx, principal, p: CampaignAdd):
    _check_refs(ctx, principal.account_id, p)
    return ctx.campaigns.add(principal.account_id, p.name, p.db_id, p.segment_id, p.template_id,
                             p.sender_id, p.resource_id, p.schedule, p.vsender_id, p.ab)


@api.endpoint("campaigns/get", ById, scope="account", tag="campaigns", summary="A campaign with its progress")
def campaigns_get(ctx, principal, p: ById):
    from altcraft.services.apiv11.campaign_verbs import altcraft_item
    return altcraft_item(ctx.campaigns.get(principal.account_id, p.id))


@api.endpoint("campaigns/update", CampaignUpdate, scope="account", tag="campaigns", write=True,
              summary="Change a campaign that is not sending")
def campaigns_update(ctx, principal, p: CampaignUpdate):
    _check_refs(ctx, principal.account_id, p)
    return ctx.campaigns.update(principal.account_id, p.id, **p.model_dump(exclude={"id"}))


@api.endpoint("campaigns/delete", ById, scope="account", tag="campaigns", write=True, summary="Delete a campaign")
def campaigns_delete(ctx, principal, p: ById):
    ctx.campaigns.delete(principal.account_id, p.id)
    return {"id": p.id}


def _action(name: str, summary: str) -> None:
    @api.endpoint(f"campaigns/{name}", ById, scope="account", tag="campaigns", write=True, summary=summary)
    def handler(ctx, principal, p: ById):
        return getattr(ctx.campaigns, name)(principal.account_id, p.id)


_action("start", "Launch now, at the scheduled time, or on the cron schedule")
_action("pause", "Pause a sending or scheduled campaign")
_action("resume", "Resume a paused campaign where it stopped")
_action("cancel", "Cancel a campaign")
