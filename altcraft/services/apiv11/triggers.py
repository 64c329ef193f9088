"""Account API: trigger campaigns (campaigns/triggers/*) and custom events (events/post)."""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import Field

from altcraft.domain import events, triggers
from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound, Unavailable
from altcraft.http.apiv11 import Beside, Params
from altcraft.services import automation
from altcraft.services.apiv11 import api
from altcraft.services.apiv11.campaigns import _check_refs


class TriggersList(Params):
    pass


class TriggerId(Params):
    id: int


_TRIGGER = 'how it is set off: {"type": "api"}, {"type": "event", "name": ...} or ' \
           '{"type": "subscription", "status": "subscribed"|"unsubscribed", "resource_id": n}'


class TriggerAdd(Params):
    name: str
    db_id: int
    template_id: int
    sender_id: Optional[int] = Field(None, description="a sender assigned to the account, or:")
    vsender_id: Optional[int] = Field(None, description="a virtual sender of the account (exactly one of the two)")
    resource_id: int = 1
    trigger: Optional[dict[str, Any]] = Field(None, description=_TRIGGER + " (default: api)")
    delay_seconds: int = Field(0, description="wait this long after the call or event, 0..90 days")
    active: bool = True


class TriggerUpdate(Params):
    id: int
    name: Optional[str] = None
    template_id: Optional[int] = None
    sender_id: Optional[int] = None
    vsender_id: Optional[int] = Field(None, description="replaces sender_id (and vice versa)")
    resource_id: Optional[int] = None
    trigger: Optional[dict[str, Any]] = Field(None, description=_TRIGGER)
    delay_seconds: Optional[int] = None
    active: Optional[bool] = None


_KEY = Field(None, max_length=200, description="a repeat with the same key sends nothing more and "
                                               "answers the same (default: every call sends)")


_MATCHING = ("Altcraft's matching: email, phone, profile_id, or custom (field_name + field_value); absent: "
             "profile_id, else email (the key), else key_value")
_REFUSED = "not supported here: give an empty value or leave it out"


class Matching(Params):
    """The profile a call names, Altcraft's way (`matching` and its lookup) or this platform's."""

    matching: Optional[str] = Field(None, description=_MATCHING)
    profile_id: Optional[str] = None
    email: Optional[str] = Field(None, description="matching email (without matching: the key, when it is email)")
    phone: Optional[str] = Field(None, description="matching phone")
    field_name: Optional[str] = Field(None, description="matching custom: the field")
    field_value: Optional[Union[str, int, float, bool]] = Field(None, description="matching custom: its value")
    key_value: Optional[str] = Field(None, description="find by the database's key field (this platform's)")
    resource_id: Optional[int] = Field(None, description="accepted; the campaign's own resource is used")


def refuse_unsupported(p: Params, *names: str) -> None:
    """Altcraft's documented parameters this platform cannot honour: refused by name when they
    carry something (an empty value is what a client sends when it has nothing to give)."""
    for name in names:
        if getattr(p, name, None):
            raise Invalid(name, _REFUSED)


class TriggerStart(Matching):
    id: int
    data: dict[str, Any] = Field(default_factory=dict, description="available to the template as {{ data.* }}")
    content: Optional[dict[str, Any]] = Field(None, description="Altcraft's name for data (give one of the two)")
    custom_request: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only empty here")
    subscription_filter: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only empty here")
    custom_data: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only empty here")
    attach: Optional[list[Any]] = Field(None, description="Altcraft's; only empty here (no attachments)")
    idempotency_key: Optional[str] = _KEY


_LOOKUP_KEYS = ("email", "phone", "profile_id", "field_name", "field_value", "key_value")


class TriggerStartBatch(Params):
    trigger_id: int
    data: list[dict[str, Any]] = Field(..., description="one lookup per profile, as matching names it: "
                                       '{"email": ...}, {"phone": ...}, {"profile_id": ...} or '
                                       '{"field_name": ..., "field_value": ...}')
    matching: Optional[str] = Field(None, description=_MATCHING)
    content: Optional[dict[str, Any]] = Field(None, description="available to the template as {{ data.* }}")
    custom_request: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only empty here")
    custom_data: Optional[dict[str, Any]] = Field(None, description="Altcraft's; only empty here")
    attach: Optional[list[Any]] = Field(None, description="Altcraft's; only empty here (no attachments)")


class TriggerClone(Params):
    id: int
    name: Optional[str] = Field(None, description='the copy\'s name (default "Clone of <name>")')


