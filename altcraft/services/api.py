"""The `api` process: Altcraft API v1.1 (POST /api/v1.1/<path>).

So far it carries the service skeleton (health, readiness, metrics) and the v1.1 answer
envelope; the account, user and profile endpoints arrive with issue #3.
"""

from __future__ import annotations

from flask import Flask, jsonify

from altcraft.config import MainConfig
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.registry import Process

ERROR_UNKNOWN_METHOD = 404


def envelope_error(code: int, text: str, status: int):
    return jsonify(data=None, error=code, error_text=text), status


def create_app(config: MainConfig, process: Process) -> Flask:
    app = create_service_app(process.name, dependency_checker(config, process.requires))

    @app.route("/api/v1.1/<path:method>", methods=["GET", "POST"])
    def unknown_method(method: str):
        return envelope_error(ERROR_UNKNOWN_METHOD, f"Unknown API method: {method}", 404)

    return app
