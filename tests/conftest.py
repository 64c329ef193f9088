"""Fixtures shared by the whole suite (the helpers they call live in tests/lib).

Integration tests run against the real servers of tests/harness/servers.sh. The harness is
started here if it is not running; a server that cannot be had fails the run loudly. It is
never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib import broker
from tests.lib.harness import HarnessError, make_config, start as start_harness
from tests.lib.stand import make_stand


@pytest.fixture(scope="session")
def harness() -> dict:
    """Connection facts of the running real servers (starting them if needed)."""
    try:
        return start_harness()
    except HarnessError as exc:
        pytest.fail(f"integration tests cannot run: {exc}", pytrace=False)


@pytest.fixture
def vhost(harness) -> str:
    """A RabbitMQ vhost of the test's own, so queues left by another test never leak in."""
    name = broker.add_vhost(harness)
    yield name
    broker.delete_vhost(name)


@pytest.fixture
def stand(harness, basedir, vhost):
    """The tracking stand (tests/lib/stand.py): config, processes under akd, helpers."""
    stand = make_stand(harness, basedir, vhost)
    yield stand
    stand.stop()


@pytest.fixture
def basedir(tmp_path: Path) -> Path:
    path = tmp_path / "akd"
    path.mkdir()
    return path


@pytest.fixture
def main_json(harness: dict, basedir: Path) -> Path:
    """Path of a ready main.json for the harness; the file may be rewritten by the test."""
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir), indent=2))
    return path


@pytest.fixture
def config(main_json: Path):
    from altcraft import config as cfg

    loaded, _ = cfg.load(main_json)
    return loaded
