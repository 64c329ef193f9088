"""The delivery engine's decisions, driven with a fake clock and a fake SMTP peer: no servers,
no sockets. The spool is the real one, in a temporary directory."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import zlib
from collections.abc import Callable

import pytest

from altcraft.config import LockRule, MtaSettings, RetrySettings, StrategySettings
from altcraft.domain import events as wire_events
from altcraft.mta.delivery import Delivery
from altcraft.mta.outcomes import Outcome
from altcraft.mta.ready import intake_open
from altcraft.mta.smtp import Reply
from altcraft.mta.spool import Meta, Spool

IPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
OK = Reply(250, "2.0.0 queued")


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Peer:
    """The SMTP servers of the world: answers each RCPT by a script (a list of replies per
    address, consumed one per attempt, then 250), and records what was sent."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.script: dict[str, list[Reply]] = {}
        self.sent: list[dict] = []  # one per message handed over (any answer)
        self.sessions: list[FakeSession] = []
        self.on_send: Callable[[str], None] = lambda rcpt: None
        self.log: list[str] = []  # done keys and events, in order

    def __call__(self, host: str, port: int, helo, *, try_tls: bool, source: str) -> FakeSession:
        session = FakeSession(self, host, port, helo, try_tls, source)
        self.sessions.append(session)
        return session

    def rcpts(self) -> list[str]:
        return [s["rcpt"] for s in self.sent]


class FakeSession:
    LOCAL = "10.0.0.9"  # the local address the OS would pick without a sending IP

    def __init__(self, peer: Peer, host: str, port: int, helo, try_tls: bool, source: str):
        self.peer, self.host, self.port, self._helo, self.try_tls, self.source = peer, host, port, helo, try_tls, source
        self.helo = helo if isinstance(helo, str) else ""
        self.closed = False

    async def connect(self) -> None:
        if not isinstance(self._helo, str):
            self.helo = await self._helo(self.source or self.LOCAL)

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> Reply:
        assert not self.closed
        script = self.peer.script.get(rcpt) or []
        reply = script.pop(0) if script else OK
        self.peer.sent.append({"rcpt": rcpt, "ip": self.source, "helo": self.helo, "host": self.host,
                               "port": self.port, "reply": reply, "at": self.peer.clock.now, "session": self,
                               "data": data})
        self.peer.on_send(rcpt)
        return reply

    async def close(self) -> None:
        self.closed = True


class Resolver:
    def __init__(self, ptr: dict[str, str] | None = None):
        self.ptr_names = ptr or {}
        self.mx_lookups: list[str] = []

    def mx(self, domain: str) -> str:
        self.mx_lookups.append(domain)
        return f"mx.{domain}"

    async def ptr(self, ip: str) -> str | None:
        return self.ptr_names.get(ip)


class DoneKeys:
    def __init__(self, log: list[str]):
        self.log = log

    async def mark_done(self, message_id: str) -> None:
        self.log.append(f"done {message_id}")


class Sink:
    """The outcome sink: keeps the events; `flush` plays the broker confirming them."""

    def __init__(self, log: list[str]):
        self.log = log
        self.outcomes: list[Outcome] = []
        self.pending: list[Callable[[], None]] = []

    def __call__(self, outcome: Outcome, then: Callable[[], None] | None) -> None:
        self.outcomes.append(outcome)
        self.log.append(f"{outcome.kind} {outcome.message_id}")
        if then is not None:
            self.pending.append(then)

    def flush(self) -> None:
        for then in self.pending:
            then()
        self.pending.clear()

    def events(self, message_id: str | None = None) -> list[wire_events.Event]:
        return [wire_events.decode(o.body, o.routing_key) for o in self.outcomes
                if message_id is None or o.message_id == message_id]

    def kinds(self, message_id: str | None = None) -> list[str]:
        return [e.kind for e in self.events(message_id)]


