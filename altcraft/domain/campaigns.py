"""Campaigns: what to send (template), to whom (segment of a profile database), from whom
(a sender, or a virtual sender that picks one per recipient), and when (now, at a time, or on a cron schedule).

States: draft -> scheduled -> sending -> finished (or failed); sending <-> paused; a
regular campaign goes back to scheduled after each launch. The campaign worker claims a due
campaign under a lease and checkpoints its progress after every batch; a worker that dies
loses its lease, and the next one resumes after the last checkpoint. Each run has a launch
number: de-duplication keys name it, so a resumed launch never mails a profile twice while
the next launch of a regular campaign mails everyone again.

Campaigns are kept in the control DB (the scheduler looks across accounts), every query
by an account carries its account_id.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from croniter import croniter
from pymongo import ReturnDocument
from pymongo.database import Database

from altcraft.domain import abtest
from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id

STATES = ("draft", "scheduled", "sending", "paused", "finished", "failed", "cancelled")
EDITABLE = ("draft", "paused", "finished", "failed", "cancelled")
# the marketer's transitions and the states each may start from (the guard of every caller:
# the API, the panel; the panel shows a button only where its transition is allowed)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "start": ("draft", "finished", "failed", "cancelled"),
    "pause": ("sending", "scheduled"),
    "resume": ("paused",),
    "cancel": ("scheduled", "sending", "paused"),
}
PUBLIC = ("id", "account_id", "name", "db_id", "segment_id", "template_id", "sender_id",
          "vsender_id", "resource_id", "schedule", "state", "launch", "next_run", "progress", "error",
          "created_at", "started_at", "finished_at", "ab")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def _schedule(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"type": "once", "at": None}
    if not isinstance(raw, dict) or raw.get("type") not in ("once", "regular"):
        raise Invalid("schedule", '{"type": "once", "at": ISO time or null} or {"type": "regular", "cron": "..."}')
    if raw["type"] == "regular":
        cron = raw.get("cron")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise Invalid("schedule.cron", "a valid cron expression, e.g. '0 9 * * 1'")
        return {"type": "regular", "cron": cron}
    at = raw.get("at")
    if at is None:
        return {"type": "once", "at": None}
    try:
        moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("schedule.at", "an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return {"type": "once", "at": moment.astimezone(timezone.utc)}


def _sender_choice(sender_id: Any, vsender_id: Any) -> dict[str, Any]:
    """A campaign sends through a real sender or a virtual one, never both."""
    if (sender_id is None) == (vsender_id is None):
        raise Invalid("sender_id", "give exactly one of sender_id and vsender_id")
    return {"sender_id": sender_id, "vsender_id": vsender_id}


def _ab(raw: Any, schedule: dict[str, Any]) -> dict[str, Any] | None:
    settings = abtest.settings(raw)
    if settings is not None and schedule["type"] != "once":
        raise Invalid("ab", "an A/B test needs a one-off schedule, not a regular one")
    return settings


def allowed_transitions(state: str) -> tuple[str, ...]:
    """The transitions a campaign in `state` may take, in TRANSITIONS' order."""
    return tuple(name for name, sources in TRANSITIONS.items() if state in sources)


def next_run(schedule: dict[str, Any], after: datetime) -> datetime:
    if schedule["type"] == "regular":
        return croniter(schedule["cron"], after).get_next(datetime)
    return schedule.get("at") or after


