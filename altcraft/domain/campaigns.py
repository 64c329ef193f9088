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

Altcraft's verbs (API `campaigns/activate`, `deactivate`, `clone`, `get_status`, `log_v2`) are
compositions of the transitions below, never new ones: activate is start (or resume from a
pause), deactivate is pause (or cancel when it aborts), each keeping its atomic state guard.
Every transition, launch and end writes one entry to the campaign's log (`campaign_log`),
after the guarded update it records has happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from croniter import croniter
from pymongo import ReturnDocument
from pymongo.database import Database

from altcraft.domain import abtest, claims
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


ACTIVE_STATES = ("scheduled", "sending")  # Altcraft's "active": it will send, or is sending
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def kind(doc: dict[str, Any]) -> str:
    """Altcraft's mailing type: a cron schedule is a regular mailing, anything else a broadcast."""
    return "regular" if (doc.get("schedule") or {}).get("type") == "regular" else "broadcast"


def status(doc: dict[str, Any]) -> dict[str, Any]:
    """Altcraft's status triple for a campaign, with this platform's state beside it."""
    state = doc["state"]
    label = "Active" if state in ACTIVE_STATES else "Completed" if state == "finished" else "Inactive"
    return {"is_active": state in ACTIVE_STATES, "is_completed": state == "finished",
            "status": label, "state": state}


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
        self.claims = control.campaign_claims  # one per launch or lease takeover: see claim()

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
             limit: int = 50, ab_only: bool = False) -> tuple[list[dict[str, Any]], int | None]:
        """A page of the account's campaigns (`ab_only`: its A/B tests), newest first, after
        the campaign id `after` (a key, never an offset); and the key of the next page, or None."""
        query: dict[str, Any] = {"account_id": account_id}
        if ab_only:
            query["ab"] = {"$ne": None}
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
        self.control.campaign_log.delete_many({"campaign_id": campaign_id})

    def clone(self, account_id: int, campaign_id: int, name: str | None = None) -> dict[str, Any]:
        """A draft copy of what the campaign sends, to whom, from whom and when; none of its runs."""
        source = self.get(account_id, campaign_id)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise Invalid("name", "empty: give a name, or leave it out for \"Clone of ...\"")
        ab = source.get("ab")
        if ab:  # the test's settings, not its outcome
            ab = {**ab, "phase": "test", "decide_at": None, "winner": None, "scores": None}
        doc = {"id": next_id(self.control, "campaigns"), "account_id": account_id,
               "name": name.strip() if name is not None else f"Clone of {source['name']}"[:200],
               **{k: source.get(k) for k in ("db_id", "segment_id", "template_id", "sender_id", "vsender_id",
                                             "resource_id", "schedule")},
               "ab": ab, "state": "draft", "launch": 0, "next_run": None, "progress": {}, "error": "",
               "created_at": now(), "started_at": None, "finished_at": None, "lease": None}
        self.collection.insert_one(doc)
        return public(doc)

    # -- Altcraft's verbs over the transitions -------------------------------------------
    def activate(self, account_id: int, campaign_id: int, run_now: bool = False) -> dict[str, Any]:
        """Altcraft's activate: a paused campaign resumes; any other startable one starts, at its
        schedule or, with `run_now`, at once (a regular one then goes on by its cron)."""
        current = self.get(account_id, campaign_id)
        if current["state"] in TRANSITIONS["resume"] and not run_now:
            return self.resume(account_id, campaign_id)
        return self.start(account_id, campaign_id, run_now=run_now)

    def deactivate(self, account_id: int, campaign_id: int, abort_if_running: bool = False) -> dict[str, Any]:
        """Altcraft's deactivate: pause (it can be activated again where it stopped), or, with
        `abort_if_running`, cancel, so that nothing more is sent."""
        if abort_if_running:
            return self.cancel(account_id, campaign_id)
        return self.pause(account_id, campaign_id)

    # -- the campaign log (Altcraft's campaigns/log_v2) ----------------------------------
    def log(self, campaign_id: int, account_id: int, message: str, *, state: str = "", value: Any = "",
            level: str = "INFO") -> None:
        self.control.campaign_log.insert_one({"campaign_id": campaign_id, "account_id": account_id,
                                              "time": now(), "level": level, "message": message,
                                              "state": state, "value": str(value)})

    def log_entries(self, account_id: int, campaign_id: int, from_time: datetime | None = None,
                    limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """The campaign's log from `from_time` on, oldest first, at most `limit` entries; and how
        many entries there are from `from_time` on."""
        self.get(account_id, campaign_id)
        query: dict[str, Any] = {"campaign_id": campaign_id, "account_id": account_id}
        if from_time is not None:
            query["time"] = {"$gte": from_time}
        cursor = self.control.campaign_log.find(query, {"_id": 0, "campaign_id": 0, "account_id": 0})
        entries = list(cursor.sort([("time", 1), ("_id", 1)]).limit(limit))
        return entries, self.control.campaign_log.count_documents(query)

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

    def start(self, account_id: int, campaign_id: int, run_now: bool = False) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        when = now() if run_now else next_run(current["schedule"], now())
        changes: dict[str, Any] = {"state": "scheduled", "next_run": when, "error": ""}
        if current.get("ab"):  # a new start tests again
            changes.update({"ab.phase": "test", "ab.decide_at": None, "ab.winner": None, "ab.scores": None})
        started = self._transition(account_id, campaign_id, TRANSITIONS["start"], changes)
        self.log(campaign_id, account_id, "Campaign activated", value=when.isoformat())
        return started

    def pause(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        paused = self._transition(account_id, campaign_id, TRANSITIONS["pause"], {"state": "paused"})
        self.log(campaign_id, account_id, "Campaign deactivated")
        return paused

    def resume(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        current = self.get(account_id, campaign_id)
        if (current.get("ab") or {}).get("phase") == "waiting":  # paused during an A/B wait
            resumed = self._transition(account_id, campaign_id, TRANSITIONS["resume"],
                                       {"state": "scheduled", "next_run": current["ab"]["decide_at"]})
        else:  # back to sending with an expired lease: a worker picks it up where it stopped
            resumed = self._transition(account_id, campaign_id, TRANSITIONS["resume"],
                                       {"state": "sending", "lease": None, "lease_until": now()})
        self.log(campaign_id, account_id, "Campaign resumed")
        return resumed

    def cancel(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        cancelled = self._transition(account_id, campaign_id, TRANSITIONS["cancel"],
                                     {"state": "cancelled", "finished_at": now()})
        self.log(campaign_id, account_id, "Campaign aborted", state="end")
        return cancelled

    # -- the campaign worker's side ----------------------------------------------------
    def claim(self, owner: str, lease_seconds: float = 30.0) -> dict[str, Any] | None:
        """A due campaign, leased to `owner`: a new launch of a scheduled one, or a sending
        one whose previous worker stopped renewing its lease.

        Each is first won in `campaign_claims` (domain/claims.py): the next launch number, or
        the expired lease being taken over. Two winners would each take their own launch
        number, so their own de-duplication keys: everyone mailed twice."""
        stamp = now()
        until = stamp + timedelta(seconds=lease_seconds)
        for stale in self.collection.find({"state": "sending", "lease_until": {"$lt": stamp}},
                                          {"id": 1, "launch": 1, "lease": 1, "lease_until": 1}).limit(5):
            taken = f"{stale['id']}:{stale.get('launch', 0)}:takeover:{stale['lease_until'].isoformat()}"
            if not claims.win(self.claims, taken, owner, lease_seconds):
                continue
            doc = self.collection.find_one_and_update(
                {"id": stale["id"], "state": "sending", "lease": stale.get("lease"),
                 "lease_until": stale["lease_until"]},
                {"$set": {"lease": owner, "lease_until": until}}, return_document=ReturnDocument.AFTER)
            if doc is not None:
                return doc
        for due in self.collection.find({"state": "scheduled", "next_run": {"$lte": stamp}},
                                        {"id": 1, "launch": 1}).sort("next_run", 1).limit(5):
            launch = due.get("launch", 0) + 1
            if not claims.win(self.claims, f"{due['id']}:{launch}", owner, lease_seconds):
                continue
            doc = self.collection.find_one_and_update(
                {"id": due["id"], "state": "scheduled", "launch": due.get("launch", 0)},
                {"$set": {"state": "sending", "lease": owner, "lease_until": until, "started_at": stamp,
                          "launch": launch,
                          "progress": {"after": None, "published": 0, "skipped": 0, "duplicates": 0}}},
                return_document=ReturnDocument.AFTER)
            if doc is not None:
                self.log(doc["id"], doc["account_id"], "Begin campaign", state="start", value=doc["launch"])
                return doc
        return None

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
        done = self.collection.update_one({"id": campaign_id, "lease": owner},
                                          {"$set": {**changes, "lease": None, "lease_until": None}})
        if done.modified_count and changes.get("finished_at") is not None:
            if error:
                self.log(campaign_id, doc["account_id"], "Campaign failed", state="end", value=error[:500],
                         level="ERROR")
            else:
                self.log(campaign_id, doc["account_id"], "Campaign finished", state="end",
                         value=doc.get("progress", {}).get("published", 0))
