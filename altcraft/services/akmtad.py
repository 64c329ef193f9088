"""akmtad: takes messages from the senders' queues, keeps them in a durable spool, and
delivers them over SMTP by the MTA rules; every outcome becomes an event.

Intake (the broker's thread): for each message of akmta_prior_<id> / akmta_<id>, drop it if it is
already ours (its spool file exists, or it was delivered: a "done" key in Kvrocks), else
DKIM-sign it and write it to the spool with fsync; only then acknowledge, in batches.
While MTA.MAX_SPOOLED messages wait in the spool ready to go (not held, not waiting for a
retry), intake pauses: the rest wait in RabbitMQ (backpressure).
Before signing, the message gets what its ISP's strategy asks for: header overrides and a
transfer encoding (altcraft.mta.rewrite).
Delivery (an asyncio thread): per route (static route, the sender's relay, or MX) and
sending IP, up to CONNECTIONS sessions of up to MESSAGES_PER_CONNECTION messages, at most
RATE; priority queue first. A sender's messages are spread over its sending IPs; a retry
uses the same, another or any of them (RETRY.MODE). HELO names the host, the sending IP's
PTR name, the sender's domain or the IP itself (the strategy's HELO). An ISP whose strategy
says DROP gets nothing: its messages become "dropped" events. 2xx: delivered. 4xx: retried by the retry rule until MAX_ATTEMPTS. 5xx:
classified by the bounce patterns (hard: the profile gets marked by procactions). An answer
matching a lock rule locks its ISP: no message goes to it until the lock ends, when the
message that drew the answer is tried again. Events
(delivered, deferred, bounced_hard, bounced_soft, dropped) go to altcraft.events as
delivery.<kind> with an event id derived from the message id, so a re-published event is the
same event. A spool file is removed only after its final event is in the broker.
Known window: a kill between the peer's 250 and the done key (microseconds) sends that one
message again after restart; SMTP itself cannot close it (RFC 1047).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import queue
import socket
import threading
import time
import zlib
from collections import Counter as Tally, defaultdict, deque
from pathlib import Path
from typing import Any, Callable

import dns.resolver
from flask import jsonify, request
from prometheus_client import Counter

from altcraft.config import MainConfig
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.domain import events as wire_events
from altcraft.mta import dkim as dkim_signer
from altcraft.mta import envelope as mta_envelope
from altcraft.mta import rewrite, rules
from altcraft.mta.smtp import Reply, Session
from altcraft.mta.spool import Meta, Spool
from altcraft.registry import get as registry_get
from altcraft.schema.rabbitmq import EVENTS_EXCHANGE
from altcraft.stores import kv
from altcraft.stores.broker import Broker, Message, Received
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.akmtad")
OUTCOMES = Counter("altcraft_mta_outcomes_total", "Delivery outcomes", ["kind"])
INTAKE_BATCH = 200


class Routes:
    """Where mail for a domain goes: a static route, the sender's relay, or the MX hosts."""

    def __init__(self, static: dict[str, str]):
        self.static = static
        self.cache: dict[str, tuple[float, tuple[str, int]]] = {}

    def resolve(self, domain: str, relay: str = "") -> tuple[str, int]:
        target = self.static.get(domain) or self.static.get("*") or relay
        if target:
            host, _, port = target.rpartition(":")
            return host, int(port)
        cached = self.cache.get(domain)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            answers = sorted(dns.resolver.resolve(domain, "MX"), key=lambda r: r.preference)
            host = str(answers[0].exchange).rstrip(".")
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            host = domain  # RFC 5321 5.1: no MX, the domain itself
        result = (host, 25)
        self.cache[domain] = (time.monotonic() + 300, result)
        return result


class EventPublisher(threading.Thread):
    """Publishes outcome events in broker transactions; runs each event's callback after."""

    def __init__(self, config: MainConfig):
        super().__init__(name="events", daemon=True)
        self.broker = Broker(config, app="akmtad-events")
        self.queue: queue.Queue[tuple[Message, Callable[[], None] | None] | None] = queue.Queue()
        self.stopped = threading.Event()

    def put(self, event: Message, then: Callable[[], None] | None = None) -> None:
        self.queue.put((event, then))

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + 0.05
            while len(batch) < 500 and time.monotonic() < deadline:
                try:
                    more = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
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

    def stop(self) -> None:
        self.queue.put(None)
        self.stopped.wait(10)
        self.broker.close()


