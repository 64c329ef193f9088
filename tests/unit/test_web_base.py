"""The panels' base without servers: vendored front-end files against their lock, the
Russian catalogue against the messages the code uses, the CSP's strictness."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from altcraft.web import i18n, security

WEB = Path(__file__).resolve().parents[2] / "altcraft" / "web"
VENDOR = WEB / "static" / "vendor"
# the browser tests' own files (axe-core): not the panel's, not in the wheel
TEST_VENDOR = Path(__file__).resolve().parents[1] / "e2e" / "vendor"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.mark.parametrize("vendor", [VENDOR, TEST_VENDOR], ids=["panel", "tests"])
def test_every_vendored_file_matches_the_lock(vendor):
    lock = json.loads((vendor / "vendor.lock.json").read_text())
    entries = lock["files"]
    assert entries, "the lock lists no file"
    listed = set()
    for entry in entries:
        assert set(entry) >= {"name", "version", "file", "sha256", "licence"}, entry
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), f"{entry['name']}: not an exact version"
        path = vendor / entry["file"]
        assert path.is_file(), f"{entry['file']} is in the lock but missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], \
            f"{entry['file']} differs from the lock (run scripts/vendor-frontend.py)"
        listed.add(path)
    on_disk = {p for p in vendor.rglob("*") if p.is_file() and p.name != "vendor.lock.json"}
    assert on_disk == listed, f"not in the lock: {sorted(map(str, on_disk - listed))}"
    for name in {e["name"] for e in entries}:
        files = [e["file"] for e in entries if e["name"] == name]
        assert any(Path(f).name.startswith(("LICENSE", "LICENCE")) for f in files), f"{name}: no licence file"
        assert len({e["version"] for e in entries if e["name"] == name}) == 1, f"{name}: two versions"


def test_htmx_and_uplot_are_pinned_as_the_research_chose():
    versions = {e["name"]: e["version"] for e in json.loads((VENDOR / "vendor.lock.json").read_text())["files"]}
    assert versions == {"htmx.org": "4.0.1", "uplot": "1.6.32"}


def test_axe_core_is_pinned_for_the_browser_tests_only():
    versions = {e["name"]: e["version"] for e in json.loads((TEST_VENDOR / "vendor.lock.json").read_text())["files"]}
    assert versions == {"axe-core": "4.14.1"}
    assert not list(VENDOR.rglob("axe*")), "axe-core is for the tests, not shipped with the panel"


def _messages() -> set[str | tuple[str, str]]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), [("**/templates/**.html", "jinja2"), ("**.py", "python")],
            options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "gettext_": None, "ngettext_": (1, 2)}):
        found.add(message)
    return found


def test_every_message_has_a_russian_translation_with_the_same_placeholders():
    with (WEB / "translations" / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle, locale="ru")
    used = _messages()
    assert len(used) > 40
    for message in used:
        key = message[0] if isinstance(message, tuple) else message
        entry = catalogue.get(key)
        assert entry is not None and entry.string, f"no Russian for {key!r}"
        translations = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for text in translations:
            assert text, f"an empty plural form for {key!r}"
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(key)), key


def test_russian_is_compiled_from_the_po_file():
    ru = i18n.translations("ru")
    assert ru.gettext("Sign in") == "Вход"
    assert ru.ngettext("Too many failed sign-ins for this login: try again in %(num)d minute.",
                       "Too many failed sign-ins for this login: try again in %(num)d minutes.", 5).endswith("минут.")
    assert i18n.translations("en").gettext("Sign in") == "Sign in"


def test_the_csp_allows_no_inline_code_and_no_eval():
    policy = security.content_security_policy("abc")
    assert "unsafe" not in policy
    assert "script-src 'self' 'nonce-abc'" in policy and "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy


def test_the_preview_policy_runs_nothing_but_shows_styles_and_images():
    directives = dict((d.split(" ", 1) + [""])[:2] for d in security.PREVIEW_POLICY.split("; "))
    assert "script-src" not in directives and directives["default-src"] == "'none'"
    assert directives["sandbox"] == ""  # no allow-scripts, no allow-same-origin
    assert directives["style-src"] == "'unsafe-inline'" and "data:" in directives["img-src"]
    assert directives["frame-ancestors"] == "'self'" and "unsafe-eval" not in security.PREVIEW_POLICY
