"""The delivery engine: schedules spooled messages and sends them over SMTP sessions.

Per route (next hop, ISP, sending IP, sender) a ready queue, priority first; per pool (next
hop, ISP, IP) up to CONNECTIONS sessions of up to MESSAGES_PER_CONNECTION messages, at most
RATE per strategy and IP. A sender's messages are spread over its sending IPs (crc32 of the
Message-ID); a retry uses the same, the next or any of them (RETRY.MODE). An ISP whose
strategy says DROP gets nothing. A locked ISP gets no session until its lock ends. A held
sender's queues wait as they are. Retries wait in a heap until they are due.

Everything outside (spool, done keys, outcome sink, SMTP sessions, DNS, clock) is passed
in, so this module runs under asyncio with fakes in the unit tests. It runs on one event
loop: other threads reach it through loop.call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import socket
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from altcraft.config import MtaSettings, StrategySettings
from altcraft.mta import outcomes, rules
from altcraft.mta.helo import HeloNames
from altcraft.mta.locks import IspLocks
from altcraft.mta.outcomes import OutcomeSink
from altcraft.mta.ports import Clock, DoneKeys, Resolver, SessionFactory, Spool, SystemClock
from altcraft.mta.ready import ReadyQueues
from altcraft.mta.routes import Pool, Route, Routes
from altcraft.mta.smtp import Reply
from altcraft.mta.spool import Meta

log = logging.getLogger("altcraft.akmtad")

# A sender as the engine reads it: "ips" (its sending IPs), "relay" ("host:port" or ""),
# "from_email" (for HELO "domain"). akmtad keeps the mapping up to date.
Senders = Mapping[int, Mapping[str, Any]]


def domain_of(rcpt: str) -> str:
    return rcpt.rsplit("@", 1)[-1].lower()


def first_ip(ips: list[str], message_id: str) -> str:
    """A first attempt's sending IP: the sender's IPs share its messages evenly, and a
    message keeps its IP across restarts."""
    return ips[zlib.crc32(message_id.encode()) % len(ips)] if ips else ""


class Delivery:
    def __init__(self, settings: MtaSettings, *, spool: Spool, outcomes: OutcomeSink, done: DoneKeys,
                 sessions: SessionFactory, resolver: Resolver, senders: Senders,
                 clock: Clock | None = None, rng: random.Random | None = None, host_name: str = ""):
        self.settings = settings
        self.spool = spool
        self.publish = outcomes
        self.done = done
        self.sessions = sessions
        self.senders = senders
        self.clock = clock or SystemClock()
        self.rng = rng
        self.routes = Routes(settings.ROUTES, resolver, self.clock)
        self.helo = HeloNames(settings.HELO or host_name or socket.getfqdn(), resolver, self.clock)
        self.classifier = rules.BounceClassifier(settings.BOUNCE_PATTERNS)
        self.lock_rules = rules.LockRules(settings.LOCK_RULES)
        self.locks = IspLocks(self.clock)
        self.ready = ReadyQueues()
        self.deferred: list[tuple[float, str]] = []  # (due, Message-ID), a heap
        self.meta: dict[str, Meta] = {}  # every message the engine holds, by Message-ID
        self.active: dict[Pool, int] = defaultdict(int)  # open sessions
        self.limiters: dict[tuple[str, str], rules.RateLimiter] = {}  # (strategy, IP)
        self.held: set[int] = set()
        self.in_flight: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = False
        self.paused = False  # the platform's quiet point (a backup): no session starts

    # -- scheduling ----------------------------------------------------------------------
    def schedule(self, metas: Iterable[Meta]) -> None:
        for meta in metas:
            if meta.message_id in self.meta:
                continue  # known already: queueing it twice could send it twice
            self.meta[meta.message_id] = meta
            if meta.next_attempt > self.clock.time():
                heapq.heappush(self.deferred, (meta.next_attempt, meta.message_id))
            else:
                self._enqueue(meta)

    def strategy_of(self, meta: Meta) -> tuple[str, StrategySettings]:
        return rules.strategy_for(domain_of(meta.rcpt), self.settings.STRATEGIES, self.settings.DEFAULT_STRATEGY)

    def _enqueue(self, meta: Meta, front: bool = False) -> None:
        isp, strategy = self.strategy_of(meta)
        if strategy.DROP:
            self._event(meta, "dropped", f"the strategy of {isp} drops its messages", final=True)
            return
        sender = self.senders.get(meta.sender_id, {})
        host, port = self.routes.next_hop(domain_of(meta.rcpt), sender.get("relay", ""))
        ips = sender.get("ips") or []
        if meta.ip not in ips:  # a first attempt, or the sender's IPs changed: spread evenly
            meta.ip = first_ip(ips, meta.message_id)
        self.ready.push(Route(host, port, isp, meta.ip, meta.sender_id), meta.message_id, meta.priority, front)

    def apply_rules(self, settings: MtaSettings) -> None:
        """A newer rule set (domain/mta_rules.py), read by every decision from now on: the
        next strategy lookup, bounce and lock verdict, retry delay. A message keeps the due
        time it was given; a rate limiter keeps its tokens unless its strategy's RATE changed."""
        def rate(name: str) -> str | None:
            strategy = settings.DEFAULT_STRATEGY if name == "default" else settings.STRATEGIES.get(name)
            return strategy.RATE if strategy else None

        self.limiters = {key: limiter for key, limiter in self.limiters.items()
                         if rate(key[0]) == limiter.rate}
        self.settings = settings
        self.classifier = rules.BounceClassifier(settings.BOUNCE_PATTERNS)
        self.lock_rules = rules.LockRules(settings.LOCK_RULES)

    def backlog(self) -> int:
        """Messages ready to be sent now, of senders not on hold (see ready.intake_open)."""
        return self.ready.backlog(self.held)

    def hold(self, sender_id: int) -> None:
        self.held.add(sender_id)

    def release(self, sender_id: int) -> None:
        self.held.discard(sender_id)

    def pause(self) -> None:
        """No new session and no next message on an open one: each open session ends after
        the message it is sending (its done key written, its event handed over)."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def quiet(self) -> bool:
        """Paused, and no session open: the spool and the done keys change no more."""
        return self.paused and not any(self.active.values())

    # -- the dispatcher --------------------------------------------------------------------
    def step(self) -> list[asyncio.Task]:
        """One pass: due retries into the ready queues, then sessions for the routes with
        messages (not held, not locked) up to their strategy's CONNECTIONS. Returns the
        sessions it started. Runs on the event loop."""
        if self.paused:
            return []
        now = self.clock.time()
        while self.deferred and self.deferred[0][0] <= now:
            _, message_id = heapq.heappop(self.deferred)
            if message_id in self.meta:
                self._enqueue(self.meta[message_id])
        started = []
        for route, (prior, normal) in list(self.ready.queues.items()):
            # a held sender's queues wait as they are: no session, nothing moved
            if not prior and not normal or route.sender_id in self.held or self.locks.is_locked(route.isp):
                continue
            head = self.meta.get((prior or normal)[0])
            if head is None:  # ended meanwhile (purged)
                self.ready.forget((prior or normal).popleft())
                continue
            _, strategy = self.strategy_of(head)
            pool = route.pool
            while self.active[pool] < strategy.CONNECTIONS and (prior or normal):
                self.active[pool] += 1
                task = asyncio.get_running_loop().create_task(self._session(route, strategy))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                started.append(task)
                if len(prior) + len(normal) <= strategy.MESSAGES_PER_CONNECTION * self.active[pool]:
                    break
        return started

    async def run(self, tick: float = 0.02) -> None:
        """The dispatcher until stop(); then waits for open sessions to end."""
        while not self.stopping:
            self.step()
            await self.clock.sleep(tick)
        while any(self.active.values()):
            await self.clock.sleep(0.05)

    def stop(self) -> None:
        self.stopping = True

    # -- a session -------------------------------------------------------------------------
    def _next(self, route: Route) -> Meta | None:
        """The next message of the route's queues (one sender's); none once the sender is
        held, so an open session ends and the rest waits in order until release."""
        if route.sender_id in self.held or self.paused:
            return None
        while (message_id := self.ready.pop(route)) is not None:
            meta = self.meta.get(message_id)
            if meta is not None:
                return meta
        return None

    async def _session(self, route: Route, strategy: StrategySettings) -> None:
        host, port, isp, ip, sender_id = route
        try_tls = self.settings.TRY_TLS if strategy.TRY_TLS is None else strategy.TRY_TLS
        from_email = self.senders.get(sender_id, {}).get("from_email", "")
        session = self.sessions(host, port, self.helo.for_session(strategy.HELO, ip, from_email),
                                try_tls=try_tls, source=ip)
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
                if self.locks.is_locked(isp):  # locked meanwhile, by an answer on another session
                    self._enqueue(taken, front=True)
                    taken = None
                    break
                name, _ = self.strategy_of(taken)
                limiter = self.limiters.get((name, ip))
                if limiter is None:
                    limiter = self.limiters[(name, ip)] = rules.RateLimiter(strategy.RATE, self.clock.monotonic)
                while wait := limiter.take():
                    await self.clock.sleep(wait)
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
            self.active[route.pool] -= 1

    async def _mark_done(self, message_id: str) -> None:
        """Remembers a delivery at once, for a restart that finds the spool file before its
        event is out. Without the key such a message would be sent again, so a failure is
        logged, not raised: the delivery itself stands."""
        try:
            await self.done.mark_done(message_id)
        except Exception as exc:  # noqa: BLE001  (any store error: the message was delivered)
            log.warning("done key for %s not written: %s: %s", message_id, type(exc).__name__, exc)

    # -- outcomes --------------------------------------------------------------------------
    def _event(self, meta: Meta, kind: str, detail: str, final: bool, ip: str | None = None,
               now: float | None = None) -> None:
        # the event's time is the decision's, on the engine's clock
        outcome = outcomes.event(meta, kind, detail, meta.ip if ip is None else ip,
                                 self.clock.time() if now is None else now)
        then: Callable[[], None] | None = None
        if final:
            self.meta.pop(meta.message_id, None)
            self.ready.forget(meta.message_id)
            then = lambda mid=meta.message_id: self.spool.remove(mid)  # noqa: E731
        self.publish(outcome, then)

    def report_delivered(self, meta: Meta, detail: str) -> None:
        """A message found delivered (its done key) but not reported: its final event."""
        meta.attempts += 1
        self._event(meta, "delivered", detail, final=True)

    def _outcome(self, meta: Meta, reply: Reply) -> None:
        meta.attempts += 1
        isp, _ = self.strategy_of(meta)
        verdict = outcomes.judge(reply, isp, self.lock_rules, self.classifier)
        if verdict.decision == "lock":
            until = self.locks.lock(isp, verdict.lock.seconds)
            log.warning("%s locked for %d s by rule %r: %s", isp, verdict.lock.seconds, verdict.lock.name, reply)
            self._retry(meta, verdict.detail, not_before=until)
        elif verdict.decision == "retry":
            self._retry(meta, verdict.detail)
        else:
            self._event(meta, verdict.decision, verdict.detail, final=True)

    def _soft_failure(self, meta: Meta, detail: str) -> None:
        meta.attempts += 1
        self._retry(meta, detail)

    def _retry(self, meta: Meta, detail: str, not_before: float = 0.0) -> None:
        retry = self.settings.RETRY
        if meta.attempts >= retry.MAX_ATTEMPTS:
            self._event(meta, "bounced_soft", f"gave up after {meta.attempts} attempts: {detail}", final=True)
            return
        # a lock decides when the next attempt is; otherwise the retry rule does, counted from
        # the moment the deferred event says
        now = self.clock.time()
        meta.next_attempt = not_before or now + rules.retry_delay(retry, meta.attempts, self.rng)
        tried = meta.ip
        meta.ip = rules.next_ip(self.senders.get(meta.sender_id, {}).get("ips") or [], tried, retry.MODE, self.rng)
        meta.last_answer = detail[:500]
        self.spool.update(meta)  # a restart keeps the attempt count and the delay
        heapq.heappush(self.deferred, (meta.next_attempt, meta.message_id))
        self._event(meta, "deferred", detail, final=False, ip=tried, now=now)

    # -- queue control -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """What the spool holds per sender, account, campaign and ISP (the strategy's name for
        the recipient's domain, as the dispatcher groups it), by state."""
        rows: dict[tuple[int, int, int, str], dict[str, int]] = defaultdict(
            lambda: {"new": 0, "retry": 0, "hold": 0, "proc": 0})
        for message_id, meta in list(self.meta.items()):
            row = rows[(meta.sender_id, meta.account_id, meta.campaign_id, self.strategy_of(meta)[0])]
            if message_id in self.in_flight:
                row["proc"] += 1
            elif meta.sender_id in self.held:
                row["hold"] += 1
            elif meta.attempts:
                row["retry"] += 1
            else:
                row["new"] += 1
        return {"rows": [{"sender_id": s, "account_id": a, "campaign_id": c, "isp": isp, **v,
                          "total": sum(v.values())} for (s, a, c, isp), v in sorted(rows.items())],
                "held_senders": sorted(self.held)}

    def purge(self, sender_id: int) -> int:
        victims = [m for m in list(self.meta.values())
                   if m.sender_id == sender_id and m.message_id not in self.in_flight]
        for meta in victims:
            self._event(meta, "dropped", "purged by an administrator", final=True)
        return len(victims)
