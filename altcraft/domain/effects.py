"""What events change on profiles: unsubscribes, resubscribes, hard bounces.

An event may be applied more than once (the tracking page applies it at once for the person
who clicked, procactions applies it again from the broker, a redelivered message applies it
a third time) and events may arrive out of order (an unsubscribe from one queue after a
later resubscribe). So each is applied as of its time through `Profiles.set_subscription`,
whose ordering rule (domain/subscriptions.py) lets no older change undo a newer one, and
applying an event again changes nothing.

A hard bounce sets the subscription to `hard_bounced` and puts the address (as its MD5) on
the global stop list. A resubscribe never lifts a hard bounce: the address does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from altcraft.domain.errors import NotFound
from altcraft.domain.events import Event
from altcraft.domain.profiles import CHANNELS, Profiles, SubscriptionOutcome as Outcome
from altcraft.domain.stoplist import StopList

STATUS_OF = {"unsubscribe": "unsubscribed", "subscribe": "subscribed", "bounced_hard": "hard_bounced"}


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
        channel = event.channel if event.channel in CHANNELS else "email"
        outcome = profiles.set_subscription(event.profile_id, event.resource_id, channel, status, event.time)
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
