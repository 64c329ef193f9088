"""Fixtures of the integration tests that drive the v1.1 API (Flask's client, real stores)."""

from __future__ import annotations

import pytest

from altcraft import registry
from altcraft.schema import migrate as migration
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.api_client import Client


@pytest.fixture
def platform(config):
    migration.run(config)
    platform = Platform(config)
    yield platform
    platform.close()


@pytest.fixture
def admin(config, platform) -> Client:
    token, _ = platform.tokens.create("admin")
    return Client(create_app(config, registry.get("api")).test_client(), token)
