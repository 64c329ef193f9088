"""What events change on profiles: unsubscribes, resubscribes, hard bounces.

An event may be applied more than once (the tracking page applies it at once for the person
who clicked, procactions applies it again from the broker, a redelivered message applies it
a third time) and events may arrive out of order (an unsubscribe from one queue after a
later resubscribe). So a change is applied only if the event is at least as new as the
subscription's current `changed_at`, and applying an event again changes nothing.

A hard bounce sets the subscription to `hard_bounced` and puts the address (as its MD5) on
the global stop list. A resubscribe never lifts a hard bounce: the address does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, NotFound
from altcraft.domain.events import Event
from altcraft.domain.profiles import CHANNELS, Profiles
from altcraft.domain.stoplist import StopList

Outcome = Literal["changed", "unchanged", "stale", "no-profile"]
STATUS_OF = {"unsubscribe": "unsubscribed", "subscribe": "subscribed", "bounced_hard": "hard_bounced"}


def set_subscription_at(profiles: Profiles, profile_id: str, resource_id: int, channel: str,
                        status: str, at: datetime) -> Outcome:
    """Sets one subscription's status as of `at`, unless it changed later than that.

    `changed_at` is when the status was last set or confirmed by an event: a subscribe
    event for a subscribed profile moves it forward too.

    Optimistic concurrency on the document's `updated_at`: two writers never lose each
    other's change to another subscription of the same profile.
    """
    if channel not in CHANNELS:
        channel = "email"
    for _ in range(8):
        doc = profiles.collection.find_one({"_id": profile_id}, {"subscriptions": 1, "updated_at": 1})
        if doc is None:
            return "no-profile"
        subscriptions = doc.get("subscriptions") or []
        current = next((s for s in subscriptions
                        if (s.get("resource_id"), s.get("channel")) == (resource_id, channel)), None)
        outcome: Outcome = "changed"
        if current is not None:
            changed_at = current.get("changed_at")
            if changed_at is not None and changed_at >= at:
                return "unchanged" if current.get("status") == status else "stale"
            if current.get("status") == status:
                # the same status, said again later: remember when, so that an older event
                # arriving after this one cannot undo it
                outcome = "unchanged"
            elif status == "subscribed" and current.get("status") == "hard_bounced":
                return "stale"
        entry = {"resource_id": resource_id, "channel": channel, "status": status, "changed_at": at}
        kept = [s for s in subscriptions if (s.get("resource_id"), s.get("channel")) != (resource_id, channel)]
        result = profiles.collection.update_one(
            {"_id": profile_id, "updated_at": doc.get("updated_at")},
            {"$set": {"subscriptions": kept + [entry], "updated_at": now()}},
        )
        if result.matched_count:
            return outcome
    raise Conflict(f"profile {profile_id} kept changing; subscription not set")


@dataclass
class Effects:
    """Applies the profile side of events. `profiles(account_id, db_id)` gives the Profiles
    of a profile database (raising NotFound when it does not exist)."""

    profiles: Callable[[int, int], Profiles]
    stoplist: StopList | None

    def apply(self, event: Event) -> Outcome | None:
        status = STATUS_OF.get(event.kind)
        if status is None or not event.profile_id or not event.resource_id or not event.db_id:
            return None
        try:
            profiles = self.profiles(event.account_id, event.db_id)
        except (NotFound, ValueError):
            return "no-profile"
        outcome = set_subscription_at(profiles, event.profile_id, event.resource_id,
                                      event.channel or "email", status, event.time)
        # The stop list only for a profile of this platform: an address from an event that
        # names no profile here is not ours to block for every account.
        if event.kind == "bounced_hard" and outcome != "no-profile" and self.stoplist is not None:
            address = event.email or _profile_email(profiles, event.profile_id)
            if address:
                self.stoplist.add(address, reason="hard_bounce")
        return outcome


def _profile_email(profiles: Profiles, profile_id: str) -> str:
    doc = profiles.collection.find_one({"_id": profile_id}, {"data.email": 1})
    return ((doc or {}).get("data") or {}).get("email") or ""
