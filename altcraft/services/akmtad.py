"""akmtad: takes messages from the senders' queues, keeps them in a durable spool, and
delivers them over SMTP by the MTA rules; every outcome becomes an event.

This module is the process: intake, recovery, the control HTTP and the wiring. The delivery
engine (scheduling, sessions, retries, locks, HELO, outcomes) is altcraft.mta.delivery; it is
given here what it needs from outside: the Kvrocks done-key store, the broker-backed outcome
publisher, the spool, SMTP sessions, DNS and the clock.

Intake (the broker's thread): for each message of the sender's queues (altcraft.mta.envelope
names them), drop it if it is already ours (its spool file exists, or it was delivered: a
done key in Kvrocks), else rewrite it as its ISP's strategy asks (altcraft.mta.rewrite),
DKIM-sign it and write it to the spool with fsync; only then acknowledge, in batches. While
MTA.MAX_SPOOLED messages wait in the spool ready to go (not held, not waiting for a retry),
intake pauses: the rest wait in RabbitMQ (backpressure, altcraft.mta.ready.intake_open).
Delivery (an asyncio thread): altcraft.mta.delivery. The done key is awaited right after
each 250. Events (delivered, deferred, bounced_hard, bounced_soft, dropped) go to
altcraft.events as delivery.<kind> in broker transactions (EventPublisher), with an event
id derived from the message id, so a re-published event is the same event. A spool file is
removed only after its final event is in the broker.
Quiet point (a backup, issue 14): while the maintenance flag is set, intake takes nothing
(messages wait in RabbitMQ, at most PREFETCH of them unacknowledged here) and delivery
pauses too: open sessions end after their current message, none starts. akmtad says it is
quiet (domain/maintenance.py, QuietMember) once no session is open and every outcome event
is in the broker, so the spool, the done keys and the delivery events agree in the backup.
MTA rules (issue 13): main.json's MTA section holds the defaults; a rule set saved in the
control database (domain/mta_rules.py) replaces its fields. The main loop looks for a newer
version every MTA.RULES_POLL_SECONDS and hands it to the engine (Delivery.apply_rules): a
saved change applies without a restart. If the control database cannot be read, the rules
in force stay.
Known window: a kill between the peer's 250 and the done key (microseconds) sends that one
message again after restart; SMTP itself cannot close it (RFC 1047).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.resolver
from flask import jsonify, request
from prometheus_client import Counter, Gauge

from altcraft.config import MainConfig
from altcraft.domain import mta_rules
from altcraft.domain.errors import Invalid
from altcraft.domain.maintenance import QuietMember
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.mta import dkim as dkim_signer
from altcraft.mta import envelope as mta_envelope
from altcraft.mta import rewrite
from altcraft.mta.delivery import Delivery
from altcraft.mta.outcomes import Outcome
from altcraft.mta.ready import intake_open
from altcraft.mta.smtp import Session
from altcraft.mta.spool import Meta, Spool
from altcraft.registry import get as registry_get
from altcraft.schema.rabbitmq import EVENTS_EXCHANGE
from altcraft.stores import kv
from altcraft.stores.broker import Broker, Message, Received
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.akmtad")
OUTCOMES = Counter("altcraft_mta_outcomes_total", "Delivery outcomes", ["kind"])
RULES_VERSION = Gauge("altcraft_mta_rules_version", "The MTA rules version in force (0: main.json's alone)")


class DnsResolver:
    """MX and PTR lookups for the engine (dnspython, and the system resolver for PTR)."""

    def mx(self, domain: str) -> str:
        try:
            answers = sorted(dns.resolver.resolve(domain, "MX"), key=lambda r: r.preference)
            return str(answers[0].exchange).rstrip(".")
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return domain  # RFC 5321 5.1: no MX, the domain itself

    async def ptr(self, ip: str) -> str | None:
        try:
            return (await asyncio.get_running_loop().run_in_executor(None, socket.gethostbyaddr, ip))[0]
        except OSError:
            return None


class KvDoneKeys:
    """Done keys in Kvrocks (CAMP_DUPLICATESDB), written on the delivery loop without
    blocking other sessions."""

    def __init__(self, config: MainConfig):
        self.client = kv.async_from_cluster(config.CAMP_DUPLICATESDB)
        self.ttl = config.MTA.DEDUP_TTL_DAYS * 86400

    async def mark_done(self, message_id: str) -> None:
        await self.client.set(mta_envelope.done_key(message_id), 1, ex=self.ttl)

    async def aclose(self) -> None:
        await self.client.aclose()


class EventPublisher(threading.Thread):
    """The engine's outcome sink: publishes outcome events in broker transactions, then runs
    each event's callback (removing a spool file once its final event is in the broker)."""

    def __init__(self, config: MainConfig):
        super().__init__(name="events", daemon=True)
        self.broker = Broker(config, app="akmtad-events")
        self.queue: queue.Queue[tuple[Message, Callable[[], None] | None] | None] = queue.Queue()
        self.stopped = threading.Event()

    def __call__(self, outcome: Outcome, then: Callable[[], None] | None = None) -> None:
        OUTCOMES.labels(outcome.kind).inc()
        self.queue.put((Message(EVENTS_EXCHANGE, outcome.routing_key, outcome.body, outcome.event_id), then))

    def idle(self) -> bool:
        """Every outcome handed over is in the broker and its callback has run."""
        return self.queue.unfinished_tasks == 0

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                break
            batch = [item]
            deadline = time.monotonic() + 0.05
            while len(batch) < 500 and time.monotonic() < deadline:
                try:
                    more = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self.queue.task_done()
                    self.queue.put(None)
                    break
                batch.append(more)
            self._publish(batch)
        self.stopped.set()

    def _publish(self, batch: list[tuple[Message, Callable[[], None] | None]]) -> None:
        while True:
            try:
                self.broker.publish_transaction([event for event, _ in batch])
                break
            except Exception as exc:  # the broker is away: keep the events, try again
                log.warning("events: publish failed (%s), retrying", type(exc).__name__)
                self.broker.close()
                time.sleep(1)
        for _, then in batch:
            if then is not None:
                then()
            self.queue.task_done()

    def stop(self) -> None:
        self.queue.put(None)
        self.stopped.wait(10)
        self.broker.close()


