"""Account API: profile databases and profiles (account tokens only, scoped to their account)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional, Union

from pydantic import Field

from altcraft.domain import events
from altcraft.domain.errors import DomainError, Invalid, NotFound
from altcraft.domain.fields import from_altcraft, to_altcraft
from altcraft.domain.importer import import_rows
from altcraft.http.apiv11 import OK_TEXT, Beside, Paging, Params, page
from altcraft.services.apiv11 import api
from altcraft.services.automation import announce

MAX_IMPORT_ROWS = 10_000


class DatabasesList(Paging):
    pass


class DatabaseAdd(Params):
    name: str
    key: str = Field("email", description="email, phone or a custom field")
    fields: Optional[list[dict[str, Any]]] = Field(None, description="custom fields: {name, type, title}")


class DatabaseUpdate(Params):
    id: int
    name: Optional[str] = None
    fields: Optional[list[dict[str, Any]]] = Field(None, description="custom fields to add")


class DatabaseId(Params):
    id: int


MATCHING_HELP = ("Altcraft's matching: email, phone, profile_id, or custom (field_name + field_value); "
                 "absent: the first of profile_id, email, phone, key_value given")


class ProfileRef(Params):
    db_id: int
    matching: Optional[str] = Field(None, description=MATCHING_HELP)
    profile_id: Optional[str] = None
    email: Optional[str] = Field(None, description="matching email")
    phone: Optional[str] = Field(None, description="matching phone")
    field_name: Optional[str] = Field(None, description="matching custom: the field")
    field_value: Optional[Union[str, int, float, bool]] = Field(None, description="matching custom: its value")
    key_value: Optional[str] = Field(None, description="find by the database's key field (this platform's)")
    resource_id: Optional[int] = Field(None, description="accepted; subscriptions are not narrowed by it here")


class ProfileAdd(Params):
    db_id: int
    data: dict[str, Any] = Field(..., description="field values; Altcraft's `subscriptions` list may be inside")
    subscriptions: Optional[list[dict[str, Any]]] = None
    skip_triggers: bool = Field(False, description="the change is not announced: no trigger campaign or webhook reacts")
    skip_invalid_subscriptions: bool = Field(False, description="accepted; an invalid subscription is a 400 here")


class ProfileUpdate(ProfileRef):
    data: Optional[dict[str, Any]] = None
    subscriptions: Optional[list[dict[str, Any]]] = None
    skip_triggers: bool = Field(False, description="the change is not announced: no trigger campaign or webhook reacts")
    skip_invalid_subscriptions: bool = Field(False, description="accepted; an invalid subscription is a 400 here")


class ProfileImport(ProfileRef):
    """Altcraft's profiles/import: one profile, found by `matching`, updated or else created."""

    data: dict[str, Any] = Field(..., description="field values; Altcraft's `subscriptions` list may be inside")
    skip_triggers: bool = Field(False, description="the change is not announced: no trigger campaign or webhook reacts")
    skip_invalid_subscriptions: bool = Field(False, description="accepted; an invalid subscription is a 400 here")
    detect_geo: bool = Field(False, description="accepted; the city and country are always filled from the IP here")
    add_to_segments: Optional[list[int]] = Field(None, description="static segments (filled by hand) to put the profile in")
    remove_from_segments: Optional[list[int]] = Field(None, description="static segments (filled by hand) to take it out of")


class ProfileImportBatch(Params):
    db_id: int
    data: list[dict[str, Any]] = Field(..., max_length=MAX_IMPORT_ROWS)
    dry_run: bool = False
    subscribe_resource_id: Optional[int] = Field(None, description="subscribe new profiles to this resource (email)")


