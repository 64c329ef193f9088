"""Account API: trigger campaigns (campaigns/triggers/*) and custom events (events/post)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain import events, triggers
from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, Unavailable
from altcraft.http.apiv11 import Params
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


class TriggerStart(Params):
    id: int
    profile_id: Optional[str] = None
    email: Optional[str] = Field(None, description="find by email (when it is the key)")
    key_value: Optional[str] = Field(None, description="find by the database's key field")
    data: dict[str, Any] = Field(default_factory=dict, description="available to the template as {{ data.* }}")
    idempotency_key: Optional[str] = _KEY


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


def _answered(ctx, trigger: dict, idempotency_key: str | None) -> dict | None:
    """The first call's answer when this key was used before with this trigger."""
    if not idempotency_key:
        return None
    done = ctx.triggers.find_send(triggers.message_id(trigger, idempotency_key))
    return None if done is None else triggers.answer(done)


@api.endpoint("campaigns/triggers/start", TriggerStart, scope="account", tag="triggers", write=True,
              summary="Send an API-triggered campaign to one profile (priority queue)")
def triggers_start(ctx, principal, p: TriggerStart):
    trigger = _startable(ctx, principal.account_id, p.id)
    data = _checked(p.data, "data")
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