class DeliveryThread:
    """The engine on its own asyncio loop and thread; other threads reach it through
    `call` (wait for the result) and `soon` (fire and forget)."""

    def __init__(self, delivery: Delivery, done: KvDoneKeys):
        self.delivery = delivery
        self.done = done
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="delivery", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            await self.delivery.run()
            await self.done.aclose()
        self.loop.run_until_complete(main())

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = 10) -> Any:
        async def on_loop() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(timeout)

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.delivery.stop)
        self.thread.join(30)


class Akmtad:
    def __init__(self, config: MainConfig, stop: threading.Event):
        self.config = config
        self.stop_event = stop
        spool_dir = Path(config.MTA.SPOOL_DIR or config.basedir / "spool" / "akmta")
        self.spool = Spool(spool_dir)
        self.done = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB)
        self.platform = Platform(config)
        self.senders: dict[int, dict[str, Any]] = {}
        self._load_senders()
        self.events = EventPublisher(config)
        done_keys = KvDoneKeys(config)
        self.delivery = Delivery(config.MTA, spool=self.spool, outcomes=self.events, done=done_keys,
                                 sessions=Session, resolver=DnsResolver(), senders=self.senders)
        self.engine = DeliveryThread(self.delivery, done_keys)
        self.broker = Broker(config, app="akmtad")
        self.consumed: set[str] = set()
        self.pending: list[tuple[Received, bool]] = []
        self.member = QuietMember(self.platform.control, "akmtad", f"{socket.gethostname()}:{os.getpid()}")
        self.quiet_token: str | None = None  # the flag's token while paused for it
        self._flag_read = 0.0
        self.rules_version = 0  # main.json's rules until a saved version is read
        self._rules_read = 0.0

    def _load_senders(self) -> None:
        for doc in self.platform.senders.collection.find({"deleted": False}):
            self.senders[doc["id"]] = doc

    # -- intake ------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        self.broker.prefetch(self.config.MTA.PREFETCH)
        for sender_id in sorted(self.senders):
            for name, priority in mta_envelope.queues(sender_id):
                if name in self.consumed:
                    continue
                self.broker.declare_durable_queue(name)
                self.broker.consume(name, lambda received, p=priority: self.pending.append((received, p)))
                self.consumed.add(name)

    def _meta(self, received: Received, priority: bool) -> Meta:
        addressed = mta_envelope.MtaEnvelope.from_headers(received.headers)
        sender = self.senders.get(addressed.sender_id)
        if sender is None:
            raise mta_envelope.BadEnvelope(f"header sender_id: no sender {addressed.sender_id}")
        return Meta(message_id=received.message_id, rcpt=addressed.rcpt, mail_from=sender["from_email"],
                    sender_id=addressed.sender_id, account_id=addressed.account_id,
                    campaign_id=addressed.campaign_id, launch=addressed.launch,
                    profile_id=addressed.profile_id, db_id=addressed.db_id,
                    resource_id=addressed.resource_id, priority=priority, created=time.time())

    def _intake(self) -> None:
        batch, self.pending = self.pending, []
        accepted: list[Meta] = []
        writes: list[tuple[Meta, bytes]] = []
        batch_ids: set[str] = set()
        done_keys = self.done.client.mget([mta_envelope.done_key(r.message_id or "") for r, _ in batch])
        for (received, priority), done in zip(batch, done_keys):
            message_id = received.message_id
            if not message_id or done is not None or self.spool.exists(message_id) \
                    or message_id in self.delivery.meta or message_id in batch_ids:
                continue  # a duplicate (re-published or redelivered): ours already
            batch_ids.add(message_id)
            try:
                meta = self._meta(received, priority)
            except mta_envelope.BadEnvelope as exc:
                log.error("message %s rejected: %s", message_id, exc)
                continue  # acked below: a malformed message would otherwise loop forever
            sender = self.senders[meta.sender_id]
            _, strategy = self.delivery.strategy_of(meta)
            body = rewrite.apply(received.body, strategy.ENCODING, strategy.HEADERS)
            data = dkim_signer.sign(body, sender.get("dkim_algorithm", "rsa"), sender.get("dkim_domain", ""),
                                    sender.get("dkim_selector", "ak"), sender.get("dkim_private_key", ""))
            writes.append((meta, data))
            accepted.append(meta)
        self.spool.write_many(writes)  # durable before the broker forgets them
        self.broker.ack(batch[-1][0].tag, multiple=True)
        if accepted:
            self.engine.soon(self.delivery.schedule, accepted)

    def recover(self) -> None:
        """After a restart: deliver what the spool holds; report what was delivered but not
        yet reported."""
        waiting, delivered = [], []
        spooled = list(self.spool.scan())
        for start in range(0, len(spooled), 1000):
            chunk = spooled[start:start + 1000]
            done = self.done.client.mget([mta_envelope.done_key(meta.message_id) for meta in chunk])
            for meta, key in zip(chunk, done):
                (waiting if key is None else delivered).append(meta)
        for meta in delivered:
            self.delivery.report_delivered(meta, "delivered before a restart")
        self.delivery.schedule(waiting)
        log.info("spool: %d to deliver, %d delivered before the restart", len(waiting), len(delivered))

    # -- MTA rules -------------------------------------------------------------------------
    def refresh_rules(self, force: bool = False) -> None:
        """Applies the newest saved rule set when it is not the one in force (at most every
        MTA.RULES_POLL_SECONDS)."""
        now = time.monotonic()
        if not force and now - self._rules_read < self.config.MTA.RULES_POLL_SECONDS:
            return
        self._rules_read = now
        try:
            if self.platform.mta_rules.version() == self.rules_version:
                return
            version, saved = self.platform.mta_rules.current()
        except Invalid as exc:  # saved by an older version's checker: keep what is in force
            log.error("MTA rules not applied: %s", exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - MongoDB away: the rules in force stay
            log.warning("MTA rules not read (%s)", type(exc).__name__)
            return
        self.engine.soon(self.delivery.apply_rules, mta_rules.effective(self.config.MTA, saved))
        self.rules_version = version
        RULES_VERSION.set(version)
        log.info("MTA rules version %d in force%s", version, "" if version else " (main.json's)")

    # -- the quiet point -------------------------------------------------------------------
    def quiet_point(self) -> bool:
        """Reads the flag (at most twice a second); pauses or resumes delivery with it and
        tells the roll call. True while intake must take nothing."""
        now = time.monotonic()
        if now - self._flag_read < 0.5:
            return self.quiet_token is not None
        self._flag_read = now
        try:
            flag = self.member.flag()
        except Exception as exc:  # noqa: BLE001 - MongoDB away: keep the state we had
            log.warning("maintenance flag not read (%s)", type(exc).__name__)
            return self.quiet_token is not None
        if flag is not None and self.quiet_token is None:
            log.info("quiet point (%s): intake and delivery pause", flag.get("reason"))
            self.engine.soon(self.delivery.pause)
        elif flag is None and self.quiet_token is not None:
            log.info("quiet point over: intake and delivery go on")
            self.engine.soon(self.delivery.resume)
        self.quiet_token = flag["token"] if flag else None
        quiet = flag is not None and self.engine.call(self.delivery.quiet) and self.events.idle()
        try:
            self.member.report(quiet=self.quiet_token if quiet else None)
        except Exception as exc:  # noqa: BLE001
            log.warning("quiet point roll call not written (%s)", type(exc).__name__)
        return flag is not None

    # -- control HTTP ----------------------------------------------------------------------
    def control_app(self):
        app = create_service_app("akmtad", dependency_checker(self.config, registry_get("akmtad").requires))
        delivery, engine = self.delivery, self.engine
        token = self.config.MTA.CONTROL_TOKEN

        @app.before_request
        def bearer_token():
            # the probes and /metrics stay open like every process's; the queue and rules are not
            if token and request.path.startswith("/akmtad/") and request.path.split("/")[2] in ("queue", "rules"):
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return jsonify(error="a valid Authorization: Bearer token is required (MTA.CONTROL_TOKEN)"), 401
            return None

        @app.get("/akmtad/rules")
        def rules_in_force():
            return jsonify(version=self.rules_version)

        @app.get("/akmtad/queue/stats")
        def stats():
            return jsonify(engine.call(delivery.stats))

        @app.post("/akmtad/queue/<action>")
        def control(action: str):
            body = request.get_json(silent=True) or {}
            sender_id = body.get("sender_id")
            if not isinstance(sender_id, int):
                return jsonify(error="sender_id: an integer"), 400
            if action == "hold":
                engine.soon(delivery.hold, sender_id)
            elif action == "release":
                engine.soon(delivery.release, sender_id)
            elif action == "purge":
                return jsonify(purged=engine.call(delivery.purge, sender_id))
            else:
                return jsonify(error=f"unknown action {action}"), 404
            return jsonify(ok=True)

        return app

    def _serve_control(self) -> None:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):  # requests are counted in metrics, not logged
                pass

        server = make_server(*self.config.listen_address("akmtad"), self.control_app(), handler_class=Quiet)
        server.timeout = 0.5
        threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
        self._control = server

    # -- main ----------------------------------------------------------------------------
    def run(self) -> None:
        self.events.start()
        self.engine.start()
        # the control port first: akd reports akmtad running once it listens, and queue
        # control must answer from then on (a call during a long recovery waits for it)
        self._serve_control()
        self.refresh_rules(force=True)
        # the spool is read before intake starts, so nothing is both recovered and taken in
        self.engine.call(self.recover, timeout=None)
        self._subscribe()
        last_refresh = time.monotonic()
        while not self.stop_event.is_set():
            self.broker.poll(0.05)
            self.refresh_rules()
            if self.quiet_point():
                continue  # what arrived waits in self.pending, unacknowledged
            # backpressure: unacknowledged, the broker sends no more than PREFETCH meanwhile
            if self.pending and intake_open(self.delivery.backlog(), self.config.MTA.MAX_SPOOLED):
                self._intake()
            if time.monotonic() - last_refresh > 10:
                self._load_senders()
                self._subscribe()
                last_refresh = time.monotonic()

    def close(self) -> None:
        try:
            if self.pending and self.quiet_token is None:
                self._intake()
        finally:
            try:
                self.member.leave()
            except Exception:  # noqa: BLE001 - the member lapses by itself
                pass
            self.broker.close()
            self.engine.stop()
            self.events.stop()
            self._control.shutdown()
            self.spool.close()
            self.done.close()
            self.platform.close()


def main(config: MainConfig, stop: threading.Event) -> None:
    daemon = Akmtad(config, stop)
    try:
        daemon.run()
    finally:
        daemon.close()
