"""webadmin's MTA rules page against the real stores: a wrong rule is refused naming its
field and nothing is stored, a save is a new version, a save from a stale version is refused.
(The queue actions against a running akmtad: tests/e2e/test_webadmin_browser.py; with
akmtad down: test_webadmin_routes.py.)"""

from __future__ import annotations

import json
import re

import pytest

from altcraft import registry
from altcraft.domain.audit import Filter
from altcraft.web.admin import create_app, mta_form
from tests.lib.webpanel import admin_signin, make_admin

pytestmark = pytest.mark.integration


def _form(platform, **changes) -> dict:
    values = mta_form.to_form(platform.config.MTA)
    values["base_version"] = str(platform.mta_rules.version())
    values.update(changes)
    return values


def _error_of(html: str, name: str) -> str:
    match = re.search(rf'<small id="{re.escape(name)}-error"[^>]*>([^<]*)</small>', html)
    assert match, f"no error shown next to {name}"
    assert re.search(rf'name="{re.escape(name)}"[^>]*aria-invalid="true"', html), f"{name} not marked invalid"
    return match.group(1)


def test_rules_page_refuses_wrong_rules_saves_versions_and_refuses_a_stale_save(config, platform):
    client = create_app(config, registry.get("webadmin")).test_client()
    admin = make_admin(platform)
    token = admin_signin(client, admin["login"])
    journal, rules = platform.journal, platform.mta_rules
    assert "No version saved" in client.get("/mta/rules").data.decode()

    # row 0 left blank, row 1 wrong: the domain names BOUNCE_PATTERNS[0], the page the row it came from
    wrong = client.post("/mta/rules", data={**_form(platform, **{
        "BOUNCE_PATTERNS[1].TYPE": "hard", "BOUNCE_PATTERNS[1].PATTERN": "user (unknown"}), "csrf_token": token})
    assert wrong.status_code == 400
    html = wrong.data.decode()
    assert _error_of(html, "BOUNCE_PATTERNS[1].PATTERN").startswith(
        "rules.BOUNCE_PATTERNS[0].PATTERN: not a regular expression")
    assert 'value="user (unknown"' in html  # what was typed stays on the form
    for changes, field, reason in (
            ({"RETRY.INTERVAL_SECONDS": "soon"}, "RETRY.INTERVAL_SECONDS", "RETRY.INTERVAL_SECONDS: a number"),
            ({"RETRY.MAX_ATTEMPTS": "0"}, "RETRY.MAX_ATTEMPTS", "rules.RETRY.MAX_ATTEMPTS:"),
            ({"LOCK_RULES[0].PATTERN": "421 (", "LOCK_RULES[0].SECONDS": "60"}, "LOCK_RULES[0].PATTERN",
             "rules.LOCK_RULES[0].PATTERN: not a regular expression"),
            ({"STRATEGIES": '{"gmail": {"DOMAINS": ["gmail.com"], "RATE": "fast"}}'}, "STRATEGIES",
             "rules.STRATEGIES.gmail.RATE:"),
            ({"STRATEGIES": "{gmail"}, "STRATEGIES", "STRATEGIES: not JSON")):
        response = client.post("/mta/rules", data={**_form(platform, **changes), "csrf_token": token})
        assert response.status_code == 400, field
        assert _error_of(response.data.decode(), field).startswith(reason), field
    assert rules.version() == 0 and journal.head() == 0  # nothing stored, nothing journaled

    saved = client.post("/mta/rules", data={**_form(platform, **{
        "RETRY.TYPE": "fixed", "RETRY.INTERVAL_SECONDS": "1",
        "BOUNCE_PATTERNS[0].TYPE": "hard", "BOUNCE_PATTERNS[0].PATTERN": "user unknown",
        "BOUNCE_PATTERNS[0].NAME": "unknown"}), "csrf_token": token})
    assert saved.status_code == 302 and saved.headers["Location"] == "/mta/rules?saved=1"
    version = rules.get()
    assert (version["version"], version["saved_by"]) == (1, admin["login"])
    # the sections equal to main.json's are not stored: main.json stays their source
    assert sorted(version["rules"]) == ["BOUNCE_PATTERNS", "RETRY"]
    assert version["rules"]["RETRY"]["INTERVAL_SECONDS"] == 1 and version["rules"]["RETRY"]["TYPE"] == "fixed"
    entry, = journal.list(Filter(limit=5))
    assert (entry["action"], entry["object_kind"], entry["object_id"]) == ("admin.mta_rules", "mta_rules", "1")
    summary = json.loads(entry["summary"]) if isinstance(entry["summary"], str) else entry["summary"]
    assert summary == {"base_version": 0, "saved": version["rules"]}  # what was saved, not the whole form
    page = client.get("/mta/rules?saved=1").data.decode()
    assert 'data-testid="rules-version-1"' in page and admin["login"] in page
    assert 'name="RETRY.INTERVAL_SECONDS" value="1"' in page and 'value="user unknown"' in page

    # a second operator whose page still says version 0 is told, not silently overwritten
    stale = client.post("/mta/rules", data={**_form(platform, **{"RETRY.INTERVAL_SECONDS": "7200"}),
                                            "base_version": "0", "csrf_token": token})
    assert stale.status_code == 409 and "Someone else changed the MTA rules" in stale.data.decode()
    assert rules.version() == 1 and journal.head() == 1

