"""Altcraft's mailing verbs written from its guide, against the real API (#16).

Each request is the one the cited page shows (its keys and, where the page writes them so, its
string-typed values); the assertions read only the answer fields the page documents. The
campaign is made with this platform's own campaigns/add (Altcraft creates mailings per kind,
pages this platform does not serve). No campaign worker runs on this stand, so a campaign
activated to run now stays scheduled, and the states seen are the API's own transitions.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.lib.compat import covers

pytestmark = pytest.mark.integration

LOG_KEYS = {"level", "message", "state", "time", "value"}


def _campaign(ops, name: str, schedule: dict | None = None) -> int:
    """A draft campaign made with this platform's own methods."""
    shop = ops.shop
    segment = shop.ok("segments/add", {"name": f"{name} audience", "db_id": ops.db_id})["data"]
    template = shop.ok("templates/add", {"name": f"{name} letter", "subject": "Hello", "text": "Hello"})["data"]
    body = {"name": name, "db_id": ops.db_id, "segment_id": segment["id"], "template_id": template["id"],
            "sender_id": ops.sender_id}
    if schedule is not None:
        body["schedule"] = schedule
    return shop.ok("campaigns/add", body)["data"]["id"]


def _status(ops, campaign_id: int) -> tuple[bool, bool, str]:
    # https://guides.altcraft.com/en/developer-guide/campaigns/2195664 : id;
    # data {is_active, is_completed, status}
    data = ops.shop.ok("campaigns/get_status", {"id": campaign_id})["data"]
    return data["is_active"], data["is_completed"], data["status"]


@covers("campaigns/activate/", "campaigns/deactivate", "campaigns/get_status", "campaigns/log_v2")
def test_activate_deactivate_status_and_log(ops):
    shop = ops.shop
    campaign_id = _campaign(ops, "spring sale")
    assert _status(ops, campaign_id) == (False, False, "Inactive")

    # https://guides.altcraft.com/en/developer-guide/campaigns/2195660 : id, run_now,
    # override_source_type, override_source_id (only with run_now), override_limit, content, attach;
    # data null
    answer = shop.ok("campaigns/activate/", {"id": campaign_id, "run_now": True})
    assert answer["data"] is None
    assert _status(ops, campaign_id) == (True, False, "Active")
    # activating an active campaign is refused by the state guard, and says why
    assert "scheduled" in shop.refused("campaigns/activate/", {"id": campaign_id}, 409)
    # the overrides of the page's own example are refused by name, not ignored
    text = shop.refused("campaigns/activate/", {"id": campaign_id, "override_source_id": 1,
                                                "override_source_type": "list", "run_now": True})
    assert text.startswith("override_source_type")

    # https://guides.altcraft.com/en/v72/developer-guide/campaigns/2195662 : the page's example
    # sends id and abort_if_running as strings; data null
    assert shop.ok("campaigns/deactivate", {"id": str(campaign_id), "abort_if_running": "false"})["data"] is None
    assert _status(ops, campaign_id) == (False, False, "Inactive")
    shop.ok("campaigns/activate/", {"id": campaign_id})  # where it stopped
    assert _status(ops, campaign_id)[0] is True
    shop.ok("campaigns/deactivate", {"id": str(campaign_id), "abort_if_running": "true"})
    assert _status(ops, campaign_id) == (False, False, "Inactive")

    # https://guides.altcraft.com/en/developer-guide/campaigns/2195652 : id, limit, from_time (RFC 3339),
    # format; data [{level, message, state, time, value}], total_count
    log = shop.ok("campaigns/log_v2", {"id": campaign_id, "limit": 2, "format": "json"})
    assert log["total_count"] == 4 and len(log["data"]) == 2
    assert all(set(entry) == LOG_KEYS and entry["level"] == "INFO" for entry in log["data"])
    whole = shop.ok("campaigns/log_v2", {"id": campaign_id})["data"]
    assert [e["message"] for e in whole] == ["Campaign activated", "Campaign deactivated", "Campaign resumed",
                                             "Campaign aborted"]
    assert whole[-1]["state"] == "end"
    since = whole[2]["time"]
    datetime.fromisoformat(since.replace("Z", "+00:00"))  # RFC 3339
    later = shop.ok("campaigns/log_v2", {"id": campaign_id, "from_time": since})
    assert [e["message"] for e in later["data"]] == ["Campaign resumed", "Campaign aborted"]
    assert later["total_count"] == 2


