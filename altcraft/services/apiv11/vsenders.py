"""Admin API: virtual senders of an account (rules choosing real senders; see
altcraft/domain/vsender_rules.py)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain.vsenders import public
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.services.apiv11 import api

TAG = "vsenders"
RULES = ('ordered rules, first match wins: {"match": "to_domain"|"from_domain"|"from_email"|"default", '
         '"values": [...], "senders": [{"id": 1, "weight": 3}], "from_email", "from_name", "reply_to"}; '
         'the last one is the only default')


class VSenderList(Paging):
    account_id: int


class VSenderId(Params):
    account_id: int
    id: int


class VSenderAdd(Params):
    account_id: int
    name: str
    rules: list[Any] = Field(..., description=RULES)


class VSenderUpdate(Params):
    account_id: int
    id: int
    name: Optional[str] = None
    rules: Optional[list[Any]] = Field(None, description=RULES)


class VSenderClone(Params):
    account_id: int
    id: int
    name: Optional[str] = Field(None, description='the copy\'s name; "<name> (copy)" when absent')


@api.endpoint("admin/vsenders/list", VSenderList, scope="admin", tag=TAG, returns_list=True,
              summary="Virtual senders of an account")
def vsenders_list(ctx, principal, p: VSenderList):
    ctx.accounts.get(p.account_id)
    # Altcraft's channel flags beside the rules: virtual senders here route e-mail only
    items = [{**v, "email_channel": True, "sms_channel": False, "custom_channels": []}
             for v in ctx.vsenders.list(p.account_id)]
    return page(items, p)


@api.endpoint("admin/vsenders/get", VSenderId, scope="admin", tag=TAG, summary="A virtual sender with its rules")
def vsenders_get(ctx, principal, p: VSenderId):
    return public(ctx.vsenders.get(p.account_id, p.id))


@api.endpoint("admin/vsenders/add", VSenderAdd, scope="admin", tag=TAG, write=True,
              summary="Create a virtual sender; its rules may name only senders assigned to the account")
def vsenders_add(ctx, principal, p: VSenderAdd):
    ctx.accounts.get(p.account_id)
    return ctx.vsenders.add(p.account_id, p.name, p.rules)


@api.endpoint("admin/vsenders/update", VSenderUpdate, scope="admin", tag=TAG, write=True,
              summary="Rename a virtual sender or replace its rules")
def vsenders_update(ctx, principal, p: VSenderUpdate):
    return ctx.vsenders.update(p.account_id, p.id, p.name, p.rules)


@api.endpoint("admin/vsenders/clone", VSenderClone, scope="admin", tag=TAG, write=True,
              summary="Copy a virtual sender's rules under a new name")
def vsenders_clone(ctx, principal, p: VSenderClone):
    copy = ctx.vsenders.clone(p.account_id, p.id, p.name)
    return {**copy, "saved_id": copy["id"]}  # Altcraft's answer is data: {saved_id}


@api.endpoint("admin/vsenders/delete", VSenderId, scope="admin", tag=TAG, write=True,
              summary="Delete a virtual sender (refused while a campaign not yet done uses it)")
def vsenders_delete(ctx, principal, p: VSenderId):
    ctx.vsenders.delete(p.account_id, p.id)
    return {"id": p.id}
