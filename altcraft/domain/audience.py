"""Who gets mailed: the audience rule of a sending (a campaign launch today; trigger campaigns
and scenarios next).

A profile of a batch is mailed when all of these hold, checked in this order:
  1. it has an e-mail address;
  2. it is subscribed to the sending's resource on the e-mail channel;
  3. its address is not on the global stop list;
  4. it was not already handled in this sending (a resumed launch must not mail it twice).
Failing 1-3 counts as skipped, failing 4 as a duplicate. The chosen profiles keep the
batch's order.

The stop list and the record of handled profiles are passed in, so the rule has no store of
its own: the campaign worker gives the SSDB stop list (domain/stoplist.py) and its Redis
launch record (services/campaign.py), a unit test gives fakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CHANNEL = "email"


class StopListLookup(Protocol):
    def blocked(self, contacts: Iterable[str]) -> set[str]:
        """The contacts of `contacts` that are on the stop list."""
        ...


class HandledRecord(Protocol):
    """Which profiles this sending already handled (the de-duplication record of a launch)."""

    def handled(self, profile_ids: Sequence[str]) -> list[bool]:
        """For each id, in order: True if it was handled already."""
        ...


@dataclass(frozen=True, slots=True)
class Audience:
    """The profiles of one batch to be mailed, in the batch's order, and why the others were not."""
    profiles: list[Mapping[str, Any]]
    skipped: int  # no e-mail, not subscribed, or on the stop list
    duplicates: int  # already handled in this sending


def email_of(profile: Mapping[str, Any]) -> str:
    return (profile.get("data") or {}).get("email") or ""


def subscribed(profile: Mapping[str, Any], resource_id: int, channel: str = CHANNEL) -> bool:
    return any(s.get("resource_id") == resource_id and s.get("channel") == channel
               and s.get("status") == "subscribed"
               for s in profile.get("subscriptions") or [])


def choose(batch: Sequence[Mapping[str, Any]], resource_id: int, *,
           stoplist: StopListLookup, handled: HandledRecord) -> Audience:
    """The audience of one batch of profiles (one stop-list and one record look-up each)."""
    reachable = [p for p in batch if email_of(p) and subscribed(p, resource_id)]
    blocked = stoplist.blocked([email_of(p) for p in reachable]) if reachable else set()
    allowed = [p for p in reachable if email_of(p) not in blocked]
    seen = handled.handled([p["_id"] for p in allowed]) if allowed else []
    fresh = [p for p, was in zip(allowed, seen) if not was]
    return Audience(fresh, skipped=len(batch) - len(allowed), duplicates=len(allowed) - len(fresh))