@covers("campaigns/clone", "campaigns/get", "campaigns/list", "campaigns/regulars/list/")
def test_clone_get_list_and_delete(ops):
    shop = ops.shop
    source = _campaign(ops, "weekly digest", {"type": "regular", "cron": "0 9 * * 1"})
    once = _campaign(ops, "one-off")

    # https://guides.altcraft.com/en/developer-guide/campaigns/2195654 : id, name, format; data {saved_id}
    saved_id = shop.ok("campaigns/clone", {"id": source, "name": "Clone", "format": "json"})["data"]["saved_id"]
    unnamed = shop.ok("campaigns/clone", {"id": source})["data"]["saved_id"]
    assert len({source, saved_id, unnamed}) == 3

    # https://guides.altcraft.com/en/v72/developer-guide/campaigns/2195650 : id, format; data {id, name,
    # type, is_active, is_completed, status, resource_id, data_type, data_id, virtual_sender_id, ...}
    got = shop.ok("campaigns/get", {"id": saved_id, "format": "json"})["data"]
    assert (got["id"], got["name"], got["type"], got["is_active"], got["is_completed"], got["status"]) == \
        (saved_id, "Clone", "regular", False, False, "Inactive")
    assert got["resource_id"] == 1 and got["data_type"] == "segment" and got["virtual_sender_id"] is None
    assert shop.ok("campaigns/get", {"id": unnamed})["data"]["name"] == "Clone of weekly digest"

    # https://guides.altcraft.com/en/v72/developer-guide/campaigns/2195648 : from_id, limit, type,
    # is_active, ui_tags, groups, groups_id, format; data [{id, name, type, is_active, for_confirm, ...}],
    # next_from_id, total_count
    shop.ok("campaigns/activate/", {"id": once})
    listed = shop.ok("campaigns/list", {"from_id": 1, "limit": 1000, "type": "regular", "is_active": False,
                                        "ui_tags": [], "groups": [], "groups_id": [], "format": "json"})
    assert [c["id"] for c in listed["data"]] == [source, saved_id, unnamed] and listed["total_count"] == 3
    assert all({"id", "name", "type", "is_active", "for_confirm"} <= set(c) for c in listed["data"])
    active = shop.ok("campaigns/list", {"is_active": True})["data"]
    assert [(c["id"], c["type"]) for c in active] == [(once, "broadcast")]
    first = shop.ok("campaigns/list", {"type": "regular", "limit": 2})
    assert len(first["data"]) == 2 and first["next_from_id"] == unnamed
    assert shop.refused("campaigns/list", {"type": "trigger"}).startswith("type")

    # https://guides.altcraft.com/en/v72/developer-guide/campaigns/regular-campaigns/2195899 : from_id,
    # limit, format, is_active, ui_tags, groups, groups_id; data [{id, name, type: regular, is_active, ...}],
    # total_count
    regulars = shop.ok("campaigns/regulars/list/", {"from_id": 1, "limit": 10, "format": "json", "is_active": False,
                                                    "ui_tags": [], "groups": [], "groups_id": []})
    assert [(c["id"], c["type"], c["is_active"]) for c in regulars["data"]] == \
        [(source, "regular", False), (saved_id, "regular", False), (unnamed, "regular", False)]
    assert regulars["total_count"] == 3

    # campaigns/delete: the stored guide has its title only (the row stays unverified); a deleted
    # campaign is gone, and its clone source is not touched
    shop.ok("campaigns/delete", {"id": unnamed, "format": "json"})
    assert shop.refused("campaigns/get", {"id": unnamed}, 404)
    assert shop.ok("campaigns/get", {"id": source})["data"]["name"] == "weekly digest"
    shop.ok("campaigns/deactivate", {"id": once, "abort_if_running": True})
