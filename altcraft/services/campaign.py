"""The `campaign` worker: turns due campaigns into messages on the sender's MTA queue.

For each claimed campaign it streams the segment in profile-id order, drops profiles that
are not subscribed to the campaign's resource, are on the global stop list, or were already
handled in this launch (de-duplication keys in CAMP_DUPLICATESDB), renders the rest, and
publishes them to the sender's MTA queue (altcraft.mta.envelope) in broker transactions (with a virtual sender, the
queue of the real sender its rules choose for each recipient). Only after a batch is committed
are its de-duplication keys set and the checkpoint moved. A worker killed between the two
re-publishes at most one batch on resume; those copies carry the same Message-ID and akmtad
drops them. Publishing waits while the MTA queue holds CAMP_QUEUE_LIMIT messages, so a pause
takes effect within that many messages and the broker never holds a whole campaign.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from altcraft.config import MainConfig
from altcraft.domain import message as messages
from altcraft.domain.campaign_senders import CampaignSenders
from altcraft.domain.stoplist import StopList
from altcraft.domain.templates import compile_parts
from altcraft.mta import envelope as mta_envelope
from altcraft.stores import kv
from altcraft.stores.broker import Broker, Message
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.campaign")
BATCH = 500
DEDUP_TTL = 30 * 86400


def _subscribed(profile: dict[str, Any], resource_id: int) -> bool:
    return any(s["resource_id"] == resource_id and s["channel"] == "email" and s["status"] == "subscribed"
               for s in profile.get("subscriptions", []))


class CampaignRunner:
    def __init__(self, config: MainConfig, stop: threading.Event):
        self.config = config
        self.stop = stop
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.platform = Platform(config)
        self.broker = Broker(config, app="campaign")
        self.dedup = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB)
        self.stoplist = StopList(kv.ssdb(config, "hbsupp"))

    def run_forever(self) -> None:
        campaigns = self.platform.campaigns
        while not self.stop.is_set():
            campaign = campaigns.claim(self.owner)
            if campaign is None:
                self.stop.wait(1.0)
                continue
            log.info("campaign %s launch %s: claimed", campaign["id"], campaign["launch"])
            try:
                self.run(campaign)
            except Exception as exc:
                log.exception("campaign %s failed", campaign["id"])
                campaigns.finish(campaign["id"], self.owner, error=f"{type(exc).__name__}: {exc}")

    def run(self, campaign: dict[str, Any]) -> None:
        account_id, cid, launch = campaign["account_id"], campaign["id"], campaign["launch"]
        template = self.platform.templates(account_id).get(campaign["template_id"])
        self.platform.snapshots(account_id).keep(cid, launch, template)  # what /w shows
        compiled = compile_parts(template)
        segments = self.platform.segments(account_id)
        envelope = messages.Envelope(
            account_id, campaign["db_id"], campaign["resource_id"], cid, launch,
            "", "", "",  # From and Reply-To: per message, from the sender chosen for it
            self.config.TRACKING_BASE_URL, self.config.TRACKING_CRYPT_KEY)
        routes = CampaignSenders.load(self.platform.senders, self.platform.vsenders, campaign, envelope)
        queues = {sender_id: mta_envelope.queue(sender_id) for sender_id in routes.senders}
        for queue in queues.values():
            self.broker.declare_durable_queue(queue)
        resource = campaign["resource_id"]
        after = (campaign.get("progress") or {}).get("after")
        for batch in segments.profiles(campaign["segment_id"], after=after, batch=BATCH):
            state = self._wait_for_room(list(queues.values()), cid)
            if self.stop.is_set():
                return  # the lease runs out and a restarted worker resumes from the checkpoint
            if state != "sending":
                self._stopped(cid, state)
                return
            eligible = [p for p in batch if p.get("data", {}).get("email") and _subscribed(p, resource)]
            blocked = self.stoplist.blocked([p["data"]["email"] for p in eligible])
            eligible = [p for p in eligible if p["data"]["email"] not in blocked]
            keys = [mta_envelope.launch_dedup_key(cid, launch, p["_id"]) for p in eligible]
            seen = self.dedup.client.mget(keys) if keys else []
            fresh = [(p, k) for p, k, s in zip(eligible, keys, seen) if s is None]
            outgoing = []
            for profile, _ in fresh:
                via = routes.via(profile["_id"], profile["data"]["email"])
                rendered = messages.render(compiled, via.envelope, profile)
                addressed = mta_envelope.MtaEnvelope(
                    sender_id=via.sender_id, rcpt=rendered.rcpt, account_id=account_id, campaign_id=cid,
                    launch=launch, profile_id=profile["_id"], db_id=campaign["db_id"], resource_id=resource)
                outgoing.append(Message("", queues[via.sender_id], rendered.data, rendered.message_id,
                                        addressed.headers(), mta_envelope.CONTENT_TYPE))
            if outgoing:
                self.broker.publish_transaction(outgoing)
                pipe = self.dedup.client.pipeline(transaction=False)
                for _, key in fresh:
                    pipe.set(key, 1, ex=DEDUP_TTL)
                pipe.execute()
            state = self.platform.campaigns.checkpoint(
                cid, self.owner, batch[-1]["_id"], len(outgoing),
                len(batch) - len(eligible) , len(eligible) - len(fresh))
            if state != "sending":
                self._stopped(cid, state)
                return
        self.platform.campaigns.finish(cid, self.owner)
        log.info("campaign %s launch %s: done", cid, launch)

    def _wait_for_room(self, queues: list[str], cid: int) -> str:
        """Waits while an MTA queue of the launch holds CAMP_QUEUE_LIMIT messages, renewing the lease;
        returns the campaign's state, so that a pause or cancel meanwhile is seen."""
        renewed = time.monotonic()
        waited = False
        while max(self.broker.queue_depth(q) for q in queues) >= self.config.CAMP_QUEUE_LIMIT:
            waited = True
            if self.stop.wait(0.5):
                return "sending"  # the caller sees the stop
            if time.monotonic() - renewed > 10:
                state = self.platform.campaigns.renew(cid, self.owner)
                if state != "sending":
                    return state
                renewed = time.monotonic()
        # after a wait the state is read again: a pause meanwhile must publish nothing more
        return self.platform.campaigns.renew(cid, self.owner) if waited else "sending"

    def _stopped(self, cid: int, state: str) -> None:
        log.info("campaign %s: %s, stopping", cid, state)
        if state != "lost":
            self.platform.campaigns.finish(cid, self.owner)

    def close(self) -> None:
        self.broker.close()
        self.dedup.close()
        self.platform.close()


def main(config: MainConfig, stop: threading.Event) -> None:
    runner = CampaignRunner(config, stop)
    try:
        runner.run_forever()
    finally:
        runner.close()