class TriggerImportAndStart(Params):
    trigger_id: int
    data: dict[str, Any] = Field(..., description="the profile's fields; the database's key finds it")
    subscriptions: Optional[list[dict[str, Any]]] = None
    content: dict[str, Any] = Field(default_factory=dict, description="available to the template as {{ data.* }}")
    idempotency_key: Optional[str] = _KEY


class EventPost(Params):
    db_id: int
    profile_id: Optional[str] = None
    email: Optional[str] = Field(None, description="find by email (when it is the key)")
    key_value: Optional[str] = Field(None, description="find by the database's key field")
    name: str = Field(..., description="the event's name: 1-64 of letters, digits, _ . - :")
    data: dict[str, Any] = Field(default_factory=dict, description="any JSON object up to 32 KB")


def _profile_id(ctx, account_id: int, db_id: int, p) -> str:
    profiles = ctx.profiles(account_id, db_id)
    if any(getattr(p, name, None) is not None for name in ("matching", "phone", "field_name")):
        return profiles.match(p.matching, email=p.email, phone=p.phone, profile_id=p.profile_id,
                              field_name=p.field_name, field_value=p.field_value, key_value=p.key_value)
    key_value = p.key_value if p.key_value is not None else p.email
    if p.email is not None and profiles.database.key != "email":
        raise Invalid("email", f"the key of database {db_id} is {profiles.database.key!r}")
    return profiles.get(profile_id=p.profile_id, key_value=key_value)["id"]


def _checked(value: Any, what: str) -> Any:
    try:
        return events.check_data(value)
    except events.BadEvent as exc:
        raise Invalid(what, str(exc).split(": ", 1)[1]) from None


def _send(ctx, trigger: dict[str, Any], profile_id: str, data: dict[str, Any], key: str | None) -> dict[str, Any]:
    """Stores the send (a repeat finds the first one) and hands it to proctrigger. A hand-off
    the broker refuses is no loss: proctrigger also claims due sends from the store."""
    send = triggers.job(trigger, profile_id, data, idempotency_key=key or events.new_event_id(), at=now())
    stored, new = ctx.triggers.enqueue(send)
    if new:
        try:
            ctx.publisher.publish(automation.job_message(stored))
        except Exception as exc:  # noqa: BLE001
            automation.log.warning("trigger send %s: hand-off not confirmed (%s); proctrigger's "
                                   "scan takes it", stored["_id"], type(exc).__name__)
    return triggers.answer(stored)


def _startable(ctx, account_id: int, trigger_id: int) -> dict[str, Any]:
    trigger = ctx.triggers.get(account_id, trigger_id)
    if trigger["trigger"]["type"] != "api":
        raise Conflict(f"trigger campaign {trigger_id} is set off by {trigger['trigger']['type']}, not the API")
    if not trigger["active"]:
        raise Conflict(f"trigger campaign {trigger_id} is not active")
    return trigger


@api.endpoint("campaigns/triggers/list", TriggersList, scope="account", tag="triggers", returns_list=True,
              summary="Trigger campaigns")
def triggers_list(ctx, principal, p):
    items = ctx.triggers.list(principal.account_id)
    return items, len(items)


@api.endpoint("campaigns/triggers/get", TriggerId, scope="account", tag="triggers", summary="A trigger campaign")
def triggers_get(ctx, principal, p: TriggerId):
    return triggers.public(ctx.triggers.get(principal.account_id, p.id))


@api.endpoint("campaigns/triggers/add", TriggerAdd, scope="account", tag="triggers", write=True,
              summary="Create a trigger campaign: template, sender, what sets it off, a delay")
def triggers_add(ctx, principal, p: TriggerAdd):
    _check_refs(ctx, principal.account_id, p)
    return ctx.triggers.add(principal.account_id, p.name, p.db_id, p.template_id, p.sender_id, p.vsender_id,
                            p.resource_id, p.trigger, p.delay_seconds, p.active)


@api.endpoint("campaigns/triggers/update", TriggerUpdate, scope="account", tag="triggers", write=True,
              summary="Change a trigger campaign (active: false stops it, waiting sends included)")
def triggers_update(ctx, principal, p: TriggerUpdate):
    _check_refs(ctx, principal.account_id, p)
    return ctx.triggers.update(principal.account_id, p.id, **p.model_dump(exclude={"id"}))


