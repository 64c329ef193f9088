"""The quiet point's two mechanisms that the integration test cannot pin to a moment: the
campaign worker's per-batch hold and procactions' answer to a drain request (fakes for the
stores; the real servers are in tests/integration/test_backup_quiet.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from altcraft.domain.maintenance import abandoned
from altcraft.services.campaign import CampaignRunner
from altcraft.services.procactions import Consumer


class FakeMember:
    def __init__(self, flags):
        self.flags = list(flags)  # what flag() returns, call after call (the last one repeats)
        self.reports: list[dict] = []

    def flag(self):
        return self.flags.pop(0) if len(self.flags) > 1 else self.flags[0]

    def report(self, quiet=None, drained=None):
        self.reports.append({"quiet": quiet, "drained": drained})


class FakeCampaigns:
    def __init__(self):
        self.renewed = 0

    def renew(self, campaign_id, owner):
        self.renewed += 1
        return "sending"


def _runner(member) -> CampaignRunner:
    runner = CampaignRunner.__new__(CampaignRunner)  # no stores: only the hold is exercised
    runner.member = member
    runner.stop = threading.Event()
    runner.owner = "host:1"
    runner.platform = SimpleNamespace(campaigns=FakeCampaigns())
    return runner


def test_the_campaign_worker_holds_while_the_flag_is_set_and_says_so():
    flag = {"token": "t1", "reason": "backup"}
    member = FakeMember([flag, flag, flag, None])
    runner = _runner(member)
    runner.stop.wait = lambda seconds: False  # no real waiting
    launch = SimpleNamespace(campaign_id=7)
    assert runner.hold_at_quiet_point(launch) == "sending"
    assert member.flags == [None], "it went on before the flag was cleared"
    assert [r["quiet"] for r in member.reports] == ["t1", "t1", "t1", None]
    assert runner.platform.campaigns.renewed == 1  # the state read again: a pause meanwhile is seen


def test_the_campaign_worker_does_not_hold_without_the_flag():
    member = FakeMember([None])
    runner = _runner(member)
    assert runner.hold_at_quiet_point(SimpleNamespace(campaign_id=7)) == "sending"
    assert member.reports == [{"quiet": None, "drained": None}]


class FakeSource:
    def __init__(self, consumer, ready, arriving=()):
        self.consumer, self.ready_counts, self.arriving = consumer, ready, list(arriving)

    def ready(self, queue):
        # deliveries the broker sent before its answer arrive first
        while self.arriving:
            self.consumer._on_delivery(self.arriving.pop(0), "action.open", b"{}")
        return self.ready_counts[queue]


def _consumer(member) -> Consumer:
    consumer = Consumer.__new__(Consumer)
    consumer.events, consumer.bad, consumer.last_good = [], [], 0
    consumer.member, consumer._flag_read, consumer._drain = member, 0.0, None
    consumer.received_tag = consumer.acked_tag = 0
    return consumer


def test_procactions_answers_a_drain_only_once_what_it_received_is_written():
    flag = {"token": "t", "drain": 1}
    member = FakeMember([flag])
    consumer = _consumer(member)
    consumer._on_delivery(1, "action.open", b"{}")
    consumer.acked_tag = 0
    source = FakeSource(consumer, {"events.actions": 0, "events.delivery": 0}, arriving=[2])
    consumer._answer_quiet_point(source)
    assert member.reports[-1]["drained"] is None  # tags 1 and 2 taken, none written
    assert consumer.received_tag == 2 and consumer._drain == (1, 2)
    consumer.acked_tag = 1
    consumer._flag_read = 0.0
    consumer._answer_quiet_point(source)
    assert member.reports[-1]["drained"] is None  # tag 2 still unwritten
    consumer.acked_tag = 2
    consumer._flag_read = 0.0
    consumer._answer_quiet_point(source)
    assert member.reports[-1]["drained"] == 1


def test_procactions_does_not_answer_while_events_wait_in_the_queue():
    member = FakeMember([{"token": "t", "drain": 3}])
    consumer = _consumer(member)
    consumer._answer_quiet_point(FakeSource(consumer, {"events.actions": 5, "events.delivery": 0}))
    assert member.reports[-1]["drained"] is None and consumer._drain is None


def test_a_flag_is_abandoned_when_its_lease_ran_out_or_its_process_is_gone():
    live = {"owner": "host-a:42", "until": 200.0, "owner_started": 10.0}
    assert abandoned(live, 100.0, "host-a", lambda pid: 10.0) is None
    assert "lease ran out" in abandoned(live, 250.0, "host-a", lambda pid: 10.0)
    assert abandoned(live, 100.0, "host-a", lambda pid: None) == "its process 42 is gone"
    assert "another process" in abandoned(live, 100.0, "host-a", lambda pid: 99.0)  # the pid reused
    assert abandoned(live, 100.0, "host-b", lambda pid: None) is None  # another host: only the lease tells