def _lookup(ctx, principal, p: ProfileRef, data: dict[str, Any] | None = None, *, default_email: bool = False):
    """The profiles of the database and the id of the profile `p` names (matching).

    Altcraft's import and update may name the profile only inside `data` (its e-mail or phone);
    with `default_email` (import), `data.email` counts even without `matching`, as its default.
    """
    profiles = ctx.profiles(principal.account_id, p.db_id)
    if data:
        try:  # the contact may be under Altcraft's name (`phones`)
            data = from_altcraft(data)
        except Invalid as exc:
            raise Invalid(f"data.{exc.field}", exc.reason) from None
    lookups = {"email": p.email, "phone": p.phone}
    named = p.matching is not None or any(v is not None for v in (p.profile_id, p.email, p.phone, p.key_value))
    for name in ("email", "phone"):
        wanted = p.matching == name or (default_email and not named and name == "email")
        if lookups[name] is None and data and wanted:
            lookups[name] = data.get(name)
    return profiles, profiles.match(p.matching, profile_id=p.profile_id, field_name=p.field_name,
                                    field_value=p.field_value, key_value=p.key_value, **lookups)


def _split(data: dict[str, Any], subscriptions: list | None) -> tuple[dict[str, Any], list | None]:
    """Altcraft sends a profile's subscriptions inside `data`; this platform beside it too."""
    if "subscriptions" not in data:
        return data, subscriptions
    if subscriptions is not None:
        raise Invalid("subscriptions", "given both inside data and beside it: send one")
    data = dict(data)
    return data, data.pop("subscriptions")


@api.endpoint("databases/list", DatabasesList, scope="account", tag="databases", returns_list=True,
              summary="Profile databases of the account")
def databases_list(ctx, principal, p):
    return page([d.as_dict() for d in ctx.databases(principal.account_id).list()], p)


@api.endpoint("databases/add", DatabaseAdd, scope="account", tag="databases", write=True,
              summary="Create a profile database")
def databases_add(ctx, principal, p: DatabaseAdd):
    return ctx.databases(principal.account_id).add(p.name, p.key, p.fields).as_dict()


@api.endpoint("databases/update", DatabaseUpdate, scope="account", tag="databases", write=True,
              summary="Rename a profile database or add custom fields")
def databases_update(ctx, principal, p: DatabaseUpdate):
    return ctx.databases(principal.account_id).update(p.id, p.name, p.fields).as_dict()


@api.endpoint("databases/delete", DatabaseId, scope="account", tag="databases", write=True,
              summary="Delete a profile database and its profiles")
def databases_delete(ctx, principal, p: DatabaseId):
    ctx.databases(principal.account_id).delete(p.id)
    return {"id": p.id}


@contextmanager
def _fields_in_data(params: type[Params]) -> Iterator[None]:
    """The domain names a profile field (`email: ...`); the answer names where it is sent: `data.email`."""
    try:
        yield
    except Invalid as exc:
        if exc.field.split(".")[0].split("[")[0] in params.model_fields:
            raise
        raise Invalid(f"data.{exc.field}", exc.reason) from None


@api.endpoint("profiles/add", ProfileAdd, scope="account", tag="profiles", write=True,
              summary="Add a profile (answers profile_id beside error, as Altcraft, and the profile in data)")
def profiles_add(ctx, principal, p: ProfileAdd):
    data, subscriptions = _split(p.data, p.subscriptions)
    profile = _create(ctx, principal, ctx.profiles(principal.account_id, p.db_id), data, subscriptions,
                      skip_triggers=p.skip_triggers, params=ProfileAdd)
    return Beside(profile, {"profile_id": profile["id"]})


def _create(ctx, principal, profiles, data: dict[str, Any], subscriptions: list | None, *,
            skip_triggers: bool, params: type[Params]) -> dict[str, Any]:
    with _fields_in_data(params):
        profile = profiles.add(data, subscriptions)
    if not skip_triggers:
        _announce(ctx, principal.account_id, profile, None, created=True)
    return profile


def _statuses(profile: dict[str, Any] | None) -> dict[tuple[int, str], str]:
    return {(s["resource_id"], s["channel"]): s["status"] for s in (profile or {}).get("subscriptions", [])}


