"""Admin API: accounts, account users, API tokens (admin tokens only)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from altcraft.domain.errors import Invalid, NotFound
from altcraft.http.apiv11 import Paging, Params, page
from altcraft.services.apiv11 import api

TAG = "admin"


class AccountsList(Paging):
    pass


class AccountSave(Params):
    id: Optional[int] = Field(None, description="absent: create; present: update this account")
    name: Optional[str] = Field(None, description="unique name: lowercase letters, digits, _ . -")
    title: Optional[str] = None
    tz: Optional[str] = Field(None, description="IANA time zone, e.g. Europe/Moscow")
    tariff: Optional[str] = None


class AccountId(Params):
    id: int


class UsersList(Params):
    account_id: int
    active: Optional[bool] = None
    master: Optional[bool] = None
    lang: Optional[str] = None


class UserAdd(Params):
    account_id: int
    login: str
    password: str
    email: Optional[str] = None
    name: Optional[str] = None
    lang: Optional[str] = None
    master: Optional[bool] = None
    roles: Optional[list[str]] = None


class UserUpdate(Params):
    id: int
    password: Optional[str] = None
    email: Optional[str] = None
    name: Optional[str] = None
    lang: Optional[str] = None
    master: Optional[bool] = None
    active: Optional[bool] = None
    roles: Optional[list[str]] = None


class UserId(Params):
    id: int


class UserDelete(Params):
    """The user by `id` (this platform's), or by Altcraft's `account_id` + `name` (the login)."""

    id: Optional[int] = Field(None, description="the user's id")
    account_id: Optional[int] = Field(None, description="with name: Altcraft's way to name the user")
    name: Optional[str] = Field(None, description="the user's login (with account_id)")


class AccountFreeze(AccountId):
    frozen_details: Optional[dict[str, Any]] = Field(
        None, description="Altcraft's payment_url etc. shown to the account's users: accepted, not shown here")


class TokenAdd(Params):
    account_id: Optional[int] = Field(None, description="account scope: the account")
    user_id: Optional[int] = Field(None, description="optional: the account user it acts for")
    admin: bool = Field(False, description="true: an admin-scope token")
    name: str = ""


class TokenId(Params):
    id: int


@api.endpoint("admin/accounts/list/", AccountsList, scope="admin", tag=TAG, returns_list=True,
              summary="List accounts by id, from from_id on")
def accounts_list(ctx, principal, p: AccountsList):
    items, total = ctx.accounts.list(p.from_id - 1, p.limit)  # the store's from_id is exclusive
    # Altcraft's item keys beside this platform's own
    items = [{**a, "timezone": a["tz"], "tariff_id": a["tariff"], "is_active": a["active"]} for a in items]
    return page(items, p, total)


@api.endpoint("admin/accounts/save", AccountSave, scope="admin", tag=TAG, write=True,
              summary="Create (no id) or update an account")
def accounts_save(ctx, principal, p: AccountSave):
    return ctx.accounts.save(**p.model_dump())


@api.endpoint("admin/accounts/delete", AccountId, scope="admin", tag=TAG, write=True,
              summary="Delete an account with its users, tokens and data")
def accounts_delete(ctx, principal, p: AccountId):
    ctx.accounts.delete(p.id)
    ctx.drop_account_data(p.id)
    return {"id": p.id}


def _flag(path: str, flag: str, value: bool, summary: str) -> None:
    @api.endpoint(path, AccountId, scope="admin", tag=TAG, write=True, summary=summary)
    def handler(ctx, principal, p: AccountId):
        return ctx.accounts.set_flag(p.id, flag, value)


_flag("admin/accounts/activate", "active", True, "Activate an account")
_flag("admin/accounts/deactivate", "active", False, "Deactivate an account: its tokens stop working")


@api.endpoint("admin/accounts/freeze", AccountFreeze, scope="admin", tag=TAG, write=True,
              summary="Freeze an account: read-only")
def accounts_freeze(ctx, principal, p: AccountFreeze):
    return ctx.accounts.set_flag(p.id, "frozen", True)


_flag("admin/accounts/unfreeze", "frozen", False, "Unfreeze an account")


@api.endpoint("admin/accounts/users/list", UsersList, scope="admin", tag=TAG, returns_list=True,
              summary="Users of an account")
def users_list(ctx, principal, p: UsersList):
    ctx.accounts.get(p.account_id)
    users = ctx.users.list(p.account_id, p.active, p.master, p.lang)
    # Altcraft's item keys beside this platform's own (`login`, `name`)
    users = [{**u, "username": u["login"], "first_name": (u.get("name") or "").partition(" ")[0],
              "last_name": (u.get("name") or "").partition(" ")[2]} for u in users]
    return users, len(users)


@api.endpoint("admin/accounts/users/add", UserAdd, scope="admin", tag=TAG, write=True,
              summary="Add a user to an account (weak passwords are refused)")
def users_add(ctx, principal, p: UserAdd):
    ctx.accounts.get(p.account_id)
    fields = p.model_dump(exclude={"account_id", "login", "password"}, exclude_none=True)
    return ctx.users.add(p.account_id, p.login, p.password, **fields)


@api.endpoint("admin/accounts/users/update", UserUpdate, scope="admin", tag=TAG, write=True,
              summary="Update a user")
def users_update(ctx, principal, p: UserUpdate):
    return ctx.users.update(p.id, **p.model_dump(exclude={"id"}, exclude_none=True))


@api.endpoint("admin/accounts/users/delete", UserDelete, scope="admin", tag=TAG, write=True,
              summary="Delete a user and its tokens (by id, or by account_id + name as Altcraft)")
def users_delete(ctx, principal, p: UserDelete):
    user_id = p.id
    if user_id is None:
        if p.account_id is None or p.name is None:
            raise Invalid("id", "missing: give id, or account_id and name (the login)")
        ctx.accounts.get(p.account_id)
        user_id = next((u["id"] for u in ctx.users.list(p.account_id) if u["login"] == p.name), None)
        if user_id is None:
            raise NotFound(f"no user {p.name!r} in account {p.account_id}")
    elif p.account_id is not None and ctx.users.get(user_id)["account_id"] != p.account_id:
        raise NotFound(f"no user {user_id} in account {p.account_id}")
    ctx.users.delete(user_id)
    return {"id": user_id}


@api.endpoint("admin/tokens/add", TokenAdd, scope="admin", tag=TAG, write=True,
              summary="Create an API token; the token is shown only in this answer")
def tokens_add(ctx, principal, p: TokenAdd):
    if p.admin == (p.account_id is not None):
        raise Invalid("account_id", "give account_id for an account token, or admin=true")
    token, info = ctx.tokens.create("admin" if p.admin else "account", p.account_id, p.user_id, p.name)
    return {**info, "token": token}


@api.endpoint("admin/tokens/revoke", TokenId, scope="admin", tag=TAG, write=True,
              summary="Revoke an API token")
def tokens_revoke(ctx, principal, p: TokenId):
    ctx.tokens.revoke(p.id)
    return {"id": p.id}
