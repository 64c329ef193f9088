"""What an SMTP answer means, and the events outcomes become.

An answer is read in this order: 2xx/3xx delivered; an answer matching a lock rule locks its
ISP (the message waits for the lock's end); a 5xx the bounce patterns call "hard" or
"bounce" ends the message (bounced_hard / bounced_soft); anything else is retried by the
retry rule until MAX_ATTEMPTS, then bounced_soft.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from altcraft.domain import events as wire_events
from altcraft.mta import rules
from altcraft.mta.smtp import Reply
from altcraft.mta.spool import Meta


@dataclass(frozen=True, slots=True)
class Outcome:
    """A delivery event ready for the broker (altcraft.events, routing key delivery.<kind>)."""
    kind: str
    message_id: str
    event_id: str
    routing_key: str
    body: bytes


class OutcomeSink(Protocol):
    def __call__(self, outcome: Outcome, then: Callable[[], None] | None) -> None:
        """Publishes the outcome; runs `then` once it is in the broker (e.g. removes the
        spool file of a final outcome)."""


def event(meta: Meta, kind: str, detail: str, ip: str, now: float) -> Outcome:
    """The event of the message's current attempt (meta.attempts), sent from `ip`, decided at
    `now` (epoch seconds)."""
    facts = wire_events.DeliveryFacts(
        message_id=meta.message_id, email=meta.rcpt, account_id=meta.account_id,
        sender_id=meta.sender_id, db_id=meta.db_id, resource_id=meta.resource_id,
        campaign_id=meta.campaign_id, launch=meta.launch, profile_id=meta.profile_id)
    event_id, routing, body = wire_events.delivery(facts, kind, meta.attempts, detail=detail, ip=ip, now=now)
    return Outcome(kind, meta.message_id, event_id, routing, body)


Decision = Literal["delivered", "lock", "bounced_hard", "bounced_soft", "retry"]


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    detail: str
    lock: rules.Lock | None = None


def judge(reply: Reply, isp: str, lock_rules: rules.LockRules, classifier: rules.BounceClassifier) -> Verdict:
    if reply.ok:
        return Verdict("delivered", str(reply))
    lock = lock_rules.match(isp, reply.code, reply.text)
    if lock is not None:
        return Verdict("lock", f"{reply} [{isp} locked for {lock.seconds} s: {lock.name}]", lock)
    bounce = classifier.classify(reply.code, reply.text)
    if reply.code >= 500 and bounce.type == "hard":
        return Verdict("bounced_hard", f"{reply} [{bounce.name}]")
    if reply.code >= 500 and bounce.type == "bounce":
        return Verdict("bounced_soft", f"{reply} [{bounce.name}]")
    return Verdict("retry", str(reply))