def _announce(ctx, account_id: int, after: dict[str, Any], before: dict[str, Any] | None, *,
              created: bool = False, fields: tuple[str, ...] = ()) -> None:
    """The profile-change events of one stored change (domain/events.py)."""
    db_id, profile_id = after["db_id"], after["id"]
    if created:
        announce(ctx, events.profile_change("profile_created", account_id, db_id, profile_id))
    elif fields:
        announce(ctx, events.profile_change("profile_changed", account_id, db_id, profile_id, fields=fields))
    old = _statuses(before)
    for (resource_id, channel), status in _statuses(after).items():
        if status in ("subscribed", "unsubscribed") and old.get((resource_id, channel)) != status:
            announce(ctx, events.profile_change(f"profile_{status}", account_id, db_id, profile_id,
                                                resource_id=resource_id, channel=channel))


@api.endpoint("profiles/get", ProfileRef, scope="account", tag="profiles",
              summary="Get a profile by Altcraft's matching (email, phone, profile_id, custom) or its key")
def profiles_get(ctx, principal, p: ProfileRef):
    profiles, profile_id = _lookup(ctx, principal, p)
    profile = profiles.get(profile_id=profile_id)
    # Altcraft's answer is flat (`data.email`): the field values under Altcraft's system names
    # (`_fname`, `phones`...) and this platform's, beside this platform's keys
    flat = {**to_altcraft(profile["data"], profile.get("created_at")), **profile["data"]}
    return {**{k: v for k, v in flat.items() if k not in profile}, **profile}


def _update(ctx, principal, profiles, profile_id: str, data: dict[str, Any] | None,
            subscriptions: list | None, *, skip_triggers: bool, params: type[Params]) -> dict[str, Any]:
    before = profiles.get(profile_id=profile_id) if subscriptions else None
    with _fields_in_data(params):
        after = profiles.update(data, subscriptions=subscriptions, profile_id=profile_id)
    given = from_altcraft(data or {})  # valid by now: the fields under this platform's names
    changed = tuple(k for k in given if (before or {}).get("data", {}).get(k) != after["data"].get(k)) \
        if before else tuple(given)
    if not skip_triggers:
        _announce(ctx, principal.account_id, after, before or after, fields=changed)
    return after


@api.endpoint("profiles/update", ProfileUpdate, scope="account", tag="profiles", write=True,
              summary="Update fields or subscriptions of a profile found by matching (never creates one)")
def profiles_update(ctx, principal, p: ProfileUpdate):
    data, subscriptions = _split(p.data or {}, p.subscriptions)
    profiles, profile_id = _lookup(ctx, principal, p, data)
    after = _update(ctx, principal, profiles, profile_id, data, subscriptions,
                    skip_triggers=p.skip_triggers, params=ProfileUpdate)
    return Beside(after, {"profile_id": after["id"]})


@api.endpoint("profiles/delete", ProfileRef, scope="account", tag="profiles", write=True,
              summary="Delete a profile found by matching")
def profiles_delete(ctx, principal, p: ProfileRef):
    profiles, profile_id = _lookup(ctx, principal, p)
    profiles.delete(profile_id=profile_id)
    return {"profile_id": profile_id, "deleted": True}


@api.endpoint("profiles/import", ProfileImport, scope="account", tag="profiles", write=True,
              summary="Altcraft's import of one profile: found by matching and updated, or else created")
def profiles_import(ctx, principal, p: ProfileImport):
    data, subscriptions = _split(p.data, None)
    segments = ctx.segments(principal.account_id)
    for name in ("add_to_segments", "remove_from_segments"):  # checked before anything is written
        for index, segment_id in enumerate(getattr(p, name) or []):
            try:
                segments.check_manual(segment_id, p.db_id)
            except DomainError as exc:
                raise Invalid(f"{name}[{index}]", exc.reason if isinstance(exc, Invalid) else exc.message) from None
    try:
        profiles, profile_id = _lookup(ctx, principal, p, data, default_email=True)
    except NotFound:
        profiles, profile_id = ctx.profiles(principal.account_id, p.db_id), None
    if profile_id is None:
        profile = _create(ctx, principal, profiles, data, subscriptions,
                          skip_triggers=p.skip_triggers, params=ProfileImport)
    else:
        profile = _update(ctx, principal, profiles, profile_id, data, subscriptions,
                          skip_triggers=p.skip_triggers, params=ProfileImport)
    for segment_id in p.add_to_segments or []:
        segments.add_member(segment_id, p.db_id, profile["id"])
    for segment_id in p.remove_from_segments or []:
        segments.remove_member(segment_id, p.db_id, profile["id"])
    return Beside(profile, {"profile_id": profile["id"]})


