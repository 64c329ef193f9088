"""Admin API: senders and their MTA queues (akmtad's control port)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from altcraft.domain.senders import public
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.mta import control_client
from altcraft.services.apiv11 import api

TAG = "senders"


class SenderList(Paging):
    include_deleted: bool = False


class SenderSave(Params):
    id: Optional[int] = None
    name: Optional[str] = None
    from_email: Optional[str] = None
    from_name: Optional[str] = None
    reply_to: Optional[str] = None
    dkim_selector: Optional[str] = None
    dkim_algorithm: Optional[str] = Field(None, description="rsa (default), ed25519 or none")
    dkim_private_key: Optional[str] = Field(None, description="PEM (rsa); generated when absent")
    relay: Optional[str] = Field(None, description="host:port of a smarthost, or empty")
    ips: Optional[list[str]] = Field(None, description="sending IP addresses (on the sending node); empty: any")


class SenderId(Params):
    id: int


class SenderAssign(Params):
    id: int
    account_id: int
    allowed: bool = True


class QueueParams(Params):
    id: int = Field(..., description="sender id")


@api.endpoint("admin/senders/list/", SenderList, scope="admin", tag=TAG, returns_list=True, summary="Senders")
def senders_list(ctx, principal, p: SenderList):
    # Altcraft's item keys beside this platform's: every sender here is an e-mail sender of the MTA
    items = [{**sender, "type": "akmta", "channel_type": "email"} for sender in ctx.senders.list(p.include_deleted)]
    return page(items, p)


@api.endpoint("admin/senders/save", SenderSave, scope="admin", tag=TAG, write=True,
              summary="Create (no id) or update an e-mail sender; a DKIM key is generated when none is given")
def senders_save(ctx, principal, p: SenderSave):
    return ctx.senders.save(**p.model_dump())


@api.endpoint("admin/senders/get", SenderId, scope="admin", tag=TAG, summary="A sender (never its private key)")
def senders_get(ctx, principal, p: SenderId):
    return public(ctx.senders.get(p.id, include_deleted=True))


@api.endpoint("admin/senders/assign", SenderAssign, scope="admin", tag=TAG, write=True,
              summary="Allow (or forbid) an account to use a sender")
def senders_assign(ctx, principal, p: SenderAssign):
    return ctx.senders.assign(p.id, p.account_id, p.allowed)


@api.endpoint("admin/senders/delete", SenderId, scope="admin", tag=TAG, write=True, summary="Delete a sender (restorable)")
def senders_delete(ctx, principal, p: SenderId):
    return ctx.senders.set_deleted(p.id, True)


@api.endpoint("admin/senders/undelete/", SenderId, scope="admin", tag=TAG, write=True, summary="Restore a deleted sender")
def senders_undelete(ctx, principal, p: SenderId):
    return ctx.senders.set_deleted(p.id, False)


@api.endpoint("admin/senders/queue/stats/", QueueParams, scope="admin", tag=TAG, returns_list=True,
              summary="The sender's MTA queue: new, proc, retry, hold per account and campaign")
def queue_stats(ctx, principal, p: QueueParams):
    rows = [r for r in control_client.queue_stats(ctx.config)["rows"] if r["sender_id"] == p.id]
    return rows, len(rows)


def _queue_action(action: str, summary: str) -> None:
    path = f"admin/senders/queue/{action}/" if action == "purge" else f"admin/senders/queue/{action}"

    @api.endpoint(path, QueueParams, scope="admin", tag=TAG, write=True, summary=summary)
    def handler(ctx, principal, p: QueueParams):
        ctx.senders.get(p.id, include_deleted=True)
        return control_client.queue_action(ctx.config, action, p.id)


_queue_action("hold", "Hold the sender's queue (nothing is delivered until release)")
_queue_action("release", "Release a held queue")
_queue_action("purge", "Drop every queued message of the sender (each becomes a 'dropped' event)")
