"""The `campaign` worker: turns due campaigns into messages on the sender's MTA queue.

A claimed launch runs as these steps (`CampaignRunner.run`):
  1. open the launch: keep the template snapshot the web version shows, compile the
     template, load the senders (a virtual sender: the real sender its rules choose for each
     recipient) and declare their MTA queues (altcraft.mta.envelope);
  2. for each batch of the segment, streamed in profile-id order from the checkpoint:
     a. wait for room: while an MTA queue holds CAMP_QUEUE_LIMIT messages, renewing the
        lease; the state is read again after a wait, so a pause or cancel publishes nothing
        more (a pause takes effect within that many messages; the broker never holds a
        whole campaign);
     a'. hold at the quiet point: while the maintenance flag is set (a backup, issue 14) the
        worker publishes nothing, keeps its lease and checkpoint, and says it is quiet
        (domain/maintenance.py, QuietMember); when the flag goes it goes on with the same
        batch, so it resumes exactly where it was;
     b. choose the audience (domain/audience.py: has an e-mail, subscribed to the
        campaign's resource, not on the global stop list, not already handled in this
        launch);
     c. render each chosen profile's message;
     d. publish them in one broker transaction;
     e. mark them handled (de-duplication keys in CAMP_DUPLICATESDB);
     f. checkpoint (the last profile id, and the published / skipped / duplicate counts).
  3. finish the launch.
An A/B campaign (domain/abtest.py) adds two steps: its first launch sends only to the test
group, each profile the variant the split gives it (step 2a''), then waits; the launch after
the wait first chooses the winner (step 1', from ClickHouse: unique human openers or
clickers per variant) and then sends the winner to everyone outside the test group.
  1'. choose the winner (a launch of phase "waiting");
  2a''. keep the batch's share of this phase (the test group, or the rest).
Only after a batch is committed are its de-duplication keys set and the checkpoint moved. A
worker killed between the two re-publishes at most one batch on resume; those copies carry
the same Message-ID and akmtad drops them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from altcraft.config import MainConfig
from altcraft.domain import abtest, audience, message as messages
from altcraft.domain.campaign_senders import CampaignSenders
from altcraft.domain.maintenance import QuietMember
from altcraft.domain.stoplist import StopList
from altcraft.domain.templates import compile_parts
from altcraft.metrics.push import Pusher
from altcraft.mta import envelope as mta_envelope
from altcraft.stores import kv
from altcraft.stores.broker import Broker, Message
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.campaign")
BATCH = 500
DEDUP_TTL = 30 * 86400

# Pushed to the Pushgateway (job altcraft_campaign, instance: the host) while a launch runs and
# at its end: a registry of their own, so the push carries these and nothing else.
PUSH_JOB = "altcraft_campaign"
METRICS = CollectorRegistry()
PUBLISHED = Counter("altcraft_campaign_messages_published_total",
                    "Messages published to the MTA queues (committed broker transactions)", registry=METRICS)
FAILURES = Counter("altcraft_campaign_failures_total", "Launch runs that ended in an error", registry=METRICS)
RUNS = Counter("altcraft_campaign_runs_total", "Launch runs ended, failed or not", registry=METRICS)
RUN_SECONDS = Gauge("altcraft_campaign_run_duration_seconds",
                    "How long the current launch run has taken (the last one's, between runs)", registry=METRICS)
LAST_SUCCESS = Gauge("altcraft_campaign_last_success_timestamp_seconds",
                     "When a launch run last ended without an error (Unix time)", registry=METRICS)
RUNNING = Gauge("altcraft_campaign_running", "1 while this worker runs a launch", registry=METRICS)


class RunMetrics:
    """The metrics of one launch run, pushed while it runs and when it ends."""

    def __init__(self, pusher: Pusher):
        self.pusher = pusher

    def run(self, work) -> bool:
        """Runs `work()`; True when it ended without an error. The error itself is the caller's."""
        started = time.monotonic()
        RUN_SECONDS.set_function(lambda: time.monotonic() - started)  # read at each push
        RUNNING.set(1)
        ok = False
        with self.pusher.while_running():  # its last push comes after the outcome is counted
            try:
                work()
                ok = True
            finally:
                took = time.monotonic() - started
                RUN_SECONDS.set_function(lambda: took)
                RUNNING.set(0)
                RUNS.inc()
                if ok:
                    LAST_SUCCESS.set(time.time())
                else:
                    FAILURES.inc()
        return ok


