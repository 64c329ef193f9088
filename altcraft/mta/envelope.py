"""The MTA envelope: how a message travels from a producer to akmtad, defined once.

Producers (the campaign worker today, trigger campaigns and scenarios next) publish a rendered
message to a sender's queue with these headers; akmtad reads them back into typed metadata.
The keys that make delivery exactly-once-ish live here too, so both sides spell them alike:
  - `done_key`: written by akmtad right after a peer's 250, read by its intake and recovery;
  - `launch_dedup_key`: written by the campaign worker once a profile's message of a launch
    is in the broker, so a resumed launch never publishes it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

CONTENT_TYPE = "message/rfc822"
_QUEUE = "akmta_"
_PRIORITY_QUEUE = "akmta_prior_"
_DONE = "ak:mta:done:"
_LAUNCH_DEDUP = "ak:camp:"


class BadEnvelope(ValueError):
    """A message whose headers do not make an envelope; the text names the header."""


def queue(sender_id: int, priority: bool = False) -> str:
    """The sender's queue: the priority one (trigger mail) is served first."""
    return f"{_PRIORITY_QUEUE if priority else _QUEUE}{sender_id}"


def queues(sender_id: int) -> tuple[tuple[str, bool], ...]:
    """(queue name, is priority) of one sender, priority first."""
    return (queue(sender_id, True), True), (queue(sender_id, False), False)


def done_key(message_id: str) -> str:
    return f"{_DONE}{message_id}"


def launch_dedup_key(campaign_id: int, launch: int, profile_id: str) -> str:
    return f"{_LAUNCH_DEDUP}{campaign_id}:{launch}:{profile_id}"


@dataclass(frozen=True, slots=True)
class MtaEnvelope:
    """Who a message is for and what it belongs to; travels as AMQP headers."""
    sender_id: int
    rcpt: str
    account_id: int = 0
    campaign_id: int = 0
    launch: int = 0
    profile_id: str = ""
    db_id: int = 0
    resource_id: int = 0

    def headers(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> MtaEnvelope:
        def integer(name: str, required: bool = False) -> int:
            value = headers.get(name)
            if value is None and not required:
                return 0
            if isinstance(value, bool):
                raise BadEnvelope(f"header {name}: not an integer")
            try:
                return int(value)
            except (TypeError, ValueError):
                raise BadEnvelope(f"header {name}: {'missing' if value is None else 'not an integer'}") from None

        rcpt = headers.get("rcpt")
        if not isinstance(rcpt, (str, bytes)) or not rcpt:
            raise BadEnvelope("header rcpt: missing")
        profile_id = headers.get("profile_id") or ""
        return cls(sender_id=integer("sender_id", required=True),
                   rcpt=rcpt.decode() if isinstance(rcpt, bytes) else rcpt,
                   account_id=integer("account_id"), campaign_id=integer("campaign_id"),
                   launch=integer("launch"),
                   profile_id=profile_id.decode() if isinstance(profile_id, bytes) else str(profile_id),
                   db_id=integer("db_id"), resource_id=integer("resource_id"))
