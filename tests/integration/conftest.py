"""Fixtures of the integration tests: the v1.1 API (Flask's client, real stores) and the
sending pipeline (tests/lib/mta.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from altcraft import registry
from altcraft.schema import migrate as migration
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.lib.api import Client
from tests.lib.harness import migrated_config
from tests.lib.mta import VERIFIER, Pipeline
from tests.lib.packages import MissingPackage, ensure
from tests.lib.ports import free_port


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
    try:
        ensure("libmail-dkim-perl", ["perl", "-MMail::DKIM::Verifier", "-e", "1"])
    except MissingPackage as exc:
        pytest.fail(f"the test needs it: {exc}", pytrace=False)
    return VERIFIER


@pytest.fixture(scope="module")
def stores(harness, tmp_path_factory):
    """One set of stores, migrated once, for a module whose tests each make an account of
    their own (the webcontrol page tests): (config, Platform)."""
    config = migrated_config(harness, tmp_path_factory.mktemp("akd"))
    platform = Platform(config)
    yield config, platform
    platform.close()
