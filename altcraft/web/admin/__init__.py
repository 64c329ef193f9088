"""webadmin: the operator's panel (Altcraft's port 8081): platform administrators sign in
(argon2 password, or the directory's for a directory administrator, then a TOTP code when
enrolled or required) and manage accounts. The base (sessions, CSRF, CSP, lock-out, i18n,
layout) is altcraft.web; the session cookie (ak_webadmin) and its key are derived from this
process's name, so a webcontrol session is nothing here. A `viewer` administrator (a directory
group mapped to that role) sees every page and changes nothing.
"""

from __future__ import annotations

from flask import Flask

from altcraft.config import MainConfig
from altcraft.domain.admin_signin import Change
from altcraft.domain.admins import can_change
from altcraft.domain.errors import NotFound
from altcraft.registry import Process
from altcraft.web.app import PanelContext, Principals, create_panel_app


def _load(ctx: PanelContext, uid: int) -> tuple[dict, None] | None:
    try:
        admin = ctx.platform.admins.get(uid)
    except NotFound:
        return None
    return (admin, None) if admin.get("active", True) else None


def _journal_directory_change(change: Change) -> None:
    """A directory administrator's record made, changed or deactivated by a sign-in is a change:
    journaled under that administrator's name, like its own actions."""
    from altcraft.web.app import journal_change
    journal_change(f"admin.directory_{change.action}", who=change.admin, object_kind="admin",
                   object_id=change.admin["id"], changes=change.changes)


def _verify(ctx: PanelContext, login: str, password: str) -> dict | None:
    return ctx.platform.admin_sign_in(_journal_directory_change).verify(login, password)


def _second_step(ctx: PanelContext, admin: dict) -> str | None:
    if admin.get("totp_secret"):
        return "admin.totp"
    if ctx.config.WEBADMIN_TOTP_REQUIRED:
        return "admin.totp_enrol"  # no session without a second factor
    return None


ADMINS = Principals(
    home="admin.accounts",
    verify=_verify,
    load=_load,
    can_change=lambda admin, account: can_change(admin),
    set_password=lambda ctx, admin, new: ctx.platform.admins.set_password(admin["id"], new),
    second_step=_second_step,
    actor_kind="admin",
)


def create_app(config: MainConfig, process: Process) -> Flask:
    from altcraft.web.admin.pages import blueprint
    return create_panel_app(config, process, blueprint, ADMINS)
