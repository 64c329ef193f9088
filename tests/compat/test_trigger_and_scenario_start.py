"""Starting a trigger mailing and a scenario for one profile, as Altcraft's guide writes it (#16).

The trigger mailing and the scenario are made with this platform's own methods (Altcraft makes
them in its panel); the start requests are the guide's: the profile named by `matching`.
"""

from __future__ import annotations

import pytest

from tests.lib.compat import covers
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def letter(ops):
    """(a profile id, a template id) of the shared account."""
    template = ops.shop.ok("templates/add", {"name": "welcome", "subject": "Hi", "text": "Hi {{ data.code }}"})["data"]
    profile_id = ops.shop.ok("profiles/add", {"db_id": ops.db_id, "data": {"email": "zaycev@example.com",
                                                                             "city": "Kazan"}})["profile_id"]
    return profile_id, template["id"]


@covers("campaigns/triggers/start/", "campaigns/triggers/start_batch", "campaigns/triggers/clone")
def test_trigger_start_by_matching_and_clone(ops, letter):
    profile_id, template_id = letter
    shop = ops.shop
    trigger = shop.ok("campaigns/triggers/add", {"name": "welcome", "db_id": ops.db_id, "template_id": template_id,
                                                 "sender_id": ops.sender_id})["data"]  # ours
    # https://guides.altcraft.com/en/user-guide/api/api-trigger : {"id": 1, "matching": "email",
    # "email": "zaycev@example.com"}
    sent = shop.ok("campaigns/triggers/start/", {"id": trigger["id"], "matching": "email", "email": "zaycev@example.com"})
    assert sent["data"]["profile_id"] == profile_id
    # https://guides.altcraft.com/en/developer-guide/campaigns/trigger-campaigns/2196177 : matching
    # profile_id / custom (field_name + field_value), content for the template, resource_id
    for lookup in ({"matching": "profile_id", "profile_id": profile_id},
                   {"matching": "custom", "field_name": "city", "field_value": "Kazan", "resource_id": 1}):
        again = shop.ok("campaigns/triggers/start/", {"id": trigger["id"], **lookup, "content": {"code": "X1"}})
        assert again["data"]["profile_id"] == profile_id and again["data"]["message_id"] != sent["data"]["message_id"]
    assert shop.refused("campaigns/triggers/start/", {"id": trigger["id"], "matching": "email",
                                                     "email": "nobody@example.com"}, 404)
    assert shop.refused("campaigns/triggers/start/", {"id": trigger["id"], "matching": "profile_id",
                                                     "profile_id": profile_id, "attach": [{"name": "a.pdf"}]}
                        ).startswith("attach")

    # https://easy.altcraft.com/en/v72/developer-guide/campaigns/trigger-campaigns/37847471 : the page's
    # example (trigger_id, format, matching email, data [{email}, {email}]); result: the profile ids
    other = shop.ok("profiles/add", {"db_id": ops.db_id, "data": {"email": "example2@example.com"}})["profile_id"]
    batch = shop.ok("campaigns/triggers/start_batch", {"trigger_id": trigger["id"], "format": "json", "matching": "email",
                                                       "data": [{"email": "zaycev@example.com"},
                                                                {"email": "example2@example.com"}]})
    assert batch["result"] == [profile_id, other]
    # one lookup that finds nobody: refused by its place, and nothing is sent
    assert shop.refused("campaigns/triggers/start_batch", {"trigger_id": trigger["id"], "data": [
        {"email": "zaycev@example.com"}, {"email": "nobody@example.com"}]}, 404).startswith("data[1]")

    # https://guides.altcraft.com/en/developer-guide/campaigns/trigger-campaigns/56258725 : id, name
    # (default "Clone of ..."), format
    saved_id = shop.ok("campaigns/triggers/clone", {"id": trigger["id"], "format": "json"})["data"]["saved_id"]
    copy = shop.ok("campaigns/triggers/get", {"id": saved_id})["data"]  # ours
    assert (copy["name"], copy["template_id"], copy["active"]) == ("Clone of welcome", template_id, False)
    named = shop.ok("campaigns/triggers/clone", {"id": trigger["id"], "name": "Clone"})["data"]["saved_id"]
    assert shop.ok("campaigns/triggers/get", {"id": named})["data"]["name"] == "Clone"


@covers("workflows/start", "workflows/activate")
def test_scenario_start_by_matching_and_reactivation(ops, letter):
    profile_id, template_id = letter
    shop = ops.shop
    scenario = shop.ok("workflows/add", {"name": "onboarding", "db_id": ops.db_id, "reentry": "after_exit",
                                         "nodes": welcome(template_id, ops.sender_id)})["data"]  # ours
    # https://guides.altcraft.com/en/developer-guide/automation-scenarios/activate-workflow : id,
    # skip_profiles
    shop.ok("workflows/activate", {"id": scenario["id"]})
    # https://guides.altcraft.com/en/developer-guide/automation-scenarios/2195668 : id, content, attach,
    # matching with email / phone / profile_id / field_name + field_value, format
    started = shop.ok("workflows/start", {"id": scenario["id"], "matching": "custom", "field_name": "city",
                                          "field_value": "Kazan", "content": {"code": "W1"}, "attach": [],
                                          "format": "json"})
    assert started["data"]["profile_id"] == profile_id
    assert shop.refused("workflows/start", {"id": scenario["id"], "matching": "phone"}).startswith("phone")

    # the profile is still in the scenario (no worker moves it on this stand): it cannot enter again
    # ("after_exit"), also not after a plain activation; skip_profiles ends its run, so it can
    again = {"id": scenario["id"], "matching": "profile_id", "profile_id": profile_id}
    assert "already in scenario" in shop.refused("workflows/start", again, 409)
    shop.ok("workflows/activate", {"id": scenario["id"], "skip_profiles": False})
    assert "already in scenario" in shop.refused("workflows/start", again, 409)
    shop.ok("workflows/activate", {"id": scenario["id"], "skip_profiles": True})
    assert shop.ok("workflows/start", again)["data"]["run_id"] != started["data"]["run_id"]
