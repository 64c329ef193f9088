"""webcontrol: the marketer's panel (Altcraft's port 8082). The pages are in pages.py; the
base (sign-in, sessions, CSRF, CSP, i18n, layout) is altcraft.web."""

from __future__ import annotations

from flask import Flask

from altcraft.config import MainConfig
from altcraft.registry import Process
from altcraft.web.app import create_panel_app


def create_app(config: MainConfig, process: Process) -> Flask:
    from altcraft.web.control.pages import blueprint
    return create_panel_app(config, process, blueprint)
