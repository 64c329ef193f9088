"""Account API: Altcraft's mailing verbs (campaigns/activate, deactivate, clone, get_status,
log_v2, regulars/list) over this platform's campaigns. Each verb is a composition of the
guarded transitions in altcraft/domain/campaigns.py; the parameters are the ones Altcraft's
pages document, and a documented parameter this platform cannot honour is refused by name."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import Field

from altcraft.domain import campaigns
from altcraft.domain.errors import Invalid
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.services.apiv11 import api

TAG = "campaigns"
_UNSUPPORTED = "not supported here: a launch always sends to the campaign's own segment, without limit"


class CampaignActivate(Params):
    id: int
    run_now: bool = Field(False, description="launch at once (otherwise at the schedule's time, or by its cron)")
    override_source_type: Optional[str] = Field(None, description="Altcraft's; refused here")
    override_source_id: Optional[int] = Field(None, description="Altcraft's; refused here")
    override_limit: Optional[int] = Field(None, description="Altcraft's; refused here")
    content: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only an empty object is accepted")
    attach: Optional[list[Any]] = Field(None, description="Altcraft's; only an empty list is accepted")


class CampaignDeactivate(Params):
    id: int
    abort_if_running: bool = Field(False, description="true: cancel (nothing more is sent); false: pause")


class CampaignClone(Params):
    id: int
    name: Optional[str] = Field(None, description='the copy\'s name (default "CampaignClone of <name>")')


class CampaignStatusParams(Params):
    id: int


class CampaignLog(Params):
    id: int
    from_time: Optional[datetime] = Field(None, description="entries from this time on (RFC 3339)")
    limit: int = Field(1000, ge=1, le=1000, description="at most this many entries (default 1000)")


class CampaignRegularsList(Paging):
    is_active: Optional[bool] = Field(None, description="only active (true) or inactive (false) mailings")


def _refuse_overrides(p: Activate) -> None:
    for name in ("override_source_type", "override_source_id", "override_limit"):
        if getattr(p, name) is not None:
            raise Invalid(name, _UNSUPPORTED)
    if p.content:
        raise Invalid("content", "not supported here: campaign templates take no API content")
    if p.attach:
        raise Invalid("attach", "not supported here: no attachments")


def altcraft_item(doc: dict[str, Any]) -> dict[str, Any]:
    """A campaign with Altcraft's keys beside this platform's own."""
    state = campaigns.status(doc)
    return {**campaigns.public(doc), "type": campaigns.kind(doc), "is_active": state["is_active"],
            "is_completed": state["is_completed"], "status": state["status"], "for_confirm": False,
            "data_type": "segment", "data_id": doc.get("segment_id"), "virtual_sender_id": doc.get("vsender_id"),
            "send_email_content": True, "send_sms_content": False, "send_push_content": False}


@api.endpoint("campaigns/activate/", CampaignActivate, scope="account", tag=TAG, write=True,
              summary="Altcraft's activate: start (run_now: at once), or resume a paused campaign")
def campaigns_activate(ctx, principal, p: Activate):
    _refuse_overrides(p)
    ctx.campaigns.activate(principal.account_id, p.id, run_now=p.run_now)
    return None  # Altcraft's answer: data null


@api.endpoint("campaigns/deactivate", CampaignDeactivate, scope="account", tag=TAG, write=True,
              summary="Altcraft's deactivate: pause, or cancel with abort_if_running")
def campaigns_deactivate(ctx, principal, p: Deactivate):
    ctx.campaigns.deactivate(principal.account_id, p.id, abort_if_running=p.abort_if_running)
    return None


@api.endpoint("campaigns/clone", CampaignClone, scope="account", tag=TAG, write=True,
              summary="Copy a campaign as a new draft; data: {saved_id}")
def campaigns_clone(ctx, principal, p: Clone):
    copy = ctx.campaigns.clone(principal.account_id, p.id, p.name)
    return {"saved_id": copy["id"]}


@api.endpoint("campaigns/get_status", CampaignStatusParams, scope="account", tag=TAG,
              summary="is_active, is_completed, status (and this platform's state)")
def campaigns_get_status(ctx, principal, p: CampaignId):
    return campaigns.status(ctx.campaigns.get(principal.account_id, p.id))


@api.endpoint("campaigns/log_v2", CampaignLog, scope="account", tag=TAG, returns_list=True,
              summary="The campaign's log, oldest first: level, message, state (start/end), time, value")
def campaigns_log(ctx, principal, p: Log):
    from_time = p.from_time
    if from_time is not None and from_time.tzinfo is None:
        from_time = from_time.replace(tzinfo=timezone.utc)
    return ctx.campaigns.log_entries(principal.account_id, p.id, from_time, p.limit)


@api.endpoint("campaigns/regulars/list/", CampaignRegularsList, scope="account", tag=TAG, returns_list=True,
              summary="Regular mailings (campaigns with a cron schedule)")
def campaigns_regulars_list(ctx, principal, p: RegularsList):
    items = [altcraft_item(c) for c in ctx.campaigns.list(principal.account_id) if campaigns.kind(c) == "regular"]
    if p.is_active is not None:
        items = [c for c in items if c["is_active"] is p.is_active]
    return page(items, p)
