"""prochook: outgoing webhooks (domain/webhooks.py), from the event exchange to receivers.

Two parts in one process:

- Intake (the main thread): consumes its own durable queue `events.webhooks`, bound to
  `altcraft.events` with `#`, so tracking (action.*), delivery (delivery.*) and any event
  type added later arrive. Each batch of deliveries is decoded with domain/events.py, matched
  against the enabled endpoints of its accounts, written to the outbox (one entry per
  (endpoint, event), a second write of the same pair is a no-op) and only then acknowledged.
  A kill -9 before the ack makes RabbitMQ deliver the batch again: no entry is lost and none
  is doubled.
- Senders: one thread claims due outbox entries under a lease and CONCURRENCY threads sign
  each with the endpoint's valid secrets, POST it to the checked address and record the
  outcome. A sender
  that dies leaves its entry to be claimed again when the lease ends: delivery is at least
  once, and the webhook-id is the same every time, so receivers de-duplicate by it.

Messages that are not valid events are acknowledged and logged here: procactions
dead-letters its own copy of them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from altcraft.services.reconnect import run_until_stopped
from altcraft.config import MainConfig
from altcraft.domain import webhooks
from altcraft.domain.clock import now
from altcraft.domain.events import BadEvent, decode_any, event_time
from altcraft.services.webhook_http import Sender
from altcraft.stores.amqp_consume import BatchConsumer
from altcraft.stores.broker import Received

log = logging.getLogger("altcraft.prochook")

QUEUE = "events.webhooks"
PREFETCH = 500
PRUNE_EVERY = 3600.0  # seconds between removals of messages older than WEBHOOKS.KEEP_DAYS
IDLE_SECONDS = 0.5  # a sender with nothing due looks again after this (or when intake wakes it)


def lease_seconds(config: MainConfig) -> float:
    """Longer than any request (connect + read, each up to the timeout)."""
    return config.WEBHOOKS.TIMEOUT_SECONDS * 2 + 1


class Intake:
    def __init__(self, config: MainConfig, endpoints: webhooks.Endpoints, outbox: webhooks.Outbox,
                 wake: threading.Event):
        self.config = config
        self.endpoints = endpoints
        self.outbox = outbox
        self.wake = wake
        self.buffer: list[Received] = []
        self.written = 0

    def _on_message(self, message: Received) -> None:
        self.buffer.append(message)  # the current buffer: a batch taken away is a list of its own

    def run(self, stop: threading.Event) -> None:
        source = BatchConsumer(self.config, (QUEUE,), self._on_message, prefetch=PREFETCH,
                               app="altcraft-prochook")
        try:
            log.info("consuming %s", QUEUE)
            while not stop.is_set():
                source.poll(0.05)
                if not self.buffer:
                    continue
                batch, self.buffer = self.buffer, []
                self.handle(batch)  # raises if a store is away: nothing acknowledged
                source.ack(batch[-1].tag, multiple=True)
                source.flush()
        finally:
            self.buffer.clear()  # unacknowledged: delivered again
            source.close()

    def handle(self, batch: list[Received]) -> None:
        by_account: dict[int, list[tuple[str, object, dict]]] = defaultdict(list)
        for message in batch:
            try:
                event = decode_any(message.body, message.routing_key)
            except BadEvent as exc:
                log.warning("skipped a message from %s: %s", message.routing_key, exc)
                continue
            by_account[event.account_id].append((message.routing_key, event, json.loads(message.body)))
        new = 0
        for account_id, items in by_account.items():
            listening = self.endpoints.listening(account_id)
            if not listening:
                continue
            entries = []
            for routing_key, event, data in items:
                body = None
                for endpoint in listening:
                    if not webhooks.matches(endpoint["events"], routing_key):
                        continue
                    body = body or webhooks.payload(routing_key, event_time(event), data)
                    entries.append(self.outbox.entry(account_id, endpoint["id"], str(event.event_id),
                                                     routing_key, body))
            new += self.outbox.put(entries)
        if new:
            self.written += new
            self.wake.set()


class Senders:
    """One claimer thread hands claimed entries to CONCURRENCY sending threads.

    Claims are made by one thread per process because FerretDB (the MongoDB stand-in) does
    not make a conditional update atomic: two threads of one process could both win a claim
    there. On MongoDB find_one_and_update is atomic, so several prochook processes never
    share a claim; on FerretDB they could send an entry twice, which at-least-once allows
    (receivers de-duplicate by webhook-id)."""

    def __init__(self, config: MainConfig, endpoints: webhooks.Endpoints, outbox: webhooks.Outbox,
                 wake: threading.Event, sender: Sender | None = None):
        self.config = config
        self.endpoints = endpoints
        self.outbox = outbox
        self.wake = wake
        self.sender = sender or Sender(endpoints.policy, config.WEBHOOKS.TIMEOUT_SECONDS)
        self.lease = lease_seconds(config)
        self.slots = threading.BoundedSemaphore(config.WEBHOOKS.CONCURRENCY)
        self.pool = ThreadPoolExecutor(config.WEBHOOKS.CONCURRENCY, thread_name_prefix="prochook-sender")
        self.thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self.thread = threading.Thread(target=self._claim_loop, args=(stop,), name="prochook-claimer", daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _claim_loop(self, stop: threading.Event) -> None:
        backoff = 1.0
        next_prune = time.monotonic() + 60
        while not stop.is_set():
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                try:
                    pruned = self.outbox.prune(timedelta(days=self.config.WEBHOOKS.KEEP_DAYS))
                    if pruned:
                        log.info("%d old webhook messages removed", pruned)
                except Exception as exc:  # the document store away: the claims below say so
                    log.warning("prune: %s", type(exc).__name__)
            free = self._free_slots()
            if not free:
                continue
            try:
                claims = self.outbox.claim(self.lease, free)
                backoff = 1.0
            except Exception as exc:  # the document store away: try again later
                self._release(free)
                log.warning("claim: %s: %s; again in %.0f s", type(exc).__name__, str(exc)[:200], backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._release(free - len(claims))
            for claim in claims:
                self.pool.submit(self._send_released, claim)
            if not claims:
                self.wake.wait(IDLE_SECONDS)
                self.wake.clear()

    def _free_slots(self) -> int:
        """Waits for one free sending thread, then takes every other free one."""
        if not self.slots.acquire(timeout=IDLE_SECONDS):
            return 0
        taken = 1
        while self.slots.acquire(blocking=False):
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self.slots.release()

    def _send_released(self, claim: webhooks.Claim) -> None:
        try:
            self.send(claim)
        except Exception as exc:  # unrecorded: the lease runs out and the entry is sent again
            log.warning("%s: %s: %s", claim.id, type(exc).__name__, str(exc)[:200])
        finally:
            self.slots.release()

    def send(self, claim: webhooks.Claim) -> None:
        endpoint = self.endpoints.collection.find_one({"id": claim.endpoint_id, "account_id": claim.account_id})
        if endpoint is None or not endpoint.get("enabled"):
            self.outbox.cancel(claim, "the webhook was deleted" if endpoint is None else "the webhook is disabled")
            return
        stamp = now()
        body = claim.body
        headers = webhooks.headers(webhooks.valid_secrets(endpoint, stamp), claim.id, int(stamp.timestamp()), body)
        result = self.sender.post(endpoint["url"], body, headers)
        state = self.outbox.record(claim, result.status, result.error, result.duration, result.retry_after)
        if webhooks.outcome(result.status) == "gone":
            self.endpoints.disable(endpoint["id"], f"the receiver answered 410 Gone to {claim.id}")
            log.info("webhook %s disabled: the receiver answered 410 Gone", endpoint["id"])
        elif state == "failed":
            log.info("webhook %s: %s failed after its last retry", endpoint["id"], claim.id)


def main(config: MainConfig, stop: threading.Event) -> None:
    from altcraft.wiring import Platform

    platform = Platform(config)
    endpoints, outbox = platform.webhooks, platform.webhook_outbox
    wake = threading.Event()
    senders = Senders(config, endpoints, outbox, wake)
    senders.start(stop)
    log.info("%d senders, pid %d, retry time scale %g", config.WEBHOOKS.CONCURRENCY, os.getpid(),
             config.WEBHOOKS.TIME_SCALE)
    intake = Intake(config, endpoints, outbox, wake)
    # the broker or the document store away: the batch is not written and not acknowledged
    run_until_stopped(intake.run, stop, "intake", log)
    wake.set()
    senders.join(config.WEBHOOKS.TIMEOUT_SECONDS + 5)
    log.info("stopped; %d outbox entries written", intake.written)
