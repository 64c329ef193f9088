"""Fixtures of the integration tests: the v1.1 API (Flask's client, real stores) and the
sending pipeline (tests/integration/mta_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from altcraft import registry
from altcraft.schema import migrate as migration
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.api_client import Client
from tests.conftest import free_port
from tests.integration.mta_pipeline import VERIFIER, Pipeline


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


@pytest.fixture
def sink_port():
    return free_port()


@pytest.fixture
def pipeline(harness, basedir, sink_port, vhost):
    pipe = Pipeline(harness, basedir, sink_port, vhost)
    yield pipe
    pipe.stop()


@pytest.fixture(scope="session")
def dkim_verifier() -> Path:
    """Perl's Mail::DKIM: a DKIM implementation independent of the dkimpy that signs."""
    from tests.system_packages import ensure

    ensure("libmail-dkim-perl", ["perl", "-MMail::DKIM::Verifier", "-e", "1"])
    return VERIFIER