@api.endpoint("profiles/import_batch", ProfileImportBatch, scope="account", tag="profiles", write=True,
              summary="Upsert up to 10,000 profiles on the database's key; bad rows are reported")
def profiles_import_batch(ctx, principal, p: ProfileImportBatch):
    profiles = ctx.profiles(principal.account_id, p.db_id)
    subscribe = (p.subscribe_resource_id, "email") if p.subscribe_resource_id else None
    report = import_rows(profiles, enumerate(p.data), dry_run=p.dry_run, unit="index",
                         subscribe=subscribe).as_dict()
    report["errors"] = [{"index": e.pop("line"), **e} for e in report["errors"]]
    return report


class SubscriptionSet(Params):
    """Altcraft's subscriptions/set: one subscription of a profile, set as of `date` (default now)."""

    db_id: int
    profile_id: str
    resource_id: int
    channel: str = Field(..., description="email, sms or push (domain/subscriptions.py CHANNELS)")
    status: str = Field("subscribed", description="subscribed, unsubscribed or suspended")
    date: Optional[datetime] = Field(None, description="when it changed (RFC 3339); an older change than the stored one loses")
    email: Optional[str] = Field(None, description="accepted; the contact is the profile's own field here")
    phone: Optional[str] = Field(None, description="accepted; the contact is the profile's own field here")
    priority: Optional[int] = Field(None, description="accepted and ignored")
    custom_fields: Optional[dict[str, Any]] = Field(None, description="accepted and ignored (no subscription fields here)")
    cats: Optional[list[str]] = Field(None, description="accepted and ignored (no categories here)")
    ip: Optional[str] = Field(None, description="accepted and ignored")
    url: Optional[str] = Field(None, description="accepted and ignored")
    skip_triggers: bool = Field(False, description="the change is not announced: no trigger campaign or webhook reacts")


@api.endpoint("subscriptions/set", SubscriptionSet, scope="account", tag="profiles", write=True,
              summary="Set one subscription of a profile (Altcraft's subscriptions/set)")
def subscriptions_set(ctx, principal, p: SubscriptionSet):
    profiles = ctx.profiles(principal.account_id, p.db_id)
    before = profiles.get(profile_id=p.profile_id)
    at = p.date if p.date is None or p.date.tzinfo else p.date.replace(tzinfo=timezone.utc)
    outcome = profiles.set_subscription(p.profile_id, p.resource_id, p.channel, p.status, at)
    if outcome == "no-profile":
        raise NotFound("profile not found")
    after = profiles.get(profile_id=p.profile_id)
    if not p.skip_triggers:
        _announce(ctx, principal.account_id, after, before)
    return {"profile_id": p.profile_id, "resource_id": p.resource_id, "channel": p.channel,
            "status": next(s["status"] for s in after["subscriptions"]
                           if (s["resource_id"], s["channel"]) == (p.resource_id, p.channel)),
            "outcome": outcome}


class SubscriptionsList(Params):
    """Altcraft's subscriptions/list: a profile's subscriptions."""

    db_id: int
    profile_id: str


class SubscriptionGet(SubscriptionsList):
    """Altcraft's subscriptions/get: one subscription, by resource and channel."""

    resource_id: int
    channel: str = Field(..., description="email, sms or push")
    email: Optional[str] = Field(None, description="accepted; the contact is the profile's own field here")
    phone: Optional[str] = Field(None, description="accepted; the contact is the profile's own field here")


