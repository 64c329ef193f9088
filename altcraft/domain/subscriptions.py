"""The ordering rule of subscription changes, in one place for every writer.

A profile's subscriptions are `[{resource_id, channel, status, changed_at}]`. A status
reaches them from several writers, in any order and sometimes twice: the tracking pages (at
once, for the person who clicked), procactions (the same event again from the broker, a
redelivered one a third time), bounces, the API. So every change carries its time and:
  - a change is applied only if its time is at least as new as the subscription's
    `changed_at`: an older change arriving late never undoes a newer one;
  - the same status said again later moves `changed_at` forward (nothing else changes), so
    that an older change arriving after it still cannot undo it; said again at the same
    time it writes nothing;
  - a subscribe never lifts a hard bounce: the address does not exist.

`Profiles.set_subscription` and `Profiles.update` store what `change` decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

CHANNELS = ("email", "sms", "push")
STATUSES = ("subscribed", "unsubscribed", "hard_bounced", "suspended")
Outcome = Literal["changed", "unchanged", "stale"]


@dataclass(frozen=True, slots=True)
class Change:
    outcome: Outcome  # changed; unchanged (the same status); stale (refused by the rule)
    subscriptions: list[dict[str, Any]] | None  # the list to store; None: nothing to write
    current: Mapping[str, Any] | None  # the stored subscription before the change


def change(subscriptions: Sequence[Mapping[str, Any]], resource_id: int, channel: str, status: str,
           at: datetime) -> Change:
    """What setting (resource_id, channel) to `status` as of `at` does to `subscriptions`."""
    current = next((s for s in subscriptions
                    if (s.get("resource_id"), s.get("channel")) == (resource_id, channel)), None)
    outcome: Outcome = "changed"
    if current is not None:
        changed_at = current.get("changed_at")
        same = current.get("status") == status
        if changed_at is not None and changed_at > at:
            return Change("unchanged" if same else "stale", None, current)
        if same:
            if changed_at == at:
                return Change("unchanged", None, current)
            outcome = "unchanged"
        elif status == "subscribed" and current.get("status") == "hard_bounced":
            return Change("stale", None, current)
    entry = {"resource_id": resource_id, "channel": channel, "status": status, "changed_at": at}
    kept = [dict(s) for s in subscriptions if (s.get("resource_id"), s.get("channel")) != (resource_id, channel)]
    return Change(outcome, kept + [entry], current)
