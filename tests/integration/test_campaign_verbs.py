"""Altcraft's mailing verbs in the domain (altcraft/domain/campaigns.py, #16) on the real control
store: activate and deactivate are the guarded transitions composed, never new ones, and the
campaign log records the worker's launches and ends as well as the marketer's transitions."""

from __future__ import annotations

import pytest

from altcraft.domain.campaigns import status
from altcraft.domain.errors import Conflict
from tests.lib.race import at_once

pytestmark = pytest.mark.integration


def _messages(platform, account_id, campaign_id):
    entries, total = platform.campaigns.log_entries(account_id, campaign_id)
    assert total == len(entries)
    return [(e["level"], e["message"], e["state"], e["value"]) for e in entries]


def test_verbs_compose_the_guarded_transitions_and_the_worker_logs_its_runs(platform):
    campaigns = platform.campaigns
    account_id = 7001
    c = campaigns.add(account_id, "spring", db_id=1, segment_id=1, template_id=1, sender_id=1,
                      schedule={"type": "once", "at": "2099-01-01T09:00:00Z"})["id"]

    # not active: deactivate is refused by the pause guard, naming the state
    with pytest.raises(Conflict, match="draft"):
        campaigns.deactivate(account_id, c)
    # activate keeps the schedule; run_now replaces it for this launch
    assert campaigns.activate(account_id, c)["next_run"].year == 2099
    with pytest.raises(Conflict, match="scheduled"):
        campaigns.activate(account_id, c, run_now=True)  # already active: the start guard
    campaigns.deactivate(account_id, c)
    assert campaigns.get(account_id, c)["state"] == "paused"
    campaigns.activate(account_id, c)  # a paused campaign resumes
    assert campaigns.get(account_id, c)["state"] == "sending"
    campaigns.deactivate(account_id, c, abort_if_running=True)
    assert status(campaigns.get(account_id, c)) == {"is_active": False, "is_completed": False,
                                                     "status": "Inactive", "state": "cancelled"}

    # the worker's side: a launch and its end are logged too
    campaigns.activate(account_id, c, run_now=True)
    claimed = campaigns.claim("worker-1")
    assert claimed is not None and claimed["id"] == c
    campaigns.finish(c, "worker-1")
    assert status(campaigns.get(account_id, c))["status"] == "Completed"
    campaigns.activate(account_id, c, run_now=True)  # finished: starts again, a new launch
    assert campaigns.claim("worker-2")["launch"] == 2
    campaigns.finish(c, "worker-2", error="sender 1 is deleted")

    log = _messages(platform, account_id, c)
    assert [entry[:3] for entry in log] == [
        ("INFO", "Campaign activated", ""), ("INFO", "Campaign deactivated", ""), ("INFO", "Campaign resumed", ""),
        ("INFO", "Campaign aborted", "end"),
        ("INFO", "Campaign activated", ""), ("INFO", "Begin campaign", "start"), ("INFO", "Campaign finished", "end"),
        ("INFO", "Campaign activated", ""), ("INFO", "Begin campaign", "start"),
        ("ERROR", "Campaign failed", "end"),
    ]
    # values: when it will run, the launch number, how many were published, why it failed
    assert log[0][3].startswith("2099-01-01T09:00:00")
    assert [log[5][3], log[6][3], log[8][3], log[9][3]] == ["1", "0", "2", "sender 1 is deleted"]

    # a clone is a draft with the source's settings and none of its runs or log
    copy = campaigns.clone(account_id, c)
    assert (copy["name"], copy["state"], copy["launch"], copy["schedule"]) == \
        ("Clone of spring", "draft", 0, campaigns.get(account_id, c)["schedule"])
    assert _messages(platform, account_id, copy["id"]) == []
    # another account sees neither
    with pytest.raises(Exception, match="not found"):
        campaigns.log_entries(account_id + 1, c)
    campaigns.delete(account_id, c)
    assert platform.control.campaign_log.count_documents({"campaign_id": c}) == 0


def test_eight_workers_claiming_at_once_get_one_launch(platform):
    """Eight campaign workers ask for work at the same moment (two app servers' workers after a
    start): exactly one gets the launch, and it is launch 1 - a second winner would carry its
    own launch number, and so its own de-duplication keys, and mail everyone again. The same
    for the takeover of a lease that ran out."""
    from datetime import timedelta

    from altcraft.domain.clock import now

    campaigns = platform.campaigns
    account_id = 7002
    c = campaigns.add(account_id, "race", db_id=1, segment_id=1, template_id=1, sender_id=1)["id"]
    campaigns.activate(account_id, c, run_now=True)

    def race(prefix: str) -> list:
        return [doc for doc in at_once(8, lambda n: campaigns.claim(f"{prefix}-{n}")) if doc is not None]

    winners = race("first")
    assert len(winners) == 1 and winners[0]["launch"] == 1, winners
    # the winner dies: its lease runs out, and again exactly one worker takes it over
    campaigns.collection.update_one({"id": c}, {"$set": {"lease_until": now() - timedelta(seconds=1)}})
    takers = race("second")
    assert len(takers) == 1 and takers[0]["launch"] == 1 and takers[0]["lease"].startswith("second-"), takers
    assert campaigns.get(account_id, c)["launch"] == 1


def test_a_claim_left_by_a_worker_that_died_does_not_block_the_campaign(platform):
    """A worker that inserted its claim and died before taking the campaign leaves the claim
    behind; once it is older than a lease the next worker claims the launch all the same."""
    from datetime import timedelta

    from altcraft.domain.clock import now

    campaigns = platform.campaigns
    account_id = 7003
    c = campaigns.add(account_id, "orphan", db_id=1, segment_id=1, template_id=1, sender_id=1)["id"]
    campaigns.activate(account_id, c, run_now=True)
    campaigns.claims.insert_one({"_id": f"{c}:1", "owner": "dead", "at": now()})
    assert campaigns.claim("worker-1") is None  # a live claim: not yet
    campaigns.claims.update_one({"_id": f"{c}:1"}, {"$set": {"at": now() - timedelta(seconds=31)}})
    claimed = campaigns.claim("worker-1")
    assert claimed is not None and claimed["launch"] == 1 and claimed["lease"] == "worker-1"
