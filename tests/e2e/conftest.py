"""Fixtures of the browser tests: Debian's Chromium, installed when missing (never a skip)."""

from __future__ import annotations

import os

import pytest

from tests.lib.packages import MissingPackage, ensure

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    try:
        ensure("chromium", lambda: os.path.exists(CHROMIUM))
    except MissingPackage as exc:
        pytest.fail(f"the test needs it: {exc}", pytrace=False)
    return CHROMIUM
