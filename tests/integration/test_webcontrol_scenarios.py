"""webcontrol's scenario pages on the real stores: a graph refused names the node and its
field and stores nothing; a saved one is drawn (every node, every edge) with the counts the
step log gives; saving new steps makes a new version; activation switches it."""

from __future__ import annotations

import html
import json
import re

import pytest

from altcraft import registry
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


def test_a_scenario_is_checked_drawn_counted_versioned_and_switched(signed_in):
    platform, tenant, client, token = signed_in
    graph = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "hello"},
             {"id": "hello", "type": "send", "template_id": tenant.template_ids[-1], "sender_id": tenant.sender_id,
              "next": "seen"},
             {"id": "seen", "type": "branch", "condition": {"opened": "hello"}, "yes": "end", "no": "again"},
             {"id": "again", "type": "send", "template_id": tenant.template_ids[-1], "sender_id": tenant.sender_id,
              "next": "end"},
             {"id": "end", "type": "exit"}]
    form = {"csrf_token": token, "name": "Welcome", "db_id": tenant.db_ids[-1], "reentry": "once"}
    for nodes, message in (("[{", "nodes: not JSON: Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"),
                           (json.dumps(graph[:2] + graph[3:]), "node 'hello'.next: no node 'seen' (dangling edge)"),
                           (json.dumps([graph[0], {**graph[1], "template_id": 999999}, *graph[2:]]),
                            "node 'hello': template 999999 not found")):
        response = client.post("/scenarios/new", data={**form, "nodes": nodes})
        assert response.status_code in (400, 404), nodes
        shown = re.findall(r'data-testid="form-error">([^<]*)', response.data.decode())
        assert [html.unescape(m) for m in shown] == [message], (message, shown)
    assert platform.scenarios.list(tenant.account_id) == [], "a refused graph was stored"

    response = client.post("/scenarios/new", data={**form, "nodes": json.dumps(graph)})
    assert response.status_code == 302
    scenario_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert 'data-testid="scenario-activate"' in client.get(f"/scenarios/{scenario_id}").data.decode()
    client.post(f"/scenarios/{scenario_id}/activate", data={"csrf_token": token})
    assert platform.scenarios.get(tenant.account_id, scenario_id)["active"] is True
    assert f'data-testid="scenario-state-{scenario_id}">active<' in client.get("/scenarios").data.decode()
    platform.scenarios.enter(platform.scenarios.get(tenant.account_id, scenario_id), "p1", "api:1", {})
    page = client.get(f"/scenarios/{scenario_id}").data.decode()
    for node in graph:  # every node drawn, with its counts
        assert f'data-testid="node-{node["id"]}"' in page
    assert page.count("<line ") == 5  # start>hello, hello>seen, seen>end (yes), seen>again (no), again>end
    assert 'data-testid="entered-start">1<' in page and 'data-testid="entered-hello">0<' in page

    graph[3]["next"] = "hello"  # a loop: allowed (max_visits ends it), drawn as a line back up
    response = client.post(f"/scenarios/{scenario_id}", data={**form, "nodes": json.dumps(graph)})
    assert response.status_code == 302
    stored = platform.scenarios.get(tenant.account_id, scenario_id)
    assert stored["version"] == 2 and stored["nodes"][3]["next"] == "hello"
    assert 'stroke-dasharray' in client.get(f"/scenarios/{scenario_id}").data.decode()
    client.post(f"/scenarios/{scenario_id}/deactivate", data={"csrf_token": token})
    assert platform.scenarios.get(tenant.account_id, scenario_id)["active"] is False