class Stand:
    def __init__(self, tmp_path, settings: MtaSettings, senders: dict | None = None,
                 ptr: dict[str, str] | None = None, rng: random.Random | None = None):
        self.clock = FakeClock()
        self.peer = Peer(self.clock)
        self.sink = Sink(self.peer.log)
        self.spool = Spool(tmp_path / "spool")
        self.resolver = Resolver(ptr)
        self.senders = senders if senders is not None else {
            1: {"ips": list(IPS), "from_email": "news@shop.example", "relay": ""}}
        self.delivery = Delivery(settings, spool=self.spool, outcomes=self.sink, done=DoneKeys(self.peer.log),
                                 sessions=self.peer, resolver=self.resolver, senders=self.senders,
                                 clock=self.clock, rng=rng, host_name="host.test")
        self.count = 0

    def add(self, rcpt: str, sender_id: int = 1, schedule: bool = True, **fields) -> Meta:
        self.count += 1
        meta = Meta(message_id=f"m{self.count:03d}.x", rcpt=rcpt, mail_from="news@shop.example",
                    sender_id=sender_id, account_id=1, campaign_id=5, launch=1,
                    profile_id=f"p{self.count}", **fields)
        self.spool.write(meta, f"Subject: {self.count}\r\n\r\nhello\r\n".encode(), sync=False)
        if schedule:
            self.delivery.schedule([meta])
        return meta

    def drive(self) -> None:
        """Runs the dispatcher's steps until it starts no more sessions, each session to its end."""
        async def run() -> None:
            for _ in range(1000):
                tasks = self.delivery.step()
                if not tasks:
                    return
                await asyncio.gather(*tasks)
            raise AssertionError("the dispatcher never settles")
        asyncio.run(run())

    def close(self) -> None:
        self.spool.close()


def settings(**mta) -> MtaSettings:
    mta.setdefault("HELO", "mta.test")
    mta.setdefault("ROUTES", {"*": "127.0.0.1:2525"})
    mta.setdefault("RETRY", RetrySettings(TYPE="fixed", INTERVAL_SECONDS=60, MAX_ATTEMPTS=5))
    return MtaSettings(**mta)


@pytest.fixture
def make(tmp_path):
    stands = []

    def factory(**kwargs) -> Stand:
        stand = Stand(tmp_path / str(len(stands)), **kwargs)
        stands.append(stand)
        return stand
    yield factory
    for stand in stands:
        stand.close()


# -- retries --------------------------------------------------------------------------------
def test_a_retry_waits_for_its_delay_and_keeps_its_state_in_the_spool(make):
    stand = make(settings=settings(RETRY=RetrySettings(TYPE="geometric", INTERVAL_SECONDS=60, EXPONENT=2,
                                                        MAX_ATTEMPTS=5)))
    stand.peer.script["a@b.example"] = [Reply(451, "4.3.0 try later"), Reply(451, "4.3.0 try later")]
    meta = stand.add("a@b.example")
    start = stand.clock.now

    stand.drive()
    assert stand.sink.kinds() == ["deferred"]
    assert meta.next_attempt == start + 60
    spooled, _ = stand.spool.read(meta.message_id)
    assert (spooled.attempts, spooled.next_attempt, spooled.last_answer) == (1, start + 60, "451 4.3.0 try later")

    stand.clock.advance(59.9)
    stand.drive()
    assert len(stand.peer.sent) == 1  # not due yet
    stand.clock.advance(0.1)
    stand.drive()
    assert len(stand.peer.sent) == 2 and stand.sink.kinds() == ["deferred", "deferred"]
    assert meta.next_attempt == stand.clock.now + 120  # geometric: 60, then 120

    stand.clock.advance(119)
    stand.drive()
    assert len(stand.peer.sent) == 2
    stand.clock.advance(1)
    stand.drive()
    assert stand.sink.kinds() == ["deferred", "deferred", "delivered"]
    assert stand.delivery.meta == {}
    # each event is stamped when it was decided, on the engine's clock
    times = [event.time.timestamp() for event in stand.sink.events()]
    assert times == [start, start + 60, start + 180]


class PickLast(random.Random):
    def choice(self, seq):
        return seq[-1]


@pytest.mark.parametrize("mode,first,second", [
    ("same_ip", 0, 0),
    ("other_ip", 0, 1),
    ("other_ip", 2, 0),  # wraps around
    ("any_ip", 0, 2),    # the random choice (PickLast picks the last IP)
])
def test_ip_mode_of_a_retry_and_each_event_carries_its_attempts_ip(make, mode, first, second):
    stand = make(settings=settings(RETRY=RetrySettings(TYPE="fixed", INTERVAL_SECONDS=60, MODE=mode)),
                 rng=PickLast())
    meta = stand.add("a@b.example", schedule=False, ip=IPS[first])
    stand.delivery.schedule([meta])
    stand.peer.script["a@b.example"] = [Reply(421, "4.7.0 come back later")]
    stand.drive()
    stand.clock.advance(60)
    stand.drive()
    assert [s["ip"] for s in stand.peer.sent] == [IPS[first], IPS[second]]
    deferred, delivered = stand.sink.events()
    assert (deferred.kind, deferred.ip) == ("deferred", IPS[first])
    assert (delivered.kind, delivered.ip) == ("delivered", IPS[second])


