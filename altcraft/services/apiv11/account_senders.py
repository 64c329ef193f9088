"""Account API: the senders an account may use and its virtual senders (Altcraft's senders/list
and vsenders/*), for an account token: the account is the token's, never a parameter.

The virtual senders are the admin side's (altcraft/domain/vsenders.py); rules are read and
written in Altcraft's `email_rules` shape (altcraft/domain/vsender_rules.py translates), and
answered in this platform's `rules` shape beside it.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain import vsender_rules
from altcraft.domain.errors import Invalid, NotFound
from altcraft.domain.vsenders import public
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.services.apiv11 import api

TAG = "vsenders"
_RULES = ('Altcraft\'s email rule objects, first match wins: {"type": "to_domain"|"from_domain"|"default", '
          '"value": "example.com", "senders": [{"sender_id": 1, "percent": 100, "from_email", "from_name", '
          '"replyto_email"}]}; the last one is the only default')


class AccountSendersList(Paging):
    pass


class AccountVSendersList(Paging):
    pass


class AccountVSenderId(Params):
    id: int


class AccountVSenderAdd(Params):
    name: str
    email_rules: list[dict[str, Any]] = Field(..., description=_RULES)
    sms_rules: Optional[list[dict[str, Any]]] = Field(None, description="only empty: virtual senders route e-mail only here")


class AccountVSenderUpdate(Params):
    id: int
    name: Optional[str] = None
    email_rules: Optional[list[dict[str, Any]]] = Field(None, description=_RULES)
    sms_rules: Optional[list[dict[str, Any]]] = Field(None, description="only empty: virtual senders route e-mail only here")


class AccountVSenderClone(Params):
    id: int
    name: Optional[str] = Field(None, description='the copy\'s name (default "Clone of <name>")')


def _shaped(doc: dict[str, Any]) -> dict[str, Any]:
    return {**public(doc), "email_rules": vsender_rules.to_altcraft(doc["rules"]), "sms_rules": [],
            "email_channel": True, "sms_channel": False}


def _as_written(call):
    """Runs `call`; a rule naming a sender the account may not use is named as the request wrote it."""
    try:
        return call()
    except NotFound as exc:
        if exc.message.startswith("rules["):
            raise NotFound(vsender_rules.altcraft_field(exc.message)) from None
        raise


@api.endpoint("senders/list", AccountSendersList, scope="account", tag=TAG, returns_list=True,
              summary="The senders this account may use: id, name, type, channel")
def senders_list(ctx, principal, p: AccountSendersList):
    # only what the account may know of a sender: not its keys, nor the other accounts using it
    items = [{"id": s["id"], "name": s["name"], "type": "akmta", "channel": "email", "from_email": s["from_email"],
              "from_name": s["from_name"]} for s in ctx.senders.usable_by(principal.account_id)]
    return page(items, p)


@api.endpoint("vsenders/list", AccountVSendersList, scope="account", tag=TAG, returns_list=True,
              summary="The account's virtual senders")
def vsenders_list(ctx, principal, p: AccountVSendersList):
    items = [{"id": v["id"], "name": v["name"], "email_channel": True, "sms_channel": False}
             for v in ctx.vsenders.list(principal.account_id)]
    return page(items, p)


@api.endpoint("vsenders/get", AccountVSenderId, scope="account", tag=TAG,
              summary="A virtual sender with its email_rules (and this platform's rules)")
def vsenders_get(ctx, principal, p: AccountVSenderId):
    return _shaped(ctx.vsenders.get(principal.account_id, p.id))


@api.endpoint("vsenders/add", AccountVSenderAdd, scope="account", tag=TAG, write=True,
              summary="Create a virtual sender from Altcraft's email_rules; data: {saved_id}")
def vsenders_add(ctx, principal, p: AccountVSenderAdd):
    rules = vsender_rules.from_altcraft(p.email_rules, p.sms_rules)
    created = _as_written(lambda: ctx.vsenders.add(principal.account_id, p.name, rules))
    return {"saved_id": created["id"]}


@api.endpoint("vsenders/update", AccountVSenderUpdate, scope="account", tag=TAG, write=True,
              summary="Rename a virtual sender or replace its email_rules")
def vsenders_update(ctx, principal, p: AccountVSenderUpdate):
    rules = None if p.email_rules is None else vsender_rules.from_altcraft(p.email_rules, p.sms_rules)
    if p.email_rules is None and p.sms_rules:
        raise Invalid("sms_rules", "virtual senders route e-mail only here: leave sms_rules empty")
    _as_written(lambda: ctx.vsenders.update(principal.account_id, p.id, p.name, rules))
    return {"saved_id": p.id}


@api.endpoint("vsenders/clone", AccountVSenderClone, scope="account", tag=TAG, write=True,
              summary="Copy a virtual sender; data: {saved_id}")
def vsenders_clone(ctx, principal, p: AccountVSenderClone):
    source = ctx.vsenders.get(principal.account_id, p.id)
    name = p.name if p.name is not None else f"Clone of {source['name']}"
    return {"saved_id": ctx.vsenders.clone(principal.account_id, p.id, name)["id"]}


@api.endpoint("vsenders/delete", AccountVSenderId, scope="account", tag=TAG, write=True,
              summary="Delete a virtual sender (refused while a campaign not yet done uses it)")
def vsenders_delete(ctx, principal, p: AccountVSenderId):
    ctx.vsenders.delete(principal.account_id, p.id)
    return None  # Altcraft's answer: {error, error_text}
