"""One api process for all of tests/compat/ (an api start is the slow part), and the account
the tests of mailings and senders share; each module may make accounts of its own on it."""

from __future__ import annotations

import pytest

from tests.lib.altcraft_api import api_process, new_account


@pytest.fixture(scope="session")
def compat_api(harness, tmp_path_factory):
    """The admin client of the shared api process (`.port` is the process's port)."""
    basedir = tmp_path_factory.mktemp("compat") / "akd"
    basedir.mkdir()
    with api_process(harness, basedir) as admin:
        yield admin


@pytest.fixture(scope="session")
def ops(compat_api):
    return new_account(compat_api, f"ops-{compat_api.port}")