def test_max_attempts_ends_in_bounced_soft(make):
    stand = make(settings=settings(RETRY=RetrySettings(TYPE="fixed", INTERVAL_SECONDS=10, MAX_ATTEMPTS=3)))
    stand.peer.script["a@b.example"] = [Reply(451, "4.3.0 busy")] * 10
    meta = stand.add("a@b.example")
    for _ in range(5):
        stand.drive()
        stand.clock.advance(10)
    assert len(stand.peer.sent) == 3
    assert stand.sink.kinds() == ["deferred", "deferred", "bounced_soft"]
    last = stand.sink.events()[-1]
    assert last.detail.startswith("gave up after 3 attempts: 451 4.3.0 busy")
    assert stand.spool.exists(meta.message_id)  # until the event is in the broker
    stand.sink.flush()
    assert not stand.spool.exists(meta.message_id)


def test_a_failed_connection_is_an_attempt_retried_later(make):
    stand = make(settings=settings())

    async def refuse() -> None:
        raise ConnectionRefusedError("refused")
    original = stand.peer.__call__

    def sessions(*args, **kwargs):
        session = original(*args, **kwargs)
        session.connect = refuse
        return session
    stand.delivery.sessions = sessions
    meta = stand.add("a@b.example")
    stand.drive()
    assert stand.sink.kinds() == ["deferred"] and meta.attempts == 1
    assert "connect 127.0.0.1:2525 from 192.0.2." in stand.sink.events()[0].detail
    stand.delivery.sessions = stand.peer
    stand.clock.advance(60)
    stand.drive()
    assert stand.sink.kinds() == ["deferred", "delivered"]


# -- answers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reply,kind", [
    (Reply(550, "5.1.1 <a@b.example>: Recipient address rejected: User unknown"), "bounced_hard"),
    (Reply(553, "5.0.0 something odd"), "bounced_hard"),            # a 5xx no pattern knows
    (Reply(554, "5.7.1 Message rejected as spam"), "bounced_soft"),  # a "bounce" pattern
    (Reply(552, "5.2.2 Mailbox full"), "deferred"),                  # a "soft" pattern: retried
    (Reply(421, "4.7.0 Service not available"), "deferred"),
    (Reply(250, "2.0.0 OK"), "delivered"),
])
def test_an_answer_decides_the_outcome(make, reply, kind):
    stand = make(settings=settings())
    stand.peer.script["a@b.example"] = [reply]
    meta = stand.add("a@b.example")
    stand.drive()
    assert stand.sink.kinds() == [kind]
    final = kind != "deferred"
    assert (meta.message_id in stand.delivery.meta) is not final


def test_the_done_key_is_written_right_after_the_250_before_the_event(make):
    stand = make(settings=settings())
    first = stand.add("a@b.example")
    stand.peer.script["c@b.example"] = [Reply(550, "5.1.1 user unknown")]
    second = stand.add("c@b.example")
    stand.drive()
    assert stand.peer.log == [f"done {first.message_id}", f"delivered {first.message_id}",
                              f"bounced_hard {second.message_id}"]


def test_drop_strategy_sends_nothing_and_drops(make):
    stand = make(settings=settings(STRATEGIES={"blocked": StrategySettings(DOMAINS=["blocked.example"],
                                                                          DROP=True)}))
    dropped = stand.add("a@blocked.example")
    stand.add("b@fine.example")
    stand.drive()
    assert stand.peer.rcpts() == ["b@fine.example"]
    assert stand.sink.kinds(dropped.message_id) == ["dropped"]
    assert "blocked" in stand.sink.events(dropped.message_id)[0].detail
    assert stand.spool.exists(dropped.message_id)
    stand.sink.flush()
    assert not stand.spool.exists(dropped.message_id)


