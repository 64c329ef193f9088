"""webcontrol's trigger campaign and webhook pages on the real stores: the domain's
refusals shown under their fields, a trigger created inactive and switched on and off, a
webhook's secret shown once (not cached, not journaled, never on its page again), a private
address refused, and the delivery log with a replay of what failed."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from altcraft import registry
from altcraft.domain.audit import Filter
from altcraft.web.control import create_app
from altcraft.wiring import Platform
from tests.lib.harness import migrated_config
from tests.lib.webpanel import make_tenant, signin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signed_in(harness, tmp_path_factory):
    platform = Platform(migrated_config(harness, tmp_path_factory.mktemp("akd")))
    tenant = make_tenant(platform, profiles=1, segments=1, templates=1, campaigns=("draft",))  # and a sender
    client = create_app(platform.config, registry.get("webcontrol")).test_client()
    yield platform, tenant, client, signin(client, tenant.writer)
    platform.close()


def _field_error(html: str, name: str) -> str:
    found = re.search(rf'id="{name}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


def test_a_trigger_campaign_is_made_inactive_and_switched_on_and_off(signed_in):
    platform, tenant, client, token = signed_in
    good = {"csrf_token": token, "name": "Paid", "kind": "event", "event": "order_paid", "db_id": tenant.db_ids[-1],
            "template_id": tenant.template_ids[-1], "sender": f"s:{tenant.sender_id}", "resource_id": "1",
            "delay": "0"}
    for change, field, reason in (({"event": "has space"}, "event", "1-64 characters of letters"),
                                  ({"template_id": ""}, "template_id", "choose a template"),
                                  ({"delay": "soon"}, "delay", "whole seconds"),
                                  ({"sender": ""}, "sender", "give exactly one of sender_id and vsender_id")):
        response = client.post("/triggers/new", data={**good, **change})
        assert response.status_code == 400, change
        assert _field_error(response.data.decode(), field).startswith(reason), (field, _field_error(response.data.decode(), field))
    assert platform.triggers.list(tenant.account_id) == [], "a refused form stored a trigger campaign"
    response = client.post("/triggers/new", data={**good, "kind": "subscription", "status": "unsubscribed",
                                                  "status_resource": "2"})
    assert response.status_code == 302
    trigger_id = int(response.headers["Location"].rsplit("/", 1)[1])
    stored = platform.triggers.get(tenant.account_id, trigger_id)
    assert stored["active"] is False
    assert stored["trigger"] == {"type": "subscription", "status": "unsubscribed", "resource_id": 2}
    page = client.get(f"/triggers/{trigger_id}").data.decode()
    assert 'data-testid="trigger-activate"' in page and "profile unsubscribed (resource 2)" in page
    client.post(f"/triggers/{trigger_id}/activate", data={"csrf_token": token})
    assert platform.triggers.get(tenant.account_id, trigger_id)["active"] is True
    assert f'data-testid="trigger-state-{trigger_id}">active<' in client.get("/triggers").data.decode()
    client.post(f"/triggers/{trigger_id}/deactivate", data={"csrf_token": token})
    assert platform.triggers.get(tenant.account_id, trigger_id)["active"] is False


def test_a_webhook_secret_is_shown_once_and_the_log_replays_what_failed(signed_in):
    platform, tenant, client, token = signed_in
    response = client.post("/webhooks/new", data={"csrf_token": token, "url": "http://10.1.2.3/hook", "events": "#"})
    assert response.status_code == 400 and _field_error(response.data.decode(), "url").startswith("refused")
    response = client.post("/webhooks/new", data={"csrf_token": token, "url": "http://192.0.32.10/hook",
                                                  "events": "custom.* email.clicked", "description": "shop"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'data-testid="webhook-secret">(whsec_[^<]+)<', response.data.decode()).group(1)
    [hook] = platform.webhooks.list(tenant.account_id)
    assert hook["events"] == ["custom.*", "email.clicked"]
    entry, = platform.journal.list(Filter(limit=1))
    assert entry["action"] == "control.webhook_new" and secret not in json.dumps(entry, default=str)
    page = client.get(f"/webhooks/{hook['id']}").data.decode()
    assert secret not in page and 'data-testid="no-entries"' in page

    outbox = platform.webhook_outbox
    failed = outbox.entry(tenant.account_id, hook["id"], uuid.uuid4().hex, "custom.event", b"{}")
    outbox.put([{**failed, "state": "failed", "attempts": 8, "last_status": 500, "last_error": "HTTP 500"}])
    page = client.get(f"/webhooks/{hook['id']}?state=failed").data.decode()
    assert '<td data-testid="entry-state">failed</td>' in page and "HTTP 500" in page
    client.post(f"/webhooks/{hook['id']}/replay", data={"csrf_token": token})
    assert outbox.collection.find_one({"_id": failed["_id"]})["state"] == "pending"
    client.post(f"/webhooks/{hook['id']}/delete", data={"csrf_token": token})
    assert platform.webhooks.list(tenant.account_id) == []
