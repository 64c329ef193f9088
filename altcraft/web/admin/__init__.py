"""webadmin: the operator's panel (Altcraft's port 8081): platform administrators sign in
(argon2 password, then a TOTP code when enrolled or required) and manage accounts. The base
(sessions, CSRF, CSP, lock-out, i18n, layout) is altcraft.web; the session cookie (ak_webadmin)
and its key are derived from this process's name, so a webcontrol session is nothing here.
"""

from __future__ import annotations

from flask import Flask

from altcraft.config import MainConfig
from altcraft.domain.errors import NotFound
from altcraft.registry import Process
from altcraft.web.app import PanelContext, Principals, create_panel_app


def _load(ctx: PanelContext, uid: int) -> tuple[dict, None] | None:
    try:
        return ctx.platform.admins.get(uid), None
    except NotFound:
        return None


def _second_step(ctx: PanelContext, admin: dict) -> str | None:
    if admin.get("totp_secret"):
        return "admin.totp"
    if ctx.config.WEBADMIN_TOTP_REQUIRED:
        return "admin.totp_enrol"  # no session without a second factor
    return None


ADMINS = Principals(
    home="admin.accounts",
    verify=lambda ctx, login, password: ctx.platform.admins.verify(login, password),
    load=_load,
    can_change=lambda admin, account: True,
    set_password=lambda ctx, admin, new: ctx.platform.admins.set_password(admin["id"], new),
    second_step=_second_step,
    actor_kind="admin",
)


def create_app(config: MainConfig, process: Process) -> Flask:
    from altcraft.web.admin.pages import blueprint
    return create_panel_app(config, process, blueprint, ADMINS)
