"""The `proctrigger` worker: sends trigger-campaign messages through the priority MTA queue.

Sends arrive on `triggers.jobs` (from procevent and the API). Each is stored in
`trigger_sends` under its derived message id before its job is acknowledged (a repeat is
stored once, domain/triggers.py), so nothing acknowledged is ever lost. A send that is due is
claimed under a lease, rendered with the campaign worker's renderer (domain/message.py, the
trigger's `data` as {{ data.* }}), published to `akmta_prior_<sender>` (confirmed), then
marked sent. A worker killed between the publish and the mark leaves the lease to run out;
the send is claimed again and published again with the same Message-ID, which akmtad drops.
Delayed sends wait in the store, not in memory: a scan claims whatever is due, after any
restart.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from altcraft.services.reconnect import fresh, run_until_stopped
from altcraft.config import MainConfig
from altcraft.domain import triggers
from altcraft.domain.errors import DomainError
from altcraft.schema.rabbitmq import TRIGGER_JOBS_QUEUE
from altcraft.services.mailout import Mailer, Skip
from altcraft.stores.broker import Broker, Received
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.proctrigger")
PREFETCH = 200
SCAN_SECONDS = 0.5  # how often due (delayed, or orphaned) sends are looked for
LEASE_SECONDS = 30.0


class TriggerSender:
    def __init__(self, config: MainConfig, platform: Platform | None = None):
        self.config = config
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.platform = platform or Platform(config)
        self.triggers = self.platform.triggers
        self.broker = Broker(config, app="proctrigger")
        self.mailer = Mailer(config, self.platform, self.broker)
        self.arrived: list[Received] = []

    def run(self, stop: threading.Event) -> None:
        self.broker.prefetch(PREFETCH)
        self.broker.consume(TRIGGER_JOBS_QUEUE, self.arrived.append)
        while not stop.is_set():
            self.broker.poll(SCAN_SECONDS)
            due = []
            while self.arrived:
                due.extend(self.store(self.arrived.pop(0)))
            for send in due:  # new sends due now: at once, not at the next scan
                self.attempt(send)
            while not stop.is_set() and self.attempt(self.triggers.claim(self.owner, None, LEASE_SECONDS)):
                pass

    def store(self, received: Received) -> list[dict[str, Any]]:
        """Stores a job's send, then acknowledges it; the send, leased to this worker, if it is
        due now. One write either way: the API stored its sends already, so the claim comes
        first; a send not stored yet (procevent's) is inserted already leased."""
        try:
            send = triggers.decode_job(received.body)
        except ValueError as exc:
            log.error("job %s dead-lettered: %s", received.message_id, exc)
            self.broker.reject(received.tag)
            return []
        claimed = self.triggers.claim(self.owner, send["_id"], LEASE_SECONDS)
        if claimed is None:
            stored, new = self.triggers.enqueue(send, self.owner, LEASE_SECONDS)
            claimed = stored if new and stored["owner"] == self.owner else None
        self.broker.ack(received.tag)
        return [claimed] if claimed is not None else []

    def attempt(self, send: dict[str, Any] | None) -> bool:
        if send is None:
            return False
        try:
            self.deliver(send)
            self.triggers.finish(send["_id"], self.owner, "sent")
        except Skip as exc:
            log.info("trigger send %s skipped: %s", send["_id"], exc)
            self.triggers.finish(send["_id"], self.owner, "skipped", str(exc))
        except DomainError as exc:  # the trigger, template or sender is gone or invalid
            log.warning("trigger send %s failed: %s", send["_id"], exc.message)
            self.triggers.finish(send["_id"], self.owner, "failed", exc.message)
        return True

    def deliver(self, send: dict[str, Any]) -> None:
        trigger = self.triggers.get(send["account_id"], send["trigger_id"])
        if not trigger["active"]:
            raise Skip("the trigger campaign is not active")
        self.mailer.send(send["account_id"], trigger, send["profile_id"], send["_id"], send["data"])

    def close(self) -> None:
        self.broker.close()
        self.platform.close()


def main(config: MainConfig, stop: threading.Event) -> None:
    # a store or the broker away: leases run out, sends are claimed again
    run_until_stopped(fresh(lambda: TriggerSender(config)), stop, "trigger sending", log)