# -- locks ------------------------------------------------------------------------------------
def test_a_lock_rule_stops_the_isp_until_it_ends_then_the_message_is_retried(make):
    stand = make(settings=settings(
        STRATEGIES={"mailru": StrategySettings(DOMAINS=["mail.example"], CONNECTIONS=1)},
        LOCK_RULES=[LockRule(ISP="mailru", PATTERN=r"^421 .*rate", SECONDS=600, NAME="mailru rate")]))
    stand.peer.script["a@mail.example"] = [Reply(421, "4.7.0 rate limit exceeded")]
    locked_one = stand.add("a@mail.example")
    stand.add("b@mail.example")
    stand.add("c@other.example")
    start = stand.clock.now

    stand.drive()
    # b is not sent in the same session: the lock holds it back; other ISPs go on
    assert stand.peer.rcpts() == ["a@mail.example", "c@other.example"]
    deferred = stand.sink.events(locked_one.message_id)[0]
    assert deferred.kind == "deferred" and "mailru locked for 600 s: mailru rate" in deferred.detail
    assert locked_one.next_attempt == start + 600

    stand.clock.advance(599)
    stand.drive()
    assert stand.peer.rcpts() == ["a@mail.example", "c@other.example"]
    stand.clock.advance(1)
    stand.drive()
    assert sorted(stand.peer.rcpts()[2:]) == ["a@mail.example", "b@mail.example"]
    assert stand.sink.kinds(locked_one.message_id) == ["deferred", "delivered"]


def test_a_lock_rule_of_another_isp_does_not_lock(make):
    stand = make(settings=settings(LOCK_RULES=[LockRule(ISP="mailru", PATTERN=r"^421", SECONDS=600)]))
    stand.peer.script["a@b.example"] = [Reply(421, "4.7.0 busy")]
    stand.add("a@b.example")
    stand.add("c@b.example")
    stand.drive()
    assert stand.peer.rcpts() == ["a@b.example", "c@b.example"]


# -- HELO, routes, IPs -----------------------------------------------------------------------
@pytest.mark.parametrize("mode,ips,expected", [
    ("", ["192.0.2.7"], "mta.test"),
    ("ptr", ["192.0.2.7"], "out7.shop.example"),
    ("ptr", ["192.0.2.8"], "[192.0.2.8]"),  # no PTR name: the address literal
    ("ptr", [], "local.shop.example"),       # no sending IP: the connection's local address
    ("domain", ["192.0.2.7"], "shop.example"),
    ("ip", ["192.0.2.7"], "[192.0.2.7]"),
    ("ip", ["2001:db8::7"], "[IPv6:2001:db8::7]"),
    ("ip", [], f"[{FakeSession.LOCAL}]"),
])
def test_helo_per_strategy(make, mode, ips, expected):
    stand = make(settings=settings(DEFAULT_STRATEGY=StrategySettings(HELO=mode)),
                 senders={1: {"ips": ips, "from_email": "news@shop.example"}},
                 ptr={"192.0.2.7": "out7.shop.example", FakeSession.LOCAL: "local.shop.example"})
    stand.add("a@b.example")
    stand.drive()
    assert [(s["helo"], s["ip"]) for s in stand.peer.sent] == [(expected, ips[0] if ips else "")]


def test_helo_default_is_the_host_name_without_mta_helo(make):
    stand = make(settings=settings(HELO=""))
    stand.add("a@b.example")
    stand.drive()
    assert stand.peer.sent[0]["helo"] == "host.test"


def test_messages_spread_over_the_senders_ips_by_message_id(make):
    stand = make(settings=settings())
    metas = [stand.add(f"r{n}@b.example") for n in range(60)]
    stand.drive()
    sent_from = {s["rcpt"]: s["ip"] for s in stand.peer.sent}
    assert len(sent_from) == 60
    for meta in metas:
        assert sent_from[meta.rcpt] == IPS[zlib.crc32(meta.message_id.encode()) % 3]
    assert set(sent_from.values()) == set(IPS)
    # one session never mixes IPs: a session sends from one source with one HELO
    assert all(s["session"].source == s["ip"] for s in stand.peer.sent)


