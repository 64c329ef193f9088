"""tests/lib/packages.py: a missing Debian tool is installed when it can be, and otherwise
named in one line (bench scripts stop with it, tests fail with it)."""

from __future__ import annotations

import pytest

from tests.lib import packages


@pytest.fixture
def apt(monkeypatch):
    """apt-get replaced: records the packages asked for, "installs" when told to."""
    calls: list[str] = []
    state = {"installs": True, "installed": False, "error": ""}

    def install(package, preseed):
        calls.append(package)
        state["installed"] = state["installs"]
        return "" if state["installs"] else state["error"]

    monkeypatch.setattr(packages, "_apt_install", install)
    monkeypatch.setattr(packages.shutil, "which",
                        lambda tool, path=None: "/usr/bin/apt-get" if tool == "apt-get" else None)
    return calls, state


def test_a_present_tool_installs_nothing(apt):
    calls, _ = apt
    packages.ensure("coreutils", ["true"])
    assert calls == []


def test_root_installs_what_is_missing(apt, monkeypatch):
    calls, state = apt
    monkeypatch.setattr(packages.os, "geteuid", lambda: 0)
    packages.ensure("wrk", lambda: state["installed"])
    assert calls == ["wrk"]


def test_without_root_the_package_is_named_and_nothing_is_tried(apt, monkeypatch):
    calls, state = apt
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)
    with pytest.raises(packages.MissingPackage) as caught:
        packages.ensure("postfix", lambda: state["installed"])
    assert calls == []
    assert str(caught.value) == "Debian's postfix is not installed: as root, apt-get install -y postfix"


def test_a_failed_install_is_reported_with_apt_s_reason(apt, monkeypatch):
    calls, state = apt
    state.update(installs=False, error="E: Unable to locate package nginx-light")
    monkeypatch.setattr(packages.os, "geteuid", lambda: 0)
    with pytest.raises(packages.MissingPackage) as caught:
        packages.ensure("nginx-light", lambda: state["installed"])
    assert calls == ["nginx-light"]
    assert "apt-get install -y nginx-light` failed (E: Unable to locate package nginx-light)" in str(caught.value)


def test_a_script_stops_with_one_line_naming_package_and_tool(apt, monkeypatch):
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as caught:
        packages.require("smtp-sink", "postfix")
    message = str(caught.value.code)
    assert "\n" not in message and "postfix" in message and "`smtp-sink`" in message