class LaunchRecord:
    """The profiles a launch has handled: one Redis key each (mta.envelope.launch_dedup_key),
    kept DEDUP_TTL. The `audience.HandledRecord` of a campaign launch."""

    def __init__(self, client: Any, campaign_id: int, launch: int, ttl: int = DEDUP_TTL):
        self.client = client
        self.campaign_id = campaign_id
        self.launch = launch
        self.ttl = ttl

    def _keys(self, profile_ids: Sequence[str]) -> list[str]:
        return [mta_envelope.launch_dedup_key(self.campaign_id, self.launch, p) for p in profile_ids]

    def handled(self, profile_ids: Sequence[str]) -> list[bool]:
        if not profile_ids:
            return []
        return [seen is not None for seen in self.client.mget(self._keys(profile_ids))]

    def mark(self, profile_ids: Sequence[str]) -> None:
        if not profile_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in self._keys(profile_ids):
            pipe.set(key, 1, ex=self.ttl)
        pipe.execute()


@dataclass(frozen=True)
class Launch:
    """What every batch of one launch needs."""
    account_id: int
    campaign_id: int
    launch: int
    db_id: int
    resource_id: int
    segment_id: int
    after: str | None  # the checkpoint: the last profile id handled
    compiled: dict[str, Any]  # templates.compile_parts
    variants: tuple[dict[str, Any], ...]  # A/B: the compiled variants (empty: no test)
    ab: dict[str, Any] | None  # A/B: the campaign's settings and phase
    routes: CampaignSenders
    queues: Mapping[int, str]  # sender id -> its MTA queue
    record: LaunchRecord