class Delivery:
    """The asyncio side: scheduling and SMTP sessions."""

    def __init__(self, config: MainConfig, spool: Spool, events: EventPublisher,
                 senders: dict[int, dict[str, Any]]):
        self.config = config
        self.mta = config.MTA
        self.spool = spool
        # the done key is written right after each 250, awaited without blocking other sessions
        self.done_async = kv.async_from_cluster(config.CAMP_DUPLICATESDB)
        self.events = events
        self.senders = senders
        self.routes = Routes(self.mta.ROUTES)
        self.classifier = rules.BounceClassifier(self.mta.BOUNCE_PATTERNS)
        self.lock_rules = rules.LockRules(self.mta.LOCK_RULES)
        self.locked: dict[str, float] = {}  # ISP -> until (epoch seconds)
        self.helo = self.mta.HELO or socket.getfqdn()
        self.ptr_names: dict[str, tuple[float, str]] = {}  # IP -> (until, HELO name)
        # ready queues per (host, port, ISP, sending IP, sender): an ISP's strategy and locks
        # apply to its own queues, a session sends from one IP with one HELO
        self.ready: dict[tuple[str, int, str, str, int], tuple[deque, deque]] = defaultdict(lambda: (deque(), deque()))
        self.deferred: list[tuple[float, str]] = []
        self.meta: dict[str, Meta] = {}
        # open sessions per (host, port, ISP, sending IP): CONNECTIONS counts per IP
        self.active: dict[tuple[str, int, str, str], int] = defaultdict(int)
        self.limiters: dict[tuple[str, str], rules.RateLimiter] = {}
        self.held: set[int] = set()
        self.in_flight: set[str] = set()
        # messages in the ready queues, per sender: what backlog() counts
        self.queued: dict[str, int] = {}
        self.queued_by_sender: Tally = Tally()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self.stopping = False

    # -- scheduling (called from other threads through call_soon_threadsafe) ---------------
    def schedule(self, metas: list[Meta]) -> None:
        for meta in metas:
            if meta.message_id in self.meta:
                continue  # known already: queueing it twice could send it twice
            self.meta[meta.message_id] = meta
            if meta.next_attempt > time.time():
                heapq.heappush(self.deferred, (meta.next_attempt, meta.message_id))
            else:
                self._enqueue(meta)

    def _enqueue(self, meta: Meta, front: bool = False) -> None:
        isp, strategy = self.strategy_of(meta)
        if strategy.DROP:
            self._event(meta, "dropped", f"the strategy of {isp} drops its messages", final=True)
            return
        sender = self.senders.get(meta.sender_id, {})
        host, port = self.routes.resolve(meta.rcpt.rsplit("@", 1)[-1].lower(), sender.get("relay", ""))
        ips = sender.get("ips") or []
        if meta.ip not in ips:  # a first attempt, or the sender's IPs changed: spread evenly
            meta.ip = ips[zlib.crc32(meta.message_id.encode()) % len(ips)] if ips else ""
        queue = self.ready[(host, port, isp, meta.ip, meta.sender_id)][0 if meta.priority else 1]
        if front:
            queue.appendleft(meta.message_id)
        else:
            queue.append(meta.message_id)
        if meta.message_id not in self.queued:
            self.queued[meta.message_id] = meta.sender_id
            self.queued_by_sender[meta.sender_id] += 1

    def _dequeued(self, message_id: str) -> None:
        sender_id = self.queued.pop(message_id, None)
        if sender_id is not None:
            self.queued_by_sender[sender_id] -= 1

    def backlog(self) -> int:
        """Messages ready to be sent now: queued for a route, of a sender not on hold (held
        and deferred messages wait on something else and must not stop the intake of others).
        Read from the intake thread: one pass over a small per-sender table."""
        held = self.held
        return sum(n for sender_id, n in list(self.queued_by_sender.items()) if sender_id not in held)

    def strategy_of(self, meta: Meta):
        return rules.strategy_for(meta.rcpt.rsplit("@", 1)[-1].lower(), self.mta.STRATEGIES,
                                  self.mta.DEFAULT_STRATEGY)

    def _is_locked(self, isp: str) -> bool:
        until = self.locked.get(isp)
        if until is None:
            return False
        if until > time.time():
            return True
        del self.locked[isp]
        log.info("lock of %s ended", isp)
        return False

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._dispatch())

    async def _dispatch(self) -> None:
        while not self.stopping:
            current = time.time()
            while self.deferred and self.deferred[0][0] <= current:
                _, mid = heapq.heappop(self.deferred)
                if mid in self.meta:
                    self._enqueue(self.meta[mid])
            for route, (prior, normal) in list(self.ready.items()):
                # a held sender's queues wait as they are: no session, nothing moved
                if not prior and not normal or route[4] in self.held or self._is_locked(route[2]):
                    continue
                head = self.meta.get((prior or normal)[0])
                if head is None:
                    (prior or normal).popleft()
                    continue
                _, strategy = self.strategy_of(head)
                connections = route[:4]
                while self.active[connections] < strategy.CONNECTIONS and (prior or normal):
                    self.active[connections] += 1
                    self.loop.create_task(self._session(route, strategy))
                    if len(prior) + len(normal) <= strategy.MESSAGES_PER_CONNECTION * self.active[connections]:
                        break
            await asyncio.sleep(0.02)
        while any(self.active.values()):
            await asyncio.sleep(0.05)
        await self.done_async.aclose()

    def _next(self, route) -> Meta | None:
        """The next message of the route's queues (one sender's); none once the sender is
        held, so an open session ends and the rest waits in order until release."""
        if route[4] in self.held:
            return None
        prior, normal = self.ready[route]
        while prior or normal:
            mid = (prior or normal).popleft()
            self._dequeued(mid)
            meta = self.meta.get(mid)
            if meta is not None:
                return meta
        return None

    def _helo_for(self, strategy, ip: str, sender_id: int):
        """The HELO name by the strategy; for "ptr" and "ip" without a configured sending IP,
        the connection's own local address is used once it is known."""
        if strategy.HELO == "domain":
            domain = self.senders.get(sender_id, {}).get("from_email", "").rpartition("@")[2]
            return domain or self.helo
        if strategy.HELO == "ip":
            async def literal(local: str) -> str:
                return rules.address_literal(ip or local)
            return literal
        if strategy.HELO == "ptr":
            async def ptr(local: str) -> str:
                return await self._ptr_name(ip or local)
            return ptr
        return self.helo

    async def _ptr_name(self, ip: str) -> str:
        cached = self.ptr_names.get(ip)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            name = (await self.loop.run_in_executor(None, socket.gethostbyaddr, ip))[0]
        except OSError:
            log.warning("no PTR name for %s: HELO uses the address literal", ip)
            name = rules.address_literal(ip)
        self.ptr_names[ip] = (time.monotonic() + 3600, name)
        return name

    async def _session(self, route: tuple[str, int, str, str, int], strategy) -> None:
        host, port, isp, ip, sender_id = route
        try_tls = self.mta.TRY_TLS if strategy.TRY_TLS is None else strategy.TRY_TLS
        session = Session(host, port, self._helo_for(strategy, ip, sender_id), try_tls=try_tls, source=ip)
        taken: Meta | None = None
        try:
            taken = self._next(route)
            if taken is None:
                return
            try:
                await session.connect()
            except Exception as exc:
                self._soft_failure(taken, f"connect {host}:{port} from {ip or 'any address'}: "
                                          f"{type(exc).__name__}: {exc}")
                taken = None
                return
            sent = 0
            while taken is not None and not self.stopping:
                if self._is_locked(isp):  # locked meanwhile, by an answer on another session
                    self._enqueue(taken, front=True)
                    taken = None
                    break
                name, _ = self.strategy_of(taken)
                limiter = self.limiters.setdefault((name, ip), rules.RateLimiter(strategy.RATE))
                wait = limiter.take()
                while wait:
                    await asyncio.sleep(wait)
                    wait = limiter.take()
                self.in_flight.add(taken.message_id)
                try:
                    # the message from the spool; its state (attempts, sending IP) is the
                    # one kept in memory, which retries update and the spool mirrors
                    _, data = self.spool.read(taken.message_id)
                    meta = taken
                except FileNotFoundError:  # purged meanwhile
                    self.meta.pop(taken.message_id, None)
                    self.in_flight.discard(taken.message_id)
                    taken = self._next(route) if sent + 1 < strategy.MESSAGES_PER_CONNECTION else None
                    continue
                try:
                    reply = await session.send(meta.mail_from, meta.rcpt, data)
                except Exception as exc:
                    self.in_flight.discard(meta.message_id)
                    self._soft_failure(meta, f"{type(exc).__name__}: {exc}")
                    taken = None
                    return
                self.in_flight.discard(meta.message_id)
                if reply.ok:
                    await self._mark_done(meta.message_id)
                self._outcome(meta, reply)
                sent += 1
                taken = self._next(route) if sent < strategy.MESSAGES_PER_CONNECTION else None
        finally:
            # a message taken but not sent (shutting down) stays in the spool for the next start
            await session.close()
            self.active[route[:4]] -= 1

    # -- outcomes --------------------------------------------------------------------------
    def _event(self, meta: Meta, kind: str, detail: str, final: bool, ip: str | None = None) -> None:
        OUTCOMES.labels(kind).inc()
        facts = wire_events.DeliveryFacts(
            message_id=meta.message_id, email=meta.rcpt, account_id=meta.account_id,
            sender_id=meta.sender_id, db_id=meta.db_id, resource_id=meta.resource_id,
            campaign_id=meta.campaign_id, launch=meta.launch, profile_id=meta.profile_id)
        event_id, routing, body = wire_events.delivery(facts, kind, meta.attempts, detail=detail,
                                                       ip=meta.ip if ip is None else ip)
        event = Message(EVENTS_EXCHANGE, routing, body, event_id)
        then = None
        if final:
            self.meta.pop(meta.message_id, None)
            self._dequeued(meta.message_id)
            then = lambda mid=meta.message_id: self.spool.remove(mid)  # noqa: E731
        self.events.put(event, then)

    async def _mark_done(self, message_id: str) -> None:
        """Remembers a delivery at once, for a restart that finds the spool file before its
        event is out. Without the key such a message would be sent again, so a failure is
        logged, not raised: the delivery itself stands."""
        try:
            await self.done_async.set(mta_envelope.done_key(message_id), 1, ex=self.mta.DEDUP_TTL_DAYS * 86400)
        except Exception as exc:  # noqa: BLE001  (any store error: the message was delivered)
            log.warning("done key for %s not written: %s: %s", message_id, type(exc).__name__, exc)

    def _outcome(self, meta: Meta, reply: Reply) -> None:
        meta.attempts += 1
        if reply.ok:
            self._event(meta, "delivered", str(reply), final=True)
            return
        isp, _ = self.strategy_of(meta)
        lock = self.lock_rules.match(isp, reply.code, reply.text)
        if lock is not None:
            until = max(self.locked.get(isp, 0.0), time.time() + lock.seconds)
            self.locked[isp] = until
            log.warning("%s locked for %d s by rule %r: %s", isp, lock.seconds, lock.name, reply)
            self._retry(meta, f"{reply} [{isp} locked for {lock.seconds} s: {lock.name}]", not_before=until)
            return
        verdict = self.classifier.classify(reply.code, reply.text)
        if reply.code >= 500 and verdict.type == "hard":
            self._event(meta, "bounced_hard", f"{reply} [{verdict.name}]", final=True)
        elif reply.code >= 500 and verdict.type == "bounce":
            self._event(meta, "bounced_soft", f"{reply} [{verdict.name}]", final=True)
        else:
            self._retry(meta, str(reply))

    def _soft_failure(self, meta: Meta, detail: str) -> None:
        meta.attempts += 1
        self._retry(meta, detail)

    def _retry(self, meta: Meta, detail: str, not_before: float = 0.0) -> None:
        if meta.attempts >= self.mta.RETRY.MAX_ATTEMPTS:
            self._event(meta, "bounced_soft", f"gave up after {meta.attempts} attempts: {detail}", final=True)
            return
        # a lock decides when the next attempt is; otherwise the retry rule does
        meta.next_attempt = not_before or time.time() + rules.retry_delay(self.mta.RETRY, meta.attempts)
        tried = meta.ip
        meta.ip = rules.next_ip(self.senders.get(meta.sender_id, {}).get("ips") or [], tried, self.mta.RETRY.MODE)
        meta.last_answer = detail[:500]
        self.spool.update(meta)  # a restart keeps the attempt count and the delay
        heapq.heappush(self.deferred, (meta.next_attempt, meta.message_id))
        self._event(meta, "deferred", detail, final=False, ip=tried)

    # -- queue control -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        rows: dict[tuple[int, int, int], dict[str, int]] = defaultdict(
            lambda: {"new": 0, "retry": 0, "hold": 0, "proc": 0})
        for mid, meta in list(self.meta.items()):
            row = rows[(meta.sender_id, meta.account_id, meta.campaign_id)]
            if mid in self.in_flight:
                row["proc"] += 1
            elif meta.sender_id in self.held:
                row["hold"] += 1
            elif meta.attempts:
                row["retry"] += 1
            else:
                row["new"] += 1
        return {"rows": [{"sender_id": s, "account_id": a, "campaign_id": c, **v,
                          "total": sum(v.values())} for (s, a, c), v in sorted(rows.items())],
                "held_senders": sorted(self.held)}

    def purge(self, sender_id: int) -> int:
        victims = [m for m in list(self.meta.values()) if m.sender_id == sender_id and m.message_id not in self.in_flight]
        for meta in victims:
            self._event(meta, "dropped", "purged by an administrator", final=True)
        return len(victims)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
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
        self.delivery = Delivery(config, self.spool, self.events, self.senders)
        self.broker = Broker(config, app="akmtad")
        self.consumed: set[str] = set()
        self.pending: list[tuple[Received, bool]] = []

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
            self.delivery.loop.call_soon_threadsafe(self.delivery.schedule, accepted)

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
            meta.attempts += 1
            self.delivery._event(meta, "delivered", "delivered before a restart", final=True)
        self.delivery.schedule(waiting)
        log.info("spool: %d to deliver, %d delivered before the restart", len(waiting), len(delivered))

    # -- control HTTP ----------------------------------------------------------------------
    def control_app(self):
        app = create_service_app("akmtad", dependency_checker(self.config, registry_get("akmtad").requires))
        delivery = self.delivery

        def on_loop(fn, *args):
            future = asyncio.run_coroutine_threadsafe(_call(fn, *args), delivery.loop)
            return future.result(10)

        async def _call(fn, *args):
            return fn(*args)

        @app.get("/akmtad/queue/stats")
        def stats():
            return jsonify(on_loop(delivery.stats))

        @app.post("/akmtad/queue/<action>")
        def control(action: str):
            body = request.get_json(silent=True) or {}
            sender_id = body.get("sender_id")
            if not isinstance(sender_id, int):
                return jsonify(error="sender_id: an integer"), 400
            if action == "hold":
                delivery.loop.call_soon_threadsafe(delivery.held.add, sender_id)
            elif action == "release":
                delivery.loop.call_soon_threadsafe(delivery.held.discard, sender_id)
            elif action == "purge":
                return jsonify(purged=on_loop(delivery.purge, sender_id))
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
        self.delivery.start()

        async def recover() -> None:
            self.recover()
        # the spool is read before intake starts, so nothing is both recovered and taken in
        asyncio.run_coroutine_threadsafe(recover(), self.delivery.loop).result()
        self._serve_control()
        self._subscribe()
        last_refresh = time.monotonic()
        while not self.stop_event.is_set():
            self.broker.poll(0.05)
            # backpressure: unacknowledged, the broker sends no more than PREFETCH meanwhile
            if self.pending and self.delivery.backlog() < self.config.MTA.MAX_SPOOLED:
                self._intake()
            if time.monotonic() - last_refresh > 10:
                self._load_senders()
                self._subscribe()
                last_refresh = time.monotonic()

    def close(self) -> None:
        try:
            if self.pending:
                self._intake()
        finally:
            self.broker.close()
            self.delivery.stop()
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
