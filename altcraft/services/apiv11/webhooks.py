"""Account API: outgoing webhooks (prochook). Altcraft documents no webhook methods in
API v1.1, so these live in this platform's own namespace, `webhooks/...` (docs/api.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Optional

from pydantic import Field

from altcraft.http.apiv11 import Params
from altcraft.services.apiv11 import api

TAG = "webhooks"
EVENTS = ('event types or patterns over them: "action.open", "delivery.bounced_hard", "action.*" '
          '(one word), "#" (any number of words: everything)')


class WebhookAdd(Params):
    url: str = Field(..., description="http(s) URL; loopback, private, link-local, multicast and "
                                      "reserved addresses are refused unless main.json allows them")
    events: list[str] = Field(default_factory=lambda: ["#"], description=EVENTS)
    description: str = ""
    enabled: bool = True


class WebhookUpdate(Params):
    id: int
    url: Optional[str] = None
    events: Optional[list[str]] = Field(None, description=EVENTS)
    description: Optional[str] = None
    enabled: Optional[bool] = Field(None, description="true also clears the reason a 410 left")


class WebhookId(Params):
    id: int


class WebhookRotate(Params):
    id: int
    overlap_hours: Optional[float] = Field(None, ge=0, le=720, description=(
        "how long the previous secret stays valid (both signatures are sent); "
        "main.json WEBHOOKS.SECRET_OVERLAP_HOURS when absent, 0 ends it now"))


class WebhookLog(Params):
    webhook_id: Optional[int] = None
    state: Optional[Literal["pending", "delivered", "failed", "cancelled"]] = None
    limit: int = Field(100, ge=1, le=1000)
    skip: int = Field(0, ge=0)


class WebhookReplay(Params):
    id: Optional[list[str]] = Field(None, description="message ids (the webhook-id) to send again")
    webhook_id: Optional[int] = Field(None, description="send again this webhook's failed and cancelled messages")


@api.endpoint("webhooks/add", WebhookAdd, scope="account", tag=TAG, write=True,
              summary="Create a webhook; the answer holds its signing secret (whsec_...)")
def webhooks_add(ctx, principal, p: WebhookAdd):
    return ctx.webhooks.add(principal.account_id, p.url, p.events, p.description, p.enabled)


@api.endpoint("webhooks/update", WebhookUpdate, scope="account", tag=TAG, write=True,
              summary="Change a webhook's URL, event filter, description or enabled flag")
def webhooks_update(ctx, principal, p: WebhookUpdate):
    return ctx.webhooks.update(principal.account_id, p.id, url=p.url, events=p.events,
                               description=p.description, enabled=p.enabled)


@api.endpoint("webhooks/get", WebhookId, scope="account", tag=TAG, summary="A webhook (never its secret)")
def webhooks_get(ctx, principal, p: WebhookId):
    return ctx.webhooks.get(principal.account_id, p.id)


@api.endpoint("webhooks/list", Params, scope="account", tag=TAG, returns_list=True,
              summary="The account's webhooks")
def webhooks_list(ctx, principal, p: Params):
    items = ctx.webhooks.list(principal.account_id)
    return items, len(items)


@api.endpoint("webhooks/delete", WebhookId, scope="account", tag=TAG, write=True,
              summary="Delete a webhook; its unsent messages are cancelled")
def webhooks_delete(ctx, principal, p: WebhookId):
    ctx.webhooks.delete(principal.account_id, p.id)
    return {"id": p.id}


@api.endpoint("webhooks/rotate_secret", WebhookRotate, scope="account", tag=TAG, write=True,
              summary="A new signing secret; the previous one signs too until the overlap ends")
def webhooks_rotate(ctx, principal, p: WebhookRotate):
    hours = ctx.config.WEBHOOKS.SECRET_OVERLAP_HOURS if p.overlap_hours is None else p.overlap_hours
    return ctx.webhooks.rotate_secret(principal.account_id, p.id, timedelta(hours=hours))


@api.endpoint("webhooks/log", WebhookLog, scope="account", tag=TAG, returns_list=True,
              summary="Messages of the account's webhooks, newest first, each with its attempts")
def webhooks_log(ctx, principal, p: WebhookLog):
    if p.webhook_id is not None:
        ctx.webhooks.get_doc(principal.account_id, p.webhook_id)
    return ctx.webhook_outbox.log(principal.account_id, p.webhook_id, p.state, p.limit, p.skip)


@api.endpoint("webhooks/replay", WebhookReplay, scope="account", tag=TAG, write=True,
              summary="Send messages again, with the same webhook-id and a fresh retry schedule")
def webhooks_replay(ctx, principal, p: WebhookReplay):
    if p.webhook_id is not None:
        ctx.webhooks.get_doc(principal.account_id, p.webhook_id)
    return {"replayed": ctx.webhook_outbox.replay(principal.account_id, p.id or (), p.webhook_id)}