def _batch_profiles(profiles, matching: str | None, lookups: list[dict[str, Any]]) -> list[str]:
    """Every lookup's profile, or an error naming the lookup (data[i]...): nothing is sent unless
    every profile is found."""
    found: list[str] = []
    for i, lookup in enumerate(lookups):
        unknown = sorted(set(lookup) - set(_LOOKUP_KEYS))
        if unknown:
            raise Invalid(f"data[{i}].{unknown[0]}", f"unknown key: one of {', '.join(_LOOKUP_KEYS)}")
        try:
            found.append(profiles.match(matching, **{k: lookup.get(k) for k in _LOOKUP_KEYS}))
        except Invalid as exc:
            raise Invalid(f"data[{i}].{exc.field}", exc.reason) from None
        except (NotFound, Conflict) as exc:
            raise type(exc)(f"data[{i}]: {exc.message}") from None
    return found


@api.endpoint("campaigns/triggers/start_batch", TriggerStartBatch, scope="account", tag="triggers", write=True,
              summary="Send an API-triggered campaign to several profiles; result: their ids")
def triggers_start_batch(ctx, principal, p: TriggerStartBatch):
    refuse_unsupported(p, "custom_request", "custom_data", "attach")
    trigger = _startable(ctx, principal.account_id, p.trigger_id)
    content = _checked(p.content or {}, "content")
    ids = _batch_profiles(ctx.profiles(principal.account_id, trigger["db_id"]), p.matching, p.data)
    sends = [_send(ctx, trigger, profile_id, content, None) for profile_id in ids]
    return Beside(sends, {"result": ids})  # Altcraft's answer: result beside error


@api.endpoint("campaigns/triggers/clone", TriggerClone, scope="account", tag="triggers", write=True,
              summary="Copy a trigger campaign (the copy is inactive); data: {saved_id}")
def triggers_clone(ctx, principal, p: TriggerClone):
    return {"saved_id": ctx.triggers.clone(principal.account_id, p.id, p.name)["id"]}


def _answered(ctx, trigger: dict, idempotency_key: str | None) -> dict | None:
    """The first call's answer when this key was used before with this trigger."""
    if not idempotency_key:
        return None
    done = ctx.triggers.find_send(triggers.message_id(trigger, idempotency_key))
    return None if done is None else triggers.answer(done)


@api.endpoint("campaigns/triggers/start", TriggerStart, scope="account", tag="triggers", write=True,
              summary="Send an API-triggered campaign to one profile (priority queue)")
def triggers_start(ctx, principal, p: TriggerStart):
    refuse_unsupported(p, "custom_request", "subscription_filter", "custom_data", "attach")
    if p.content and p.data:
        raise Invalid("content", "give content (Altcraft's name) or data, not both")
    trigger = _startable(ctx, principal.account_id, p.id)
    data = _checked(p.content, "content") if p.content else _checked(p.data, "data")
    if (repeat := _answered(ctx, trigger, p.idempotency_key)) is not None:
        return repeat
    return _send(ctx, trigger, _profile_id(ctx, principal.account_id, trigger["db_id"], p), data, p.idempotency_key)


@api.endpoint("campaigns/triggers/import_and_start", TriggerImportAndStart, scope="account", tag="triggers",
              write=True, summary="Add or update a profile, then send it an API-triggered campaign")
def triggers_import_and_start(ctx, principal, p: TriggerImportAndStart):
    trigger = _startable(ctx, principal.account_id, p.trigger_id)
    content = _checked(p.content, "content")
    if (repeat := _answered(ctx, trigger, p.idempotency_key)) is not None:
        return repeat
    profiles = ctx.profiles(principal.account_id, trigger["db_id"])
    try:
        profile = profiles.add(p.data, p.subscriptions)
    except Conflict:
        key = profiles.database.key
        profile = profiles.update(p.data, key_value=p.data.get(key), subscriptions=p.subscriptions)
    return _send(ctx, trigger, profile["id"], content, p.idempotency_key)


@api.endpoint("events/post", EventPost, scope="account", tag="triggers", write=True,
              summary="Post a custom event about a profile; trigger campaigns and webhooks listen")
def events_post(ctx, principal, p: EventPost):
    profile_id = _profile_id(ctx, principal.account_id, p.db_id, p)
    try:
        event = events.custom(principal.account_id, p.db_id, profile_id, p.name, p.data)
    except events.BadEvent as exc:
        where, _, message = str(exc).partition(": ")
        raise Invalid(where, message) from None
    try:
        ctx.publisher.publish(automation.event_message(event))
    except Exception as exc:  # noqa: BLE001
        automation.log.error("custom event not published: %s", type(exc).__name__)
        raise Unavailable("the event was not accepted by the broker; post it again") from None
    return {"event_id": event.event_id, "profile_id": profile_id}
