"""Campaign -> broker -> akmtad -> SMTP sink, with the processes under akd and real servers."""

from __future__ import annotations

import email
import json
import os
import re
import signal
import time
import uuid

import pytest

from altcraft.domain import tracking
from altcraft.stores.broker import Broker
from tests.lib.broker import delivery_events
from tests.lib.cli import run
from tests.lib.mta import Pipeline, verify_dkim
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
def test_campaign_to_10k_segment_delivers_exactly_once(pipeline, sink_port, tmp_path, dkim_verifier):
    # RSA: the independent verifier (Debian's Mail::DKIM 1.20230212) does not know Ed25519
    setup = pipeline.setup_campaign(10_000, algorithm="rsa", unsubscribed=100, stopped=50)
    with Sink(sink_port) as sink:
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign", "akmtad")
        expected = setup["expected"]
        assert len(expected) == 9_850
        received = sink.wait_for(len(expected), timeout=600)
        wait_for(lambda: pipeline.campaign(setup)["state"] == "finished", 60, "the campaign to finish")
        time.sleep(3)  # anything extra would arrive now
        received = sink.messages
    rcpts = [m.rcpt for m in received]
    assert len(rcpts) == len(set(rcpts)), "a profile was mailed twice"
    assert set(rcpts) == expected, "mailed to an ineligible profile, or missed one"
    progress = pipeline.campaign(setup)["progress"]
    assert progress["published"] == 9_850 and progress["skipped"] == 150

    # every message verifies with an independent DKIM implementation
    verified = verify_dkim(received, setup["sender"], tmp_path)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    results = [line.split()[1] for line in verified.stdout.splitlines()]
    assert results == ["pass"] * len(received)

    # links are signed tracking links for this campaign, profile and URL
    key = pipeline.config.TRACKING_CRYPT_KEY
    sample = email.message_from_bytes(received[0].data)
    html = next(part for part in sample.walk() if part.get_content_type() == "text/html").get_payload(decode=True).decode()
    hrefs = re.findall(r'href="([^"]+)"', html)
    clicks = [h for h in hrefs if "/c/" in h]
    assert len(clicks) == 2 and "mailto:help@shop.example" in hrefs
    targets = []
    for href in clicks:
        assert href.startswith("https://click.example.test/c/")
        link = tracking.verify(href.rsplit("/", 1)[1], key)
        assert (link.kind, link.campaign_id, link.account_id) == ("click", setup["campaign"]["id"], setup["account"]["id"])
        targets.append(link.url)
    assert targets == ["https://shop.example/sale?utm=mail&id=1", "https://shop.example/about"]
    assert sample["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sample["List-Unsubscribe"].startswith("<https://click.example.test/u/")
    assert re.search(r'src="https://click.example.test/o/[^"]+\.gif"', html)


def test_rsa_dkim_verifies_independently(pipeline, sink_port, tmp_path, dkim_verifier):
    setup = pipeline.setup_campaign(20, algorithm="rsa")
    with Sink(sink_port) as sink:
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign", "akmtad")
        received = sink.wait_for(20, timeout=120)
    assert len(received) == 20
    verified = verify_dkim(received, setup["sender"], tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # and a message changed in transit does not verify
    tampered = [type(received[0])(received[0].mail_from, received[0].rcpt,
                                  received[0].data.replace(b"Hi ", b"Hi! ", 1), received[0].at)]
    assert verify_dkim(tampered, setup["sender"], tmp_path / "t" if (tmp_path / "t").mkdir() is None else tmp_path).returncode == 1


def test_retry_after_450_and_hard_bounce_on_550(pipeline, sink_port):
    greylisted, unknown = "grey@example9.test", "nobody@example9.test"
    rules = {greylisted: ["450 4.7.1 Greylisted, try again later", "250 OK"],
             unknown: ["550 5.1.1 <nobody@example9.test>: Recipient address rejected: User unknown"]}
    setup = pipeline.setup_campaign(3, rules_emails=[greylisted, unknown])
    mine = {setup["campaign"]["id"]}
    with Sink(sink_port, rules) as sink:
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign", "akmtad")
        received = sink.wait_for(4, timeout=120)
        events = [e for e in delivery_events(pipeline.config, 7) if e["campaign_id"] in mine]
    assert sorted(m.rcpt for m in received) == sorted(setup["expected"] - {unknown})
    by_email: dict[str, list[dict]] = {}
    for event in events:
        by_email.setdefault(event["email"], []).append(event)
    grey = by_email[greylisted]
    assert [e["kind"] for e in grey] == ["deferred", "delivered"]
    assert "450" in grey[0]["detail"]
    first_try = sink.handler.attempts[greylisted]
    assert first_try == 2
    from datetime import datetime
    waited = (datetime.fromisoformat(grey[1]["time"]) - datetime.fromisoformat(grey[0]["time"])).total_seconds()
    assert waited >= 2.0, f"retried after {waited:.1f}s, the rule says 2s"
    bounce = by_email[unknown]
    assert [e["kind"] for e in bounce] == ["bounced_hard"]
    assert "User unknown" in bounce[0]["detail"] and bounce[0]["profile_id"]


def test_a_lock_rule_stops_sending_to_the_isp_for_its_time(harness, basedir, sink_port, vhost):
    """An answer matching a lock rule: nothing more goes to that ISP until the lock ends,
    then sending resumes, the refused message included, and nothing is lost or doubled."""
    seconds = 4
    pipe = Pipeline(harness, basedir, sink_port, vhost,
                    LOCK_RULES=[{"NAME": "too many connections", "PATTERN": r"^421 .*too many connections",
                                 "SECONDS": seconds}],
                    DEFAULT_STRATEGY={"CONNECTIONS": 2, "MESSAGES_PER_CONNECTION": 1000})
    try:
        setup = pipe.setup_campaign(400)
        early = setup["order"][5]
        rules = {early: ["421 4.7.0 Too many connections from your IP, try again later", "250 OK"]}
        with Sink(sink_port, rules, data_delay=0.01) as sink:
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign", "akmtad")
            sink.wait_for(len(setup["expected"]), timeout=120)
            time.sleep(2)
            received = sink.messages
            refused = list(sink.handler.refused)
        events = [e for e in delivery_events(pipe.config, len(setup["expected"]) + 1) if e["email"] == early]
    finally:
        pipe.stop()
    assert sorted(m.rcpt for m in received) == sorted(setup["expected"])
    assert [r[0] for r in refused] == [early]
    locked_at = refused[0][2]
    # what was already on the wire may land just after the 421; then nothing until the lock ends
    during = [m for m in received if locked_at + 0.5 < m.at < locked_at + seconds - 0.2]
    assert not during, f"{len(during)} messages sent while the ISP was locked"
    after = [m for m in received if m.at >= locked_at + seconds - 0.2]
    assert len(after) > 100, "sending did not resume after the lock"
    assert [e["kind"] for e in events] == ["deferred", "delivered"]
    assert "locked for 4 s: too many connections" in events[0]["detail"]


@pytest.mark.timeout(2400)
def test_kill_9_of_campaign_and_akmtad_mid_campaign_loses_and_repeats_nothing(pipeline, sink_port):
    setup = pipeline.setup_campaign(100_000, algorithm="ed25519")
    expected = setup["expected"]
    with Sink(sink_port) as sink:
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign", "akmtad")
        wait_for(lambda: (pipeline.campaign(setup)["progress"] or {}).get("published", 0) >= 20_000,
                   600, "20,000 messages published")
        victim = pipeline.pid("campaign")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(sink.messages) >= 30_000, 600, "30,000 messages delivered")
        mta = pipeline.pid("akmtad")
        killed_at = time.time()
        os.kill(mta, signal.SIGKILL)
        wait_for(lambda: (pipeline.basedir / "pids" / "campaign.pid").exists()
                   and pipeline.pid("campaign") != victim, 60, "akd to restart campaign")
        wait_for(lambda: (pipeline.basedir / "pids" / "akmtad.pid").exists()
                   and pipeline.pid("akmtad") != mta, 60, "akd to restart akmtad")
        received = sink.wait_for(len(expected), timeout=1200)
        wait_for(lambda: pipeline.campaign(setup)["state"] == "finished", 120, "the campaign to finish")
        time.sleep(5)
        received = sink.messages
    status = run("akd", "status", "campaign", "akmtad", "--json", config=pipeline.main_json)
    restarts = {row["name"]: row["restarts"] for row in json.loads(status.stdout)}
    assert restarts == {"campaign": 1, "akmtad": 1}
    rcpts = [m.rcpt for m in received]
    assert set(rcpts) == expected, f"{len(expected - set(rcpts))} messages lost"
    assert not list((pipeline.basedir / "spool").glob("*.msg")), "the spool should be empty"
    # Exactly once, except where SMTP itself cannot promise it (RFC 1047): a message whose
    # transaction was open when akmtad was killed - the peer had it, akmtad had not yet read
    # the 250 - is sent again. So: at most one per open connection, and only those whose
    # first copy arrived in the last moments before the kill.
    first_seen: dict[str, float] = {}
    repeated: list[tuple[str, float]] = []
    for message in received:
        if message.rcpt in first_seen:
            repeated.append((message.rcpt, first_seen[message.rcpt]))
        else:
            first_seen[message.rcpt] = message.at
    connections = pipeline.config.MTA.DEFAULT_STRATEGY.CONNECTIONS
    assert len(repeated) <= connections, f"{len(repeated)} messages delivered twice"
    late = [(r, killed_at - at) for r, at in repeated if not killed_at - 5 <= at <= killed_at + 1]
    assert not late, f"delivered twice though not in flight at the kill: {late[:5]}"


def test_a_slow_peer_keeps_the_backlog_in_rabbitmq_not_in_the_spool(harness, basedir, sink_port, vhost):
    """MTA.MAX_SPOOLED: while that many messages wait to be sent, akmtad takes no more from
    the broker. A slow peer (~40 messages/s) gets a 1,000-message campaign: the spool stays
    near the limit, the rest waits in RabbitMQ, and every message still arrives once."""
    limit, prefetch = 100, 20
    pipe = Pipeline(harness, basedir, sink_port, vhost, MAX_SPOOLED=limit, PREFETCH=prefetch,
                    DEFAULT_STRATEGY={"CONNECTIONS": 2, "MESSAGES_PER_CONNECTION": 1000})
    try:
        setup = pipe.setup_campaign(1000)
        queue = f"akmta_{setup['sender']['id']}"
        spool = basedir / "spool"
        largest_spool, largest_queue = 0, 0
        with Sink(sink_port, data_delay=0.05) as sink, Broker(pipe.config) as broker:
            broker.declare_durable_queue(queue)  # as the campaign worker does: to watch its depth
            pipe.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
            pipe.start("campaign", "akmtad")
            deadline = time.monotonic() + 180
            while len(sink.messages) < 1000 and time.monotonic() < deadline:
                largest_spool = max(largest_spool, sum(1 for _ in spool.glob("*.msg")))
                depth = broker.channel.queue_declare(queue, passive=True).method.message_count
                largest_queue = max(largest_queue, depth)
                time.sleep(0.2)
            time.sleep(2)
            rcpts = [m.rcpt for m in sink.messages]
    finally:
        pipe.stop()
    assert sorted(rcpts) == sorted(setup["expected"]), f"{len(rcpts)} received, {len(set(rcpts))} distinct"
    # Files = ready (< limit, plus one intake batch of up to PREFETCH) + on the wire + delivered
    # ones whose event is not yet confirmed by the broker (a file goes only after its event).
    # Without the limit the spool takes all 1,000 at once.
    assert largest_spool <= 2 * limit, f"the spool held {largest_spool} messages"
    assert largest_queue >= 500, f"RabbitMQ held at most {largest_queue}: the backlog went elsewhere"


def test_publishing_waits_for_the_mta_so_a_pause_stops_the_campaign(harness, basedir, sink_port, vhost):
    """CAMP_QUEUE_LIMIT: the campaign worker publishes while the MTA queue holds fewer than
    that. With no MTA running it stops near the limit; paused there, only what was queued is
    sent; resumed, the rest goes, and every profile gets exactly one message."""
    limit = 1000
    pipe = Pipeline(harness, basedir, sink_port, vhost, settings={"CAMP_QUEUE_LIMIT": limit})
    try:
        setup = pipe.setup_campaign(3000)
        account_id, cid = setup["account"]["id"], setup["campaign"]["id"]
        queue = f"akmta_{setup['sender']['id']}"
        with Sink(sink_port) as sink, Broker(pipe.config) as broker:
            pipe.platform.campaigns.start(account_id, cid)
            pipe.start("campaign")
            wait_for(lambda: (pipe.campaign(setup)["progress"] or {}).get("published", 0) >= limit, 120,
                     f"{limit} messages published")
            time.sleep(3)  # it would go on publishing here without the limit
            queued = broker.queue_depth(queue)
            published = pipe.campaign(setup)["progress"]["published"]
            assert queued == published and limit <= queued < limit + 500, (queued, published)
            assert pipe.platform.campaigns.pause(account_id, cid)["state"] == "paused"
            pipe.start("akmtad")
            assert len(sink.wait_for(queued, timeout=120)) == queued
            time.sleep(3)
            assert len(sink.messages) == queued, "a paused campaign went on sending"
            assert pipe.platform.campaigns.resume(account_id, cid)["state"] == "sending"
            sink.wait_for(len(setup["expected"]), timeout=300)
            wait_for(lambda: pipe.campaign(setup)["state"] == "finished", 120, "the campaign to finish")
            time.sleep(2)
            rcpts = [m.rcpt for m in sink.messages]
    finally:
        pipe.stop()
    assert sorted(rcpts) == sorted(setup["expected"]), f"{len(rcpts)} received, {len(set(rcpts))} distinct"


def test_queue_hold_stats_release_and_purge_through_the_admin_api(pipeline, sink_port):
    from altcraft import registry
    from altcraft.services.api import create_app

    setup = pipeline.setup_campaign(30)
    admin_token, _ = pipeline.platform.tokens.create("admin")
    api = create_app(pipeline.config, registry.get("api")).test_client()

    def call(path, **params):
        body = api.post(f"/api/v1.1/{path}", json={"token": admin_token, **params}).get_json()
        assert body["error"] == 0, (path, body)
        return body

    sender_id = setup["sender"]["id"]
    with Sink(sink_port) as sink:
        pipeline.start("akmtad")
        call("admin/senders/queue/hold", id=sender_id)
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign")
        stats = wait_for(lambda: (b := call("admin/senders/queue/stats/", id=sender_id))["data"]
                         and b["data"][0]["hold"] == 30 and b, 60, "30 held messages")
        assert stats["total_count"] == 1 and stats["data"][0]["campaign_id"] == setup["campaign"]["id"]
        time.sleep(2)
        assert sink.messages == []  # held: nothing leaves
        call("admin/senders/queue/release", id=sender_id)
        assert len(sink.wait_for(30, timeout=60)) == 30
        assert wait_for(lambda: call("admin/senders/queue/stats/", id=sender_id)["data"] == [], 30, "an empty queue")

        # a second launch, held again, then purged: nothing is sent, each message is 'dropped'
        call("admin/senders/queue/hold", id=sender_id)
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        wait_for(lambda: (d := call("admin/senders/queue/stats/", id=sender_id)["data"]) and d[0]["hold"] == 30,
                 60, "the second launch held")
        purged = call("admin/senders/queue/purge/", id=sender_id)["data"]
        assert purged == {"purged": 30}
        wait_for(lambda: call("admin/senders/queue/stats/", id=sender_id)["data"] == [], 30, "the purge")
        time.sleep(1)
        assert len(sink.messages) == 30
    dropped = [e for e in delivery_events(pipeline.config, 90, timeout=30) if e["kind"] == "dropped"]
    assert len(dropped) == 30 and all(e["launch"] == 2 for e in dropped)
    assert not list((pipeline.basedir / "spool").glob("*.msg"))


def test_hard_bounce_marks_the_profile_and_stops_the_address(pipeline, sink_port):
    unknown = f"ghost.{uuid.uuid4().hex[:6]}@example9.test"
    rules = {unknown: ["550 5.1.1 <ghost>: Recipient address rejected: User unknown in virtual mailbox table"]}
    setup = pipeline.setup_campaign(2, rules_emails=[unknown])
    with Sink(sink_port, rules) as sink:
        pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
        pipeline.start("campaign", "akmtad", "procactions")
        assert len(sink.wait_for(2, timeout=120)) == 2
        profiles = pipeline.platform.profiles(setup["account"]["id"], setup["db"].id)

        def marked():
            profile = profiles.get(key_value=unknown)
            return [s for s in profile["subscriptions"] if s["status"] == "hard_bounced"]

        (subscription,) = wait_for(marked, 60, "the profile to be marked hard bounced")
    assert (subscription["resource_id"], subscription["channel"]) == (1, "email")
    assert setup["stoplist"].contains(unknown)
    others = [profiles.get(key_value=e)["subscriptions"][0]["status"] for e in setup["expected"] - {unknown}]
    assert others == ["subscribed", "subscribed"]