def test_next_hop_static_relay_and_mx(make):
    stand = make(settings=settings(ROUTES={"static.example": "10.1.1.1:2526"}),
                 senders={1: {"ips": [], "from_email": "n@shop.example"},
                          2: {"ips": [], "from_email": "n@shop.example", "relay": "relay.test:587"}})
    stand.add("a@static.example", sender_id=2)
    stand.add("b@mx.example")
    stand.add("c@mx.example")
    stand.add("d@other.example", sender_id=2)
    stand.drive()
    hops = {s["rcpt"]: (s["host"], s["port"]) for s in stand.peer.sent}
    assert hops == {"a@static.example": ("10.1.1.1", 2526), "b@mx.example": ("mx.mx.example", 25),
                    "c@mx.example": ("mx.mx.example", 25), "d@other.example": ("relay.test", 587)}
    assert stand.resolver.mx_lookups == ["mx.example"]  # cached


# -- sessions --------------------------------------------------------------------------------
def test_connections_and_messages_per_connection(make):
    stand = make(settings=settings(DEFAULT_STRATEGY=StrategySettings(CONNECTIONS=2, MESSAGES_PER_CONNECTION=3)),
                 senders={1: {"ips": ["192.0.2.1"], "from_email": "n@shop.example"}})
    for n in range(10):
        stand.add(f"r{n}@b.example")
    stand.drive()
    per_session = [len([s for s in stand.peer.sent if s["session"] is session]) for session in stand.peer.sessions]
    assert sum(per_session) == 10 and max(per_session) == 3
    assert all(session.closed for session in stand.peer.sessions)
    assert stand.delivery.active[next(iter(stand.delivery.active))] == 0


def test_priority_messages_go_first(make):
    stand = make(settings=settings(DEFAULT_STRATEGY=StrategySettings(CONNECTIONS=1)),
                 senders={1: {"ips": ["192.0.2.1"], "from_email": "n@shop.example"}})
    stand.add("bulk1@b.example")
    stand.add("bulk2@b.example")
    stand.add("trigger@b.example", priority=True)
    stand.drive()
    assert stand.peer.rcpts() == ["trigger@b.example", "bulk1@b.example", "bulk2@b.example"]


# -- hold, purge, intake limit -------------------------------------------------------------------
def test_a_held_sender_sends_nothing_its_session_ends_and_release_resumes_in_order(make):
    stand = make(settings=settings(DEFAULT_STRATEGY=StrategySettings(CONNECTIONS=1)),
                 senders={1: {"ips": ["192.0.2.1"], "from_email": "n@shop.example"},
                          2: {"ips": ["192.0.2.2"], "from_email": "n@shop.example"}})
    order = [stand.add(f"r{n}@b.example").rcpt for n in range(6)]
    stand.add("other@b.example", sender_id=2)
    # held while its session is open, after the first message
    stand.peer.on_send = lambda rcpt: stand.delivery.hold(1) if rcpt == "r0@b.example" else None
    stand.drive()
    assert stand.peer.rcpts() == ["r0@b.example", "other@b.example"]
    session = stand.peer.sent[0]["session"]
    assert session.closed
    stats = stand.delivery.stats()
    assert stats["held_senders"] == [1]
    assert [(r["sender_id"], r["isp"], r["hold"]) for r in stats["rows"]] == [(1, "default", 5)]

    stand.clock.advance(3600)
    stand.drive()
    assert stand.peer.rcpts() == ["r0@b.example", "other@b.example"]  # held: nothing moves
    stand.delivery.release(1)
    stand.drive()
    assert [r for r in stand.peer.rcpts() if r != "other@b.example"] == order


def test_purge_drops_a_senders_messages(make):
    stand = make(settings=settings())
    metas = [stand.add(f"r{n}@b.example") for n in range(3)]
    stand.add("keep@b.example", sender_id=2)
    stand.senders[2] = {"ips": [], "from_email": "n@shop.example"}
    assert stand.delivery.purge(1) == 3
    stand.drive()
    assert stand.peer.rcpts() == ["keep@b.example"]
    assert [stand.sink.kinds(m.message_id) for m in metas] == [["dropped"]] * 3


