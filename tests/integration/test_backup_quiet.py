"""The quiet point of `aktool backup create` with the platform running (issue 14): a
campaign sending through akmtad to the SMTP sink, procactions writing the delivery events.
Inside the quiet window the campaign publishes nothing, akmtad takes in and delivers
nothing, the event queues are drained; afterwards the campaign finishes and every profile
got exactly one message."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from altcraft.domain.maintenance import Maintenance
from altcraft.stores.analytics import Analytics
from altcraft.stores.broker import Broker
from tests.lib.backup import RunningBackup
from tests.lib.mta import Pipeline
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
PROFILES = 1500


def _frozen(pipe, setup, sink, broker, queue) -> tuple:
    progress = pipe.campaign(setup)["progress"] or {}
    return (progress.get("after"), progress.get("published"), len(sink.messages), broker.queue_depth(queue),
            broker.queue_depth("events.delivery"))


def _delivered_events(pipe, setup) -> int:
    store = Analytics(pipe.config.CLICKHOUSE_SYSTEM)
    try:
        return store.execute(f"SELECT uniqExact(event_id) FROM {store.table('events')} WHERE campaign_id = %(c)s",
                             {"c": setup["campaign"]["id"]})[0][0]
    finally:
        store.close()


@pytest.mark.timeout(300)
def test_a_campaign_pauses_at_the_quiet_point_and_finishes_after_it(harness, basedir, sink_port, vhost, tmp_path):
    # the MTA far slower than the campaign (a 200 ms peer, one connection, few messages
    # spooled at a time): when the backup comes, the campaign is still sending and akmtad
    # has messages spooled and queued; the peer is fast again after it
    pipe = Pipeline(harness, basedir, sink_port, vhost, MAX_SPOOLED=100, PREFETCH=20,
                    DEFAULT_STRATEGY={"CONNECTIONS": 1, "MESSAGES_PER_CONNECTION": 1000},
                    settings={"CAMP_QUEUE_LIMIT": 100})
    try:
        setup = pipe.setup_campaign(PROFILES)
        queue = f"akmta_{setup['sender']['id']}"
        with Sink(sink_port, data_delay=0.2) as sink, Broker(pipe.config) as broker:
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign", "akmtad", "procactions")
            sink.wait_for(1, timeout=60)
            # stores of the quiet window (the kv part would scan the harness Redis that every
            # test shares: slow here, and covered by test_backup.py)
            backup = RunningBackup(tmp_path / "backup", pipe.main_json, *[
                arg for store in ("mongodb", "clickhouse", "spool") for arg in ("--only", store)])
            backup.wait_line("quiet: dumping", timeout=90)
            # inside the window: frozen there (SIGSTOP; the flag's 30 s lease holds meanwhile)
            os.kill(backup.proc.pid, signal.SIGSTOP)
            assert pipe.campaign(setup)["state"] == "sending", "the campaign ended before the backup"
            roles = {m["role"]: m["quiet"] for m in Maintenance(pipe.platform.control).members()}
            token = Maintenance(pipe.platform.control).active()["token"]
            assert roles == {"campaign": token, "akmtad": token, "procactions": None}
            # nothing moves: no checkpoint, no publish, no delivery, no event left to write
            first = _frozen(pipe, setup, sink, broker, queue)
            # drained: every message delivered so far has its event in ClickHouse already
            assert first[4] == 0 and _delivered_events(pipe, setup) == first[2], "events not drained"
            assert first[3] > 0 and len(list((basedir / "spool").rglob("*.msg"))) > 0, "akmtad had nothing to do"
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                assert _frozen(pipe, setup, sink, broker, queue) == first, "something moved at the quiet point"
                time.sleep(0.25)
            assert first[1] and first[2] < len(setup["expected"]), "not mid-campaign"
            os.kill(backup.proc.pid, signal.SIGCONT)
            code, out, progress = backup.finish()
            assert code == 0, out + progress
            assert "quiet point over" in progress
            sink.handler.data_delay = 0.0
            # and everything goes on: the campaign finishes, every profile mailed exactly once
            sink.wait_for(len(setup["expected"]), timeout=180)
            wait_for(lambda: pipe.campaign(setup)["state"] == "finished", 60, "the campaign to finish")
            time.sleep(2)  # anything extra would arrive now
            rcpts = [m.rcpt for m in sink.messages]
    finally:
        pipe.stop()
    assert len(rcpts) == len(set(rcpts)), "a profile was mailed twice"
    assert set(rcpts) == setup["expected"]
    data = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    quiet = data["quiet_point"]
    assert quiet["inside"] == ["mongodb", "clickhouse", "spool"]
    assert sorted(m.split()[0] for m in quiet["members"]) == ["akmtad", "campaign", "procactions"]
