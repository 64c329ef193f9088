"""Account API: profile databases and profiles (account tokens only, scoped to their account)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from pydantic import Field

from altcraft.domain import events
from altcraft.domain.errors import Invalid
from altcraft.domain.importer import import_rows
from altcraft.http.apiv11 import Paging, Params, page
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


class ProfileRef(Params):
    db_id: int
    profile_id: Optional[str] = None
    email: Optional[str] = Field(None, description="find by email (when it is the key)")
    phone: Optional[str] = Field(None, description="find by phone (when it is the key)")
    key_value: Optional[str] = Field(None, description="find by the database's key field")


class ProfileAdd(Params):
    db_id: int
    data: dict[str, Any]
    subscriptions: Optional[list[dict[str, Any]]] = None


class ProfileUpdate(ProfileRef):
    data: Optional[dict[str, Any]] = None
    subscriptions: Optional[list[dict[str, Any]]] = None


class ProfileImport(Params):
    db_id: int
    data: list[dict[str, Any]] = Field(..., max_length=MAX_IMPORT_ROWS)
    dry_run: bool = False
    subscribe_resource_id: Optional[int] = Field(None, description="subscribe new profiles to this resource (email)")


def _lookup(ctx, principal, p: ProfileRef):
    profiles = ctx.profiles(principal.account_id, p.db_id)
    key_value = p.key_value
    for name in ("email", "phone"):
        value = getattr(p, name)
        if value is not None:
            if profiles.database.key != name:
                from altcraft.domain.errors import Invalid
                raise Invalid(name, f"the key of database {p.db_id} is {profiles.database.key!r}")
            key_value = value
    return profiles, {"profile_id": p.profile_id, "key_value": key_value}


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
              summary="Add a profile")
def profiles_add(ctx, principal, p: ProfileAdd):
    with _fields_in_data(ProfileAdd):
        profile = ctx.profiles(principal.account_id, p.db_id).add(p.data, p.subscriptions)
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
              summary="Get a profile by id or by its key")
def profiles_get(ctx, principal, p: ProfileRef):
    profiles, ref = _lookup(ctx, principal, p)
    return profiles.get(**ref)


@api.endpoint("profiles/update", ProfileUpdate, scope="account", tag="profiles", write=True,
              summary="Update fields or subscriptions of a profile")
def profiles_update(ctx, principal, p: ProfileUpdate):
    profiles, ref = _lookup(ctx, principal, p)
    before = profiles.get(**ref) if p.subscriptions else None
    with _fields_in_data(ProfileUpdate):
        after = profiles.update(p.data, subscriptions=p.subscriptions, **ref)
    changed = tuple(k for k in (p.data or {}) if (before or {}).get("data", {}).get(k) != after["data"].get(k)) \
        if before else tuple(p.data or ())
    _announce(ctx, principal.account_id, after, before or after, fields=changed)
    return after


@api.endpoint("profiles/delete", ProfileRef, scope="account", tag="profiles", write=True,
              summary="Delete a profile")
def profiles_delete(ctx, principal, p: ProfileRef):
    profiles, ref = _lookup(ctx, principal, p)
    profiles.delete(**ref)
    return {"deleted": True}


@api.endpoint("profiles/import", ProfileImport, scope="account", tag="profiles", write=True,
              summary="Upsert up to 10,000 profiles on the database's key; bad rows are reported")
def profiles_import(ctx, principal, p: ProfileImport):
    profiles = ctx.profiles(principal.account_id, p.db_id)
    subscribe = (p.subscribe_resource_id, "email") if p.subscribe_resource_id else None
    report = import_rows(profiles, enumerate(p.data), dry_run=p.dry_run, unit="index",
                         subscribe=subscribe).as_dict()
    report["errors"] = [{"index": e.pop("line"), **e} for e in report["errors"]]
    return report
