"""MTA rules as Altcraft defines them: retry delays, bounce patterns, lock rules, sending
strategies."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from altcraft.config import BouncePattern, LockRule, RetrySettings, StrategySettings

BounceType = Literal["hard", "soft", "bounce"]

# Built-in patterns (tried after the custom ones). Matched against "<code> <text>".
BUILTIN_PATTERNS: tuple[tuple[BounceType, str, str], ...] = (
    ("hard", "user unknown", r"\b5\d\d\b.*(user unknown|unknown user|no such user|does not exist|"
                             r"recipient rejected|mailbox unavailable|invalid recipient|"
                             r"address rejected|not found)"),
    ("hard", "bad domain", r"\b5\d\d\b.*(domain not found|no such domain|host unknown)"),
    ("soft", "mailbox full", r"\b(452|552)\b.*(full|quota|insufficient)"),
    ("soft", "greylisted", r"\b4\d\d\b.*(greylist|try again later|temporar)"),
    ("soft", "rate limited", r"\b4\d\d\b.*(rate|too many|throttl)"),
    ("bounce", "policy / spam", r"\b5\d\d\b.*(spam|policy|blocked|blacklist|denied)"),
)


@dataclass(frozen=True)
class Verdict:
    type: BounceType
    name: str


class _Patterns:
    """Ordered patterns over an answer "<code> <text>", ignoring case: the first one whose
    scope fits ("*" fits every ISP) and that is found wins, with what it carries."""

    def __init__(self, entries):
        self.entries = [(scope, name, re.compile(pattern, re.IGNORECASE), payload)
                        for scope, name, pattern, payload in entries]

    def first(self, code: int, text: str, isp: str = "*"):
        line = f"{code} {text}"
        for scope, name, pattern, payload in self.entries:
            if scope in ("*", isp) and pattern.search(line):
                return name, payload
        return None


class BounceClassifier:
    def __init__(self, custom: list[BouncePattern]):
        self.patterns = _Patterns([("*", p.NAME or p.PATTERN, p.PATTERN, p.TYPE) for p in custom]
                                  + [("*", n, p, t) for t, n, p in BUILTIN_PATTERNS])

    def classify(self, code: int, text: str) -> Verdict:
        found = self.patterns.first(code, text)
        if found is not None:
            return Verdict(found[1], found[0])
        # No pattern: the reply code decides (RFC 5321: 4xx transient, 5xx permanent).
        return Verdict("soft", "transient") if 400 <= code < 500 else Verdict("hard", "permanent")


@dataclass(frozen=True)
class Lock:
    name: str
    seconds: int


class LockRules:
    """Which answer locks an ISP, and for how long."""

    def __init__(self, rules: list[LockRule]):
        self.patterns = _Patterns([(r.ISP, r.NAME or r.PATTERN, r.PATTERN, r.SECONDS) for r in rules])

    def match(self, isp: str, code: int, text: str) -> Lock | None:
        found = self.patterns.first(code, text, isp)
        return Lock(*found) if found is not None else None


def next_ip(ips: list[str], current: str, mode: str, rng: random.Random | None = None) -> str:
    """The sending IP for the next attempt by the retry rule's MODE."""
    if not ips:
        return ""
    if mode == "any_ip":
        return (rng or random).choice(ips)
    if current not in ips:
        return ips[0]
    if mode == "other_ip":
        return ips[(ips.index(current) + 1) % len(ips)]
    return current


def address_literal(ip: str) -> str:
    """An IP as RFC 5321 writes it in HELO: [192.0.2.1], [IPv6:2001:db8::1]."""
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def retry_delay(rule: RetrySettings, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before delivery attempt number `attempt + 1` (attempt counts from 1)."""
    if rule.TYPE == "fixed":
        delay = rule.INTERVAL_SECONDS
    elif rule.TYPE == "geometric":
        delay = rule.INTERVAL_SECONDS * rule.EXPONENT ** (attempt - 1)
    else:
        delay = (rng or random).uniform(rule.INTERVAL_SECONDS, rule.INTERVAL_SECONDS * (1 + rule.MODIFIER))
    return min(delay, rule.MAX_DELAY_SECONDS)


class RateLimiter:
    """RATE "N:S": at most N messages every S seconds (token bucket); "0:S" is unlimited."""

    def __init__(self, rate: str, clock: Callable[[], float] = time.monotonic):
        count, seconds = (int(x) for x in rate.split(":"))
        self.rate = rate
        self.clock = clock
        self.capacity = count
        self.per_second = count / seconds if count else 0.0
        self.tokens = float(count)
        self.stamp = clock()

    def take(self) -> float:
        """0 if a message may go now, else the seconds to wait."""
        if not self.capacity:
            return 0.0
        current = self.clock()
        self.tokens = min(self.capacity, self.tokens + (current - self.stamp) * self.per_second)
        self.stamp = current
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


def strategy_for(domain: str, strategies: dict[str, StrategySettings], default: StrategySettings) -> tuple[str, StrategySettings]:
    for name, strategy in strategies.items():
        if domain in strategy.DOMAINS:
            return name, strategy
    return "default", default