def _altcraft_subscription(profile: dict[str, Any], subscription: dict[str, Any]) -> dict[str, Any]:
    """A subscription as Altcraft answers it: the contact from the profile's own field."""
    contact = {"email": ("email", "email"), "sms": ("phone", "phone")}.get(subscription["channel"])
    extra = {contact[0]: profile["data"].get(contact[1])} if contact else {}
    return {**subscription, **extra, "priority": 0, "custom_fields": {}}


@api.endpoint("subscriptions/list", SubscriptionsList, scope="account", tag="profiles",
              summary="A profile's subscriptions (Altcraft's subscriptions/list)")
def subscriptions_list(ctx, principal, p: SubscriptionsList):
    profile = ctx.profiles(principal.account_id, p.db_id).get(profile_id=p.profile_id)
    return [_altcraft_subscription(profile, s) for s in profile["subscriptions"]]


@api.endpoint("subscriptions/get", SubscriptionGet, scope="account", tag="profiles",
              summary="One subscription of a profile (Altcraft's subscriptions/get)")
def subscriptions_get(ctx, principal, p: SubscriptionGet):
    profile = ctx.profiles(principal.account_id, p.db_id).get(profile_id=p.profile_id)
    for subscription in profile["subscriptions"]:
        if (subscription["resource_id"], subscription["channel"]) == (p.resource_id, p.channel):
            return _altcraft_subscription(profile, subscription)
    raise NotFound(f"the profile has no {p.channel} subscription to resource {p.resource_id}")


class ProfileAddBatch(Params):
    """Altcraft's profiles/add_batch/: several profiles added at once, each answered on its own."""

    db_id: int
    data: list[dict[str, Any]] = Field(..., max_length=1000)
    skip_triggers: bool = Field(False, description="the changes are not announced: no trigger campaign or webhook reacts")
    skip_invalid_subscriptions: bool = Field(False, description="accepted; an invalid subscription fails its profile")


@api.endpoint("profiles/add_batch", ProfileAddBatch, scope="account", tag="profiles", write=True,
              summary="Add up to 1000 profiles; result: one {error, error_text, profile_id} each (Altcraft's)")
def profiles_add_batch(ctx, principal, p: ProfileAddBatch):
    profiles = ctx.profiles(principal.account_id, p.db_id)
    result = []
    for index, item in enumerate(p.data):
        try:
            data, subscriptions = _split(item, None)
            profile = _create(ctx, principal, profiles, data, subscriptions,
                              skip_triggers=p.skip_triggers, params=ProfileAddBatch)
        except DomainError as exc:  # one bad profile fails alone, as Altcraft answers it
            text = f"data[{index}].{exc.field.removeprefix('data.')}: {exc.reason}" if isinstance(exc, Invalid) else \
                f"data[{index}]: {exc.message}"
            result.append({"error": exc.code, "error_text": text, "profile_id": ""})
            continue
        result.append({"error": 0, "error_text": OK_TEXT, "profile_id": profile["id"]})
    return Beside({"added": sum(1 for r in result if r["profile_id"])}, {"result": result})


class SegStatic(ProfileRef):
    """Altcraft's profiles/segstatic/add and remove: a profile into or out of a static segment."""

    segment_id: int
    skip_triggers: bool = Field(False, description="accepted; no trigger reacts to segment membership here")


@api.endpoint("profiles/segstatic/add", SegStatic, scope="account", tag="segments", write=True,
              summary="Add a profile (found by matching) to a static segment filled by hand")
def segstatic_add(ctx, principal, p: SegStatic):
    _, profile_id = _lookup(ctx, principal, p)
    ctx.segments(principal.account_id).add_member(p.segment_id, p.db_id, profile_id)
    return None  # Altcraft answers {error, error_text}


@api.endpoint("profiles/segstatic/remove", SegStatic, scope="account", tag="segments", write=True,
              summary="Remove a profile (found by matching) from a static segment filled by hand")
def segstatic_remove(ctx, principal, p: SegStatic):
    _, profile_id = _lookup(ctx, principal, p)
    ctx.segments(principal.account_id).remove_member(p.segment_id, p.db_id, profile_id)
    return None
