"""The `api` process: Altcraft API v1.1 (POST /api/v1.1/<path>), admin and account areas."""

from __future__ import annotations

from flask import Flask

from altcraft.config import MainConfig
from altcraft.http import apiv11, openapi
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.registry import Process
from altcraft.services.apiv11 import api
from altcraft.wiring import Platform


def create_app(config: MainConfig, process: Process) -> Flask:
    app = create_service_app(process.name, dependency_checker(config, process.requires))
    apiv11.install(app)
    platform: dict[str, Platform] = {}

    def context() -> Platform:
        # one Platform per worker process, made after the fork (MongoClient is not fork-safe)
        if "p" not in platform:
            platform["p"] = Platform(config)
        return platform["p"]

    document = openapi.build(api)
    app.register_blueprint(apiv11.blueprint(api, context, lambda: document))
    return app
