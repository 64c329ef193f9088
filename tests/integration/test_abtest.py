"""An A/B campaign end to end: the test group gets its variants, opens are recorded for
variant B only, B is chosen, and the rest of the segment receives B only."""

from __future__ import annotations

import email
import time

import pytest

from altcraft.domain import abtest, events
from altcraft.domain.reports import ab_variants
from altcraft.domain.tracking import Link
from altcraft.stores.analytics import Analytics
from tests.lib.mta import Pipeline
from tests.lib.sink import Sink
from tests.lib.stand import publish_events
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
PROFILES = 24


def subject(message) -> str:
    return email.message_from_bytes(message.data)["Subject"]


@pytest.mark.timeout(300)
def test_opens_for_b_only_choose_b_and_the_rest_gets_b(harness, basedir, sink_port, vhost):
    # the 60 s wait lasts 6 s (TASKS.AB_TIME_SCALE)
    pipe = Pipeline(harness, basedir, sink_port, vhost, settings={"TASKS": {"AB_TIME_SCALE": 0.1}})
    try:
        setup = pipe.setup_campaign(PROFILES)
        account, cid, db = setup["account"]["id"], setup["campaign"]["id"], setup["db"].id
        campaigns = pipe.platform.campaigns
        campaigns.update(account, cid, ab={"variants": [{"subject": "Variant A"}, {"subject": "Variant B"}],
                                           "test_share": 0.5, "wait_seconds": 60, "metric": "opens"})
        ids = {d["data"]["email"]: d["_id"] for d in
               pipe.platform.profiles(account, db).collection.find({}, {"data.email": 1})}
        variant = {e: abtest.variant_of(cid, p, 0.5, 2) for e, p in ids.items()}
        group = {e for e, v in variant.items() if v is not None}
        b_group = {e for e, v in variant.items() if v == 1}
        assert b_group and group - b_group and set(ids) - group, "the split left a group empty"

        with Sink(sink_port) as sink:
            campaigns.start(account, cid)
            pipe.start("campaign", "akmtad", "procactions")
            wait_for(lambda: campaigns.get(account, cid)["ab"]["phase"] == "waiting", 60, "the test sends to end")
            campaigns.pause(account, cid)  # holds the choice until the opens are in ClickHouse
            test_sends = sink.wait_for(len(group), timeout=60)
            assert {m.rcpt: subject(m) for m in test_sends} == {
                e: f"Variant {abtest.label(variant[e])}" for e in group}

            issued = int(time.time()) - 3600
            publish_events(pipe.config, [events.action(
                Link("open", account, db, 1, cid, ids[e], issued=issued), "open", ip="192.0.2.1",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0") for e in sorted(b_group)])
            store = Analytics(pipe.config.CLICKHOUSE_SYSTEM)
            try:
                wait_for(lambda: store.execute(
                    f"SELECT uniqExact(profile_id) FROM {store.table('events')} WHERE campaign_id = %(c)s "
                    f"AND kind = 'open' AND is_bot = 0", {"c": cid})[0][0] == len(b_group), 30,
                    "the opens in ClickHouse")
                campaigns.resume(account, cid)
                wait_for(lambda: campaigns.get(account, cid)["state"] == "finished", 60, "the rest to be sent")
                received = sink.wait_for(PROFILES, timeout=60)
                doc = campaigns.get(account, cid)
                report = ab_variants(store, doc)
            finally:
                store.close()
        rest = {m.rcpt: subject(m) for m in received if m.rcpt not in group}
        assert len(received) == PROFILES and len({m.rcpt for m in received}) == PROFILES
        # the second launch published to the rest only (the test group is not mailed again)
        assert doc["progress"]["published"] == PROFILES - len(group)
        assert doc["ab"]["winner"] == 1 and doc["ab"]["scores"] == [0, len(b_group)]
        assert rest == {e: "Variant B" for e in set(ids) - group}
        assert report["winner"] == "B"
        assert [(v["variant"], v["opened"]) for v in report["variants"]] == [("A", 0), ("B", len(b_group))]
    finally:
        pipe.stop()