class Campaigns:
    def __init__(self, control: Database):
        self.control = control
        self.collection = control.campaigns

    # -- the marketer's side -----------------------------------------------------------
    def add(self, account_id: int, name: str, db_id: int, segment_id: int, template_id: int,
            sender_id: int | None = None, resource_id: int = 1, schedule: Any = None,
            vsender_id: int | None = None, ab: Any = None) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise Invalid("name", "missing")
        if not isinstance(resource_id, int) or resource_id <= 0:
            raise Invalid("resource_id", "a positive integer")
        choice = _sender_choice(sender_id, vsender_id)
        schedule = _schedule(schedule)
        ab = _ab(ab, schedule)
        doc = {"id": next_id(self.control, "campaigns"), "account_id": account_id, "name": name.strip(),
               "db_id": db_id, "segment_id": segment_id, "template_id": template_id,
               **choice, "resource_id": resource_id, "schedule": schedule, "ab": ab,
               "state": "draft", "launch": 0, "next_run": None, "progress": {}, "error": "",
               "created_at": now(), "started_at": None, "finished_at": None, "lease": None}
        self.collection.insert_one(doc)
        return public(doc)

    def get(self, account_id: int, campaign_id: Any) -> dict[str, Any]:
        doc = self.collection.find_one({"id": campaign_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return doc

    def list(self, account_id: int) -> list[dict[str, Any]]:
        return [public(d) for d in self.collection.find({"account_id": account_id}).sort("id", 1)]

    def recent(self, account_id: int, limit: int = 10) -> list[dict[str, Any]]:
        """The account's newest campaigns, newest first (a dashboard never loads them all)."""
        cursor = self.collection.find({"account_id": account_id}).sort("id", -1).limit(limit)
        return [public(d) for d in cursor]

    def page(self, account_id: int, after: int | None = None,
             limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """A page of the account's campaigns, newest first, after the campaign id `after`
        (a key, never an offset); and the key of the next page, or None."""
        query: dict[str, Any] = {"account_id": account_id}
        if after is not None:
            query["id"] = {"$lt": after}
        docs = list(self.collection.find(query).sort("id", -1).limit(limit + 1))
        return [public(d) for d in docs[:limit]], (docs[limit - 1]["id"] if len(docs) > limit else None)

    def any_in(self, account_id: int, states: tuple[str, ...]) -> bool:
        return self.collection.find_one({"account_id": account_id, "state": {"$in": list(states)}},
                                        {"_id": 1}) is not None

    def update(self, account_id: int, campaign_id: int, **changes: Any) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        if current["state"] not in EDITABLE:
            raise Conflict(f"campaign {campaign_id} is {current['state']}: pause it first")
        allowed = {k: v for k, v in changes.items() if v is not None and k in
                   ("name", "db_id", "segment_id", "template_id", "sender_id", "resource_id")}
        if "schedule" in changes and changes["schedule"] is not None:
            allowed["schedule"] = _schedule(changes["schedule"])
        if changes.get("ab") is not None:
            if current["state"] == "paused" and (current.get("ab") or {}).get("phase") in ("waiting", "rest"):
                raise Conflict(f"campaign {campaign_id} is paused in its A/B test: cancel it to change the test")
            allowed["ab"] = _ab(changes["ab"], allowed.get("schedule", current["schedule"]))
        elif current.get("ab") and allowed.get("schedule", current["schedule"])["type"] != "once":
            raise Invalid("schedule", "an A/B test needs a one-off schedule, not a regular one")
        if changes.get("sender_id") is not None or changes.get("vsender_id") is not None:
            # naming one replaces the other
            allowed.update(_sender_choice(changes.get("sender_id"), changes.get("vsender_id")))
        if allowed:
            self.collection.update_one({"id": campaign_id}, {"$set": allowed})
        return public(self.get(account_id, campaign_id))

    def delete(self, account_id: int, campaign_id: int) -> None:
        current = self.get(account_id, campaign_id)
        if current["state"] in ("sending", "scheduled"):
            raise Conflict(f"campaign {campaign_id} is {current['state']}: cancel it first")
        self.collection.delete_one({"id": campaign_id})

    def _transition(self, account_id: int, campaign_id: int, allowed_from: tuple[str, ...],
                    changes: dict[str, Any]) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        doc = self.collection.find_one_and_update(
            {"id": campaign_id, "account_id": account_id, "state": {"$in": list(allowed_from)}},
            {"$set": changes}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise Conflict(f"campaign {campaign_id} is {current['state']}; "
                           f"this needs one of: {', '.join(allowed_from)}")
        return public(doc)

    def start(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        when = next_run(current["schedule"], now())
        changes: dict[str, Any] = {"state": "scheduled", "next_run": when, "error": ""}
        if current.get("ab"):  # a new start tests again
            changes.update({"ab.phase": "test", "ab.decide_at": None, "ab.winner": None, "ab.scores": None})
        return self._transition(account_id, campaign_id, TRANSITIONS["start"], changes)

    def pause(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        return self._transition(account_id, campaign_id, TRANSITIONS["pause"], {"state": "paused"})

    def resume(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        if (current.get("ab") or {}).get("phase") == "waiting":  # paused during an A/B wait
            return self._transition(account_id, campaign_id, TRANSITIONS["resume"],
                                    {"state": "scheduled", "next_run": current["ab"]["decide_at"]})
        # back to sending with an expired lease: a worker picks it up where it stopped
        return self._transition(account_id, campaign_id, TRANSITIONS["resume"],
                                {"state": "sending", "lease": None, "lease_until": now()})

    def cancel(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        return self._transition(account_id, campaign_id, TRANSITIONS["cancel"],
                                {"state": "cancelled", "finished_at": now()})

    # -- the campaign worker's side ----------------------------------------------------
    def claim(self, owner: str, lease_seconds: float = 30.0) -> dict[str, Any] | None:
        """A due campaign, leased to `owner`: a new launch of a scheduled one, or a sending
        one whose previous worker stopped renewing its lease."""
        stamp = now()
        until = stamp + timedelta(seconds=lease_seconds)
        doc = self.collection.find_one_and_update(
            {"state": "sending", "lease_until": {"$lt": stamp}},
            {"$set": {"lease": owner, "lease_until": until}}, return_document=ReturnDocument.AFTER)
        if doc is not None:
            return doc
        return self.collection.find_one_and_update(
            {"state": "scheduled", "next_run": {"$lte": stamp}},
            {"$set": {"state": "sending", "lease": owner, "lease_until": until, "started_at": stamp,
                      "progress": {"after": None, "published": 0, "skipped": 0, "duplicates": 0}},
             "$inc": {"launch": 1}},
            return_document=ReturnDocument.AFTER)

    def choose_winner(self, campaign_id: int, owner: str, winner: int, scores: list[int]) -> None:
        """Records the A/B winner and moves to the rest of the segment (the leased launch)."""
        self.collection.update_one({"id": campaign_id, "lease": owner, "ab.phase": "waiting"},
                                   {"$set": {"ab.phase": "rest", "ab.winner": winner, "ab.scores": scores}})

    def checkpoint(self, campaign_id: int, owner: str, after: str, published: int, skipped: int,
                   duplicates: int, lease_seconds: float = 30.0) -> str:
        """Records progress and renews the lease; returns the campaign's state, so that the
        worker notices a pause or cancel. A lost lease reads as 'lost'."""
        doc = self.collection.find_one_and_update(
            {"id": campaign_id, "lease": owner},
            {"$set": {"progress.after": after, "lease_until": now() + timedelta(seconds=lease_seconds)},
             "$inc": {"progress.published": published, "progress.skipped": skipped,
                      "progress.duplicates": duplicates}},
            return_document=ReturnDocument.AFTER)
        return doc["state"] if doc else "lost"

    def renew(self, campaign_id: int, owner: str, lease_seconds: float = 30.0) -> str:
        """Renews the lease without progress (a worker that waits); returns the state."""
        doc = self.collection.find_one_and_update(
            {"id": campaign_id, "lease": owner},
            {"$set": {"lease_until": now() + timedelta(seconds=lease_seconds)}},
            return_document=ReturnDocument.AFTER)
        return doc["state"] if doc else "lost"

    def finish(self, campaign_id: int, owner: str, error: str = "", ab_time_scale: float = 1.0) -> None:
        doc = self.collection.find_one({"id": campaign_id, "lease": owner})
        if doc is None:
            return
        stamp = now()
        if error:
            changes = {"state": "failed", "error": error[:500], "finished_at": stamp}
        elif doc["state"] != "sending":
            changes = {}  # paused or cancelled meanwhile: leave it so
        elif (doc.get("ab") or {}).get("phase") == "test":
            # the test group is done: the rest waits for the choice (a new launch, same campaign)
            decide_at = stamp + timedelta(seconds=doc["ab"]["wait_seconds"] * ab_time_scale)
            changes = {"state": "scheduled", "next_run": decide_at, "ab.phase": "waiting",
                       "ab.decide_at": decide_at}
        elif doc["schedule"]["type"] == "regular":
            changes = {"state": "scheduled", "next_run": next_run(doc["schedule"], stamp), "finished_at": stamp}
        else:
            changes = {"state": "finished", "finished_at": stamp}
        self.collection.update_one({"id": campaign_id, "lease": owner},
                                   {"$set": {**changes, "lease": None, "lease_until": None}})