def test_intake_limit_counts_ready_messages_of_senders_not_held(make):
    stand = make(settings=settings(), senders={1: {"ips": [], "from_email": "n@shop.example"},
                                               2: {"ips": [], "from_email": "n@shop.example"}})
    for n in range(3):
        stand.add(f"ready{n}@b.example")
    stand.delivery.hold(2)
    for n in range(4):
        stand.add(f"held{n}@b.example", sender_id=2)
    for n in range(5):  # waiting for a retry
        stand.add(f"later{n}@b.example", next_attempt=stand.clock.now + 600, attempts=1)
    assert stand.delivery.backlog() == 3
    assert not intake_open(stand.delivery.backlog(), 3)
    assert intake_open(stand.delivery.backlog(), 4)

    stand.delivery.release(2)
    assert stand.delivery.backlog() == 7
    stand.drive()
    assert stand.delivery.backlog() == 0  # taken and sent: no longer waiting
    stand.clock.advance(600)
    stand.delivery.hold(1)
    stand.drive()  # the retries become ready, of a held sender
    assert stand.delivery.backlog() == 0
    stand.delivery.release(1)
    assert stand.delivery.backlog() == 5


# -- the loop itself --------------------------------------------------------------------------
def test_the_dispatcher_loop_on_a_fake_clock(make):
    stand = make(settings=settings())
    stand.peer.script["a@b.example"] = [Reply(451, "4.3.0 later")]
    meta = stand.add("a@b.example")

    async def run() -> None:
        loop_task = asyncio.create_task(stand.delivery.run(tick=1.0))
        while stand.sink.kinds() != ["deferred", "delivered"]:
            await asyncio.sleep(0)
        stand.delivery.stop()
        await loop_task
    asyncio.run(run())
    assert stand.peer.sent[1]["at"] - stand.peer.sent[0]["at"] == pytest.approx(60, abs=1.0)
    assert meta.message_id not in stand.delivery.meta


def test_the_engine_imports_no_driver_nor_web_framework():
    code = ("import sys, altcraft.mta.delivery, altcraft.mta.ready, altcraft.mta.routes, altcraft.mta.outcomes\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pika', 'redis', 'flask', 'dns')"
            " or m.startswith('altcraft.stores') or m.startswith('altcraft.services'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the quiet point (a backup) ---------------------------------------------------------------
def test_paused_delivery_starts_no_session_and_goes_on_where_it_was_when_resumed(make):
    stand = make(settings=settings(DEFAULT_STRATEGY={"CONNECTIONS": 1, "MESSAGES_PER_CONNECTION": 10}))
    for n in range(3):
        stand.add(f"u{n}@b.example")
    stand.delivery.pause()
    assert stand.delivery.quiet()  # paused, no session open
    stand.drive()
    assert stand.peer.sent == [] and stand.sink.kinds() == []
    stand.delivery.resume()
    assert not stand.delivery.quiet()
    stand.drive()
    assert stand.sink.kinds() == ["delivered"] * 3


# -- rules saved at run time (domain/mta_rules.py) ------------------------------------------
def test_applied_rules_decide_the_next_retry_and_bounce_and_keep_unchanged_limiters(make):
    from altcraft.config import BouncePattern, StrategySettings

    stand = make(settings=settings(DEFAULT_STRATEGY=StrategySettings(RATE="100:1"),
                                   STRATEGIES={"slow": StrategySettings(DOMAINS=["slow.example"], RATE="1:60")}))
    stand.peer.script["a@b.example"] = [Reply(451, "4.3.0 try later")]
    stand.peer.script["c@slow.example"] = [Reply(250, "ok")]
    first = stand.add("a@b.example")
    stand.add("c@slow.example")
    stand.drive()
    assert first.next_attempt == stand.clock.now + 60  # main.json's rule
    kept = stand.delivery.limiters[("default", first.ip)]

    stand.delivery.apply_rules(settings(
        DEFAULT_STRATEGY=StrategySettings(RATE="100:1"),
        STRATEGIES={"slow": StrategySettings(DOMAINS=["slow.example"], RATE="5:60")},
        RETRY=RetrySettings(TYPE="fixed", INTERVAL_SECONDS=5, MAX_ATTEMPTS=5),
        BOUNCE_PATTERNS=[BouncePattern(TYPE="soft", PATTERN="mailbox busy")]))
    assert stand.delivery.limiters.get(("default", first.ip)) is kept  # RATE unchanged: its tokens stay
    assert not [key for key in stand.delivery.limiters if key[0] == "slow"]  # RATE changed: a new bucket
    stand.peer.script["d@b.example"] = [Reply(550, "5.2.0 mailbox busy")]
    second = stand.add("d@b.example")
    stand.drive()
    # the saved pattern calls that 550 soft (without it: bounced_hard), retried on the saved rule
    assert stand.sink.kinds(second.message_id) == ["deferred"]
    assert second.next_attempt == stand.clock.now + 5