class CampaignRunner:
    def __init__(self, config: MainConfig, stop: threading.Event):
        self.config = config
        self.stop = stop
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.platform = Platform(config)
        self.broker = Broker(config, app="campaign")
        self.dedup = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB)
        self.stoplist = StopList(kv.ssdb(config, "hbsupp"))
        self.member = QuietMember(self.platform.control, "campaign", self.owner)
        self.metrics = RunMetrics(Pusher(config.PROMETHEUS_METRICS, "campaign", PUSH_JOB, METRICS))

    def run_forever(self) -> None:
        campaigns = self.platform.campaigns
        while not self.stop.is_set():
            flag = self.member.flag()
            self.member.report(quiet=flag["token"] if flag else None)  # idle: quiet already
            if flag is not None:
                self.stop.wait(0.5)  # claims nothing at the quiet point
                continue
            campaign = campaigns.claim(self.owner)
            if campaign is None:
                self.stop.wait(1.0)
                continue
            log.info("campaign %s launch %s: claimed", campaign["id"], campaign["launch"])
            try:
                self.metrics.run(lambda: self.run(campaign))
            except Exception as exc:
                log.exception("campaign %s failed", campaign["id"])
                campaigns.finish(campaign["id"], self.owner, error=f"{type(exc).__name__}: {exc}")

    def run(self, campaign: dict[str, Any]) -> None:
        launch = self.open_launch(campaign)
        segment = self.platform.segments(launch.account_id)
        for batch in segment.profiles(launch.segment_id, after=launch.after, batch=BATCH):
            last = batch[-1]["_id"]
            state = self.wait_for_room(launch)
            if state == "sending" and not self.stop.is_set():
                state = self.hold_at_quiet_point(launch)  # the last look before publishing
            if self.stop.is_set():
                return  # the lease runs out and a restarted worker resumes from the checkpoint
            if state != "sending":
                self.stopped(launch, state)
                return
            batch, outside = self.ab_share(launch, batch)
            chosen = audience.choose(batch, launch.resource_id, stoplist=self.stoplist, handled=launch.record)
            outgoing = [self.render(launch, profile) for profile in chosen.profiles]
            self.publish(launch, outgoing, chosen)
            state = self.platform.campaigns.checkpoint(
                launch.campaign_id, self.owner, last, len(outgoing), chosen.skipped + outside, chosen.duplicates)
            if state != "sending":
                self.stopped(launch, state)
                return
        self.platform.campaigns.finish(launch.campaign_id, self.owner,
                                       ab_time_scale=self.config.TASKS.AB_TIME_SCALE)
        log.info("campaign %s launch %s: done", launch.campaign_id, launch.launch)

    # -- the steps -----------------------------------------------------------------------
    def open_launch(self, campaign: dict[str, Any]) -> Launch:
        """The template compiled (and its snapshot kept for /w), the senders loaded, their
        MTA queues declared."""
        account_id, cid, launch = campaign["account_id"], campaign["id"], campaign["launch"]
        template = self.platform.templates(account_id).get(campaign["template_id"])
        self.platform.snapshots(account_id).keep(cid, launch, template)  # what /w shows
        compiled = compile_parts(template)
        ab = campaign.get("ab")
        if ab and ab["phase"] == "waiting":
            ab = self.choose_winner(campaign)
        variants = tuple(self.compile_variant(account_id, template, v) for v in ab["variants"]) if ab else ()
        envelope = messages.Envelope(
            account_id, campaign["db_id"], campaign["resource_id"], cid, launch,
            "", "", "",  # From and Reply-To: per message, from the sender chosen for it
            self.config.TRACKING_BASE_URL, self.config.TRACKING_CRYPT_KEY)
        routes = CampaignSenders.load(self.platform.senders, self.platform.vsenders, campaign, envelope)
        queues = {sender_id: mta_envelope.queue(sender_id) for sender_id in routes.senders}
        for queue in queues.values():
            self.broker.declare_durable_queue(queue)
        return Launch(account_id=account_id, campaign_id=cid, launch=launch, db_id=campaign["db_id"],
                      resource_id=campaign["resource_id"], segment_id=campaign["segment_id"],
                      after=(campaign.get("progress") or {}).get("after"),
                      compiled=compiled, variants=variants, ab=ab, routes=routes, queues=queues,
                      record=LaunchRecord(self.dedup.client, cid, launch))

    def choose_winner(self, campaign: dict[str, Any]) -> dict[str, Any]:
        """Step 1' of an A/B campaign: the variant with the most unique human openers (or
        clickers) in the test group, as the reports count them, recorded on the campaign."""
        from altcraft.stores.analytics import Analytics

        ab = campaign["ab"]
        store = Analytics(self.config.CLICKHOUSE_SYSTEM)
        try:
            rows = store.execute(
                f"SELECT DISTINCT profile_id FROM {store.table('events')} WHERE account_id = %(a)s "
                f"AND campaign_id = %(c)s AND kind = %(k)s AND is_bot = 0",
                {"a": campaign["account_id"], "c": campaign["id"], "k": abtest.METRIC_KIND[ab["metric"]]})
        finally:
            store.close()
        counts = abtest.scores(campaign["id"], ab["test_share"], len(ab["variants"]), (r[0] for r in rows))
        best = abtest.winner(counts)
        self.platform.campaigns.choose_winner(campaign["id"], self.owner, best, counts)
        log.info("campaign %s: A/B winner %s (%s)", campaign["id"], abtest.label(best), counts)
        return {**ab, "phase": "rest", "winner": best, "scores": counts}

    def compile_variant(self, account_id: int, template: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
        if "subject" in variant:
            return compile_parts({**template, "subject": variant["subject"]})
        return compile_parts(self.platform.templates(account_id).get(variant["template_id"]))

    @staticmethod
    def ab_share(launch: Launch, batch: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """Step 2a'': the profiles of the batch in this phase's share, and how many were left out."""
        if not launch.ab:
            return list(batch), 0
        testing = launch.ab["phase"] == "test"
        kept = [p for p in batch if abtest.in_test(launch.campaign_id, p["_id"], launch.ab["test_share"]) == testing]
        return kept, len(batch) - len(kept)

    def compiled_for(self, launch: Launch, profile_id: str) -> dict[str, Any]:
        if not launch.ab:
            return launch.compiled
        if launch.ab["phase"] == "test":
            index = abtest.variant_of(launch.campaign_id, profile_id, launch.ab["test_share"], len(launch.variants))
            return launch.variants[index if index is not None else 0]
        return launch.variants[launch.ab["winner"]]

    def hold_at_quiet_point(self, launch: Launch) -> str:
        """Checked before every batch: while the maintenance flag is set, publishes nothing,
        renews the lease, keeps the checkpoint. Returns the campaign's state afterwards (a
        pause or cancel meanwhile is seen)."""
        flag = self.member.flag()
        if flag is None:
            self.member.report()
            return "sending"
        log.info("campaign %s: quiet point (%s), holding", launch.campaign_id, flag.get("reason"))
        renewed = time.monotonic()
        while flag is not None:
            self.member.report(quiet=flag["token"])
            if self.stop.wait(0.5):
                return "sending"  # the caller sees the stop
            if time.monotonic() - renewed > 10:
                if (state := self.platform.campaigns.renew(launch.campaign_id, self.owner)) != "sending":
                    return state
                renewed = time.monotonic()
            flag = self.member.flag()
        self.member.report()
        log.info("campaign %s: quiet point over, going on", launch.campaign_id)
        return self.platform.campaigns.renew(launch.campaign_id, self.owner)

    def wait_for_room(self, launch: Launch) -> str:
        """Waits while an MTA queue of the launch holds CAMP_QUEUE_LIMIT messages, renewing the lease;
        returns the campaign's state, so that a pause or cancel meanwhile is seen."""
        cid = launch.campaign_id
        renewed = time.monotonic()
        waited = False
        while max(self.broker.queue_depth(q) for q in launch.queues.values()) >= self.config.CAMP_QUEUE_LIMIT:
            waited = True
            # publishing nothing while it waits: quiet for a backup's roll call (akmtad pauses
            # at the quiet point too, so the room may come only after it)
            flag = self.member.flag()
            self.member.report(quiet=flag["token"] if flag else None)
            if self.stop.wait(0.5):
                return "sending"  # the caller sees the stop
            if time.monotonic() - renewed > 10:
                state = self.platform.campaigns.renew(cid, self.owner)
                if state != "sending":
                    return state
                renewed = time.monotonic()
        # after a wait the state is read again: a pause meanwhile must publish nothing more
        return self.platform.campaigns.renew(cid, self.owner) if waited else "sending"

    def render(self, launch: Launch, profile: Mapping[str, Any]) -> Message:
        """One profile's message, addressed to the queue of the sender chosen for it."""
        via = launch.routes.via(profile["_id"], profile["data"]["email"])
        rendered = messages.render(self.compiled_for(launch, profile["_id"]), via.envelope, profile)
        addressed = mta_envelope.MtaEnvelope(
            sender_id=via.sender_id, rcpt=rendered.rcpt, account_id=launch.account_id,
            campaign_id=launch.campaign_id, launch=launch.launch, profile_id=profile["_id"],
            db_id=launch.db_id, resource_id=launch.resource_id)
        return Message("", launch.queues[via.sender_id], rendered.data, rendered.message_id,
                       addressed.headers(), mta_envelope.CONTENT_TYPE)

    def publish(self, launch: Launch, outgoing: list[Message], chosen: audience.Audience) -> None:
        """One broker transaction; only once it is committed are the profiles marked handled."""
        if not outgoing:
            return
        self.broker.publish_transaction(outgoing)
        PUBLISHED.inc(len(outgoing))
        launch.record.mark([p["_id"] for p in chosen.profiles])

    def stopped(self, launch: Launch, state: str) -> None:
        log.info("campaign %s: %s, stopping", launch.campaign_id, state)
        if state != "lost":
            self.platform.campaigns.finish(launch.campaign_id, self.owner,
                                           ab_time_scale=self.config.TASKS.AB_TIME_SCALE)

    def close(self) -> None:
        try:
            self.member.leave()
        except Exception:  # noqa: BLE001 - the member lapses by itself
            pass
        self.broker.close()
        self.dedup.close()
        self.platform.close()


def main(config: MainConfig, stop: threading.Event) -> None:
    runner = CampaignRunner(config, stop)
    try:
        runner.run_forever()
    finally:
        runner.close()
