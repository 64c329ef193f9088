"""Campaign reports from ClickHouse, and hourly account statistics in the SSDB stats store.

Counting: a redelivered event may sit in `events` twice until ClickHouse merges the copies
away (ReplacingMergeTree on event_id), so every count here is a distinct count of event ids
(events) or profile ids (people), never count(). The campaign report reads them from the
aggregates `campaign_hourly` and `campaign_people` (schema/clickhouse.py: sets of ids kept
by materialised views, merged with uniqExactMerge), not from `events`: the same figures
without reading every event. Human counts leave out events flagged `is_bot` (see
botfilter.py). The SQL runs on ClickHouse 18.16 and on current servers. A process keeps the
reports it computed by the campaign's version (a number that every INSERT of its events
changes and no merge does): asked again with nothing inserted since, it answers the same
report without counting again - never an older one. Counting anew merges every event id and
profile id of the campaign (seconds at a million events), so the report page does not wait
for it (Reports.live): after new events it shows the last count with its time and recounts
in the background.

Definitions (per campaign):
  sent          profiles the MTA reported any outcome for (delivered, deferred, bounced,
                dropped): each campaign mails a profile once
  delivered     profiles with a `delivered` event; bounced.hard / bounced.soft / dropped /
                deferred likewise (a soft bounce later delivered counts in both)
  opened        unique = profiles with an open, total = open events; each as human and all
  clicked       the same for clicks; per link as well (link_id, an example URL)
  unsubscribed  profiles with an unsubscribe event from this campaign
  complaints    always 0: no ARF feedback loop is consumed yet
  timeline      per hour (UTC): events of each kind, all and human
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from altcraft.domain.events import ACTION_KINDS, DELIVERY_KINDS
from altcraft.stores.analytics import Analytics
from altcraft.stores.kv import KVStore

COMPLAINTS_NOTE = "complaints need an ARF feedback-loop feed, which is not consumed yet: always 0"


_SENT = "_sent"    # the ARRAY JOIN's group labels besides the kinds (which never start with _)
_LINK = "_link:"


def _hour_iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")


def _both(all_: int, human: int) -> dict[str, int]:
    return {"all": int(all_), "human": int(human)}


@dataclass(frozen=True)
class Counted:
    """A report and what it counts: the campaign's events of `version` (read before counting),
    that is every insert finished by `as_of` (epoch seconds)."""

    version: int
    as_of: float
    report: dict[str, Any]


@dataclass(frozen=True)
class Live:
    """What the report page shows: the figures counted `as_of` (epoch seconds), exact for
    the events inserted by then; `recounting` when events arrived since and a count of them
    is under way in this process (the page says so and asks again)."""

    report: dict[str, Any]
    as_of: float
    recounting: bool


class _Kept:
    """The report counted last per (database, account, campaign), bounded; and which of them
    this process is recounting in the background (one count per campaign at a time)."""

    SIZE = 256

    def __init__(self) -> None:
        self._items: OrderedDict[tuple, Counted] = OrderedDict()
        self._running: set[tuple] = set()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Counted | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return None if found is None else Counted(found.version, found.as_of, copy.deepcopy(found.report))

    def put(self, key: tuple, counted: Counted) -> None:
        """Keeps `counted` unless a count started later is kept already (two counts of one
        campaign may finish in either order; the later start holds more events)."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found.as_of <= counted.as_of:
                self._items[key] = Counted(counted.version, counted.as_of, copy.deepcopy(counted.report))
            self._items.move_to_end(key)
            while len(self._items) > self.SIZE:
                self._items.popitem(last=False)

    def claim(self, key: tuple) -> bool:
        """True for the one caller that may start a recount of `key` now."""
        with self._lock:
            if key in self._running:
                return False
            self._running.add(key)
            return True

    def release(self, key: tuple) -> None:
        with self._lock:
            self._running.discard(key)


_KEPT = _Kept()
# A campaign's report is recounted at most this often per process: a page left open on a
# campaign that is sending would otherwise recount back to back (about 1.3 s of ClickHouse
# CPU per million events each time), competing with the inserts it waits for.
RECOUNT_EVERY_SECONDS = 10.0
log = logging.getLogger("altcraft.reports")


class Reports:
    """`store`: this thread's ClickHouse client. `opener`: makes a client of its own for a
    background recount (the driver's client is not thread-safe); without it `live` counts
    in the caller's thread like `campaign`."""

    def __init__(self, store: Analytics, reuse: bool = True, opener: Callable[[], Analytics] | None = None,
                 recount_every: float | None = None):
        self.store = store
        self.reuse = reuse
        self.opener = opener
        self.recount_every = RECOUNT_EVERY_SECONDS if recount_every is None else recount_every

    def version(self, account_id: int, campaign_id: int) -> int:
        """Changes with every INSERT of events of the campaign, never with a merge: the sum
        of a random number per insert (campaign_people.nonce). 0: no events."""
        return int(self.store.execute(
            f"SELECT sumMerge(nonce) FROM {self.store.table('campaign_people')} "
            f"WHERE account_id = %(a)s AND campaign_id = %(c)s", {"a": account_id, "c": campaign_id})[0][0] or 0)

    def _key(self, account_id: int, campaign_id: int) -> tuple:
        return (self.store.database, account_id, campaign_id)

    def _count(self, account_id: int, campaign_id: int) -> Counted:
        """Counts the campaign now and keeps the count. The version and time are read before
        counting: an insert during the count moves the version on, so the count is never
        taken for events it may not hold."""
        as_of = time.time()
        version = self.version(account_id, campaign_id)
        counted = Counted(version, as_of, self.compute(account_id, campaign_id))
        if version:
            _KEPT.put(self._key(account_id, campaign_id), counted)
        return counted

    def campaign(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        """The report of every event inserted so far (the API, aktool, the CSV export): the
        one kept for the same version of the campaign's events when this process has it (a
        report of a campaign nothing was inserted into since is the same report, exactly),
        else counted now (and kept)."""
        if not self.reuse:
            return self.compute(account_id, campaign_id)
        version = self.version(account_id, campaign_id)
        kept = _KEPT.get(self._key(account_id, campaign_id))
        if version and kept is not None and kept.version == version:
            return kept.report
        return self._count(account_id, campaign_id).report

    def live(self, account_id: int, campaign_id: int) -> Live:
        """The report page's figures without waiting for a count of a large campaign: the
        kept report when nothing was inserted since; when events arrived since, the kept
        report with its time and a recount started in the background (`recounting`) once
        that count is `recount_every` seconds old, whose result a later view shows; counted
        here when nothing is kept (a first view)."""
        key = self._key(account_id, campaign_id)
        version = self.version(account_id, campaign_id)
        kept = _KEPT.get(key)
        if kept is None or not version or self.opener is None:
            counted = (kept if kept is not None and version and kept.version == version
                       else self._count(account_id, campaign_id))
            return Live(counted.report, counted.as_of, False)
        if kept.version == version:
            return Live(kept.report, kept.as_of, False)
        if time.time() - kept.as_of >= self.recount_every and _KEPT.claim(key):
            threading.Thread(target=self._recount, args=(account_id, campaign_id, key),
                             name=f"report-recount-{campaign_id}", daemon=True).start()
        return Live(kept.report, kept.as_of, True)

    def _recount(self, account_id: int, campaign_id: int, key: tuple) -> None:
        try:
            store = self.opener()
            try:
                Reports(store)._count(account_id, campaign_id)
            finally:
                store.close()
        except Exception:  # noqa: BLE001 - the page keeps the older figures and the next view tries again
            log.exception("recounting the report of campaign %s of account %s failed", campaign_id, account_id)
        finally:
            _KEPT.release(key)

    def compute(self, account_id: int, campaign_id: int) -> dict[str, Any]:
        """Two queries over the campaign's aggregates (schema/clickhouse.py), whatever the
        number of its events: the event-id sets per hour and group, the profile-id sets
        per group merged into the unions the funnel needs."""
        params = {"a": account_id, "c": campaign_id}
        where = "account_id = %(a)s AND campaign_id = %(c)s"
        # kind -> [total, total_human, unique, unique_human]; link_id -> the same and a url
        by_kind: dict[str, list[int]] = {}
        by_link: dict[int, list[Any]] = {}
        hours: dict[int, dict[str, Any]] = {}
        for hour, kind, link_id, is_bot, count, url in self.store.execute(
                f"SELECT toUInt32(hour), kind, link_id, is_bot, uniqExactMerge(events), anyMerge(url) "
                f"FROM {self.store.table('campaign_hourly')} WHERE {where} "
                f"GROUP BY hour, kind, link_id, is_bot", params):
            # an event id lies in one group only: the groups' counts add up exactly
            human = 0 if is_bot else int(count)
            totals = by_kind.setdefault(kind, [0, 0, 0, 0])
            totals[0] += count
            totals[1] += human
            slot = hours.setdefault(int(hour), {"hour": _hour_iso(int(hour))}).setdefault(kind, [0, 0])
            slot[0] += count
            slot[1] += human
            if kind == "click":
                link = by_link.setdefault(int(link_id), [0, 0, 0, 0, ""])
                link[0] += count
                link[1] += human
                link[4] = link[4] or url
        # profiles are counted in unions: per kind, per link of a click, and `sent` across
        # the delivery kinds; each state row feeds the groups it belongs to
        sent = 0
        for group, uniq, uniq_human in self.store.execute(
                f"SELECT g, uniqExactMerge(profiles), uniqExactMergeIf(profiles, is_bot = 0) "
                f"FROM {self.store.table('campaign_people')} "
                f"ARRAY JOIN [kind, if(kind IN %(delivery)s, '{_SENT}', ''), "
                f"if(kind = 'click', concat('{_LINK}', toString(link_id)), '')] AS g "
                f"WHERE {where} AND g != '' GROUP BY g", {**params, "delivery": tuple(DELIVERY_KINDS)}):
            if group == _SENT:
                sent = int(uniq)
            elif group.startswith(_LINK):
                link = by_link.setdefault(int(group[len(_LINK):]), [0, 0, 0, 0, ""])
                link[2], link[3] = int(uniq), int(uniq_human)
            else:
                totals = by_kind.setdefault(group, [0, 0, 0, 0])
                totals[2], totals[3] = int(uniq), int(uniq_human)
        zero = [0, 0, 0, 0]

        def people(kind: str) -> int:
            return int(by_kind.get(kind, zero)[2])

        def actions(kind: str) -> dict[str, dict[str, int]]:
            total, total_human, uniq, uniq_human = by_kind.get(kind, zero)
            return {"unique": _both(uniq, uniq_human), "total": _both(total, total_human)}

        links = [
            {"link_id": link_id, "url": url,
             "clicks": {"unique": _both(uniq, uniq_human), "total": _both(total, total_human)}}
            for link_id, (total, total_human, uniq, uniq_human, url) in sorted(by_link.items())
        ]
        timeline = []
        for hour in sorted(hours):
            slot = hours[hour]
            timeline.append({key: (value if key == "hour" else _both(*value)) for key, value in sorted(
                slot.items(), key=lambda item: (item[0] != "hour", item[0]))})
        return {
            "account_id": account_id,
            "campaign_id": campaign_id,
            "sent": int(sent),
            "delivered": people("delivered"),
            "deferred": people("deferred"),
            "bounced": {"hard": people("bounced_hard"), "soft": people("bounced_soft")},
            "dropped": people("dropped"),
            "opened": actions("open"),
            "clicked": actions("click"),
            "unsubscribed": people("unsubscribe"),
            "resubscribed": people("subscribe"),
            "complaints": 0,
            "notes": [COMPLAINTS_NOTE],
            "links": links,
            "timeline": timeline,
        }


def ab_variants(store: Analytics, campaign: dict[str, Any]) -> dict[str, Any] | None:
    """An A/B campaign's test group per variant: sent, unique human openers and clickers (the
    winner's rule). Events carry no variant: each profile's variant is the deterministic
    split of domain/abtest.py, so this reads the campaign's distinct profiles per kind and
    attributes them here (the 18.16 events schema is unchanged). None without a test."""
    from altcraft.domain import abtest

    ab = campaign.get("ab")
    if not ab:
        return None
    n = len(ab["variants"])
    kinds = {"sent": tuple(DELIVERY_KINDS), "opened": ("open",), "clicked": ("click",)}
    out = [{"variant": abtest.label(i), **ab["variants"][i], "sent": 0, "opened": 0, "clicked": 0}
           for i in range(n)]
    for name, wanted in kinds.items():
        human = "" if name == "sent" else " AND is_bot = 0"
        rows = store.execute(
            f"SELECT DISTINCT profile_id FROM {store.table('events')} WHERE account_id = %(a)s "
            f"AND campaign_id = %(c)s AND kind IN %(k)s{human}",
            {"a": campaign["account_id"], "c": campaign["id"], "k": wanted})
        for i, count in enumerate(abtest.scores(campaign["id"], ab["test_share"], n, (r[0] for r in rows))):
            out[i][name] = count
    winner = ab.get("winner")
    return {"phase": ab["phase"], "metric": ab["metric"], "test_share": ab["test_share"],
            "winner": abtest.label(winner) if winner is not None else None, "variants": out}


def profile_timeline(store: Analytics, account_id: int, profile_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """A profile's newest events (deliveries, opens, clicks, unsubscribes), newest first.

    Bounded by `limit`. The events table is ordered by account and campaign, not profile, so
    this reads the account's part of the table: fine at today's sizes, a candidate for a
    projection or a per-profile table when accounts hold hundreds of millions of events.
    Copies of a redelivered event (same event_id, before ClickHouse merges them) show once."""
    rows = store.execute(
        f"SELECT event_id, any(event_time) AS at, any(kind), any(campaign_id), any(url), any(is_bot) "
        f"FROM {store.table('events')} WHERE account_id = %(a)s AND profile_id = %(p)s "
        f"GROUP BY event_id ORDER BY at DESC LIMIT %(n)s",
        {"a": account_id, "p": profile_id, "n": int(limit)})
    return [{"time": at.replace(tzinfo=timezone.utc), "kind": kind, "campaign_id": int(campaign),
             "url": url, "is_bot": bool(bot)} for _id, at, kind, campaign, url, bot in rows]


# -- hourly account statistics (SSDB stats) ---------------------------------------------
#
# Altcraft keeps hourly statistics per account in SSDB. Here: one hash per account and hour,
#   ak:stats:hourly:<account_id>:<YYYYMMDDHH>  field <kind> and <kind>:human -> count
# and a sorted set ak:stats:hours:<account_id> of the hours that have a hash (score = epoch).
# procactions recomputes the hours a batch touched from ClickHouse and writes the absolute
# counts, so a redelivered batch or a crash never makes them drift (an increment would).
# Only strings, hashes and sorted sets are used: SSDB speaks that subset of Redis.

HOURLY_KINDS = ACTION_KINDS + DELIVERY_KINDS


def hour_key(account_id: int, hour_epoch: int) -> str:
    return f"ak:stats:hourly:{account_id}:{time.strftime('%Y%m%d%H', time.gmtime(hour_epoch))}"


def hours_key(account_id: int) -> str:
    return f"ak:stats:hours:{account_id}"


class HourlyStats:
    def __init__(self, kv: KVStore):
        self.client = kv.client

    def refresh(self, store: Analytics, touched: Iterable[tuple[int, int]]) -> int:
        """Recomputes the (account_id, hour epoch) pairs from ClickHouse; returns hashes written."""
        pairs = sorted(set(touched))
        if not pairs:
            return 0
        accounts = sorted({a for a, _ in pairs})
        start, end = min(h for _, h in pairs), max(h for _, h in pairs) + 3600
        rows = store.execute(
            f"SELECT account_id, intDiv(toUInt32(event_time), 3600) * 3600 AS hour, kind, "
            f"uniqExact(event_id), uniqExactIf(event_id, is_bot = 0) FROM {store.table('events')} "
            f"WHERE account_id IN %(accounts)s AND event_time >= toDateTime(%(start)s) "
            f"AND event_time < toDateTime(%(end)s) GROUP BY account_id, hour, kind",
            {"accounts": tuple(accounts), "start": start, "end": end})
        wanted = set(pairs)
        # every field every time: a hash is replaced whole (SSDB has no DEL for hashes)
        blank = {f: 0 for kind in HOURLY_KINDS for f in (kind, f"{kind}:human")}
        values: dict[tuple[int, int], dict[str, int]] = {p: dict(blank) for p in pairs}
        seen: set[tuple[int, int]] = set()
        for account_id, hour, kind, total, human in rows:
            key = (int(account_id), int(hour))
            if key in wanted and kind in HOURLY_KINDS:
                values[key][kind] = int(total)
                values[key][f"{kind}:human"] = int(human)
                seen.add(key)
        pipe = self.client.pipeline(transaction=False)
        for (account_id, hour), counts in values.items():
            if (account_id, hour) in seen:
                pipe.hset(hour_key(account_id, hour), mapping=counts)
                pipe.zadd(hours_key(account_id), {time.strftime("%Y%m%d%H", time.gmtime(hour)): hour})
        pipe.execute()
        return len(seen)

    def get(self, account_id: int, since: int, until: int) -> list[dict[str, Any]]:
        """Hours in [since, until) (epoch seconds) that have statistics, oldest first."""
        out = []
        for member, score in self.client.zrangebyscore(hours_key(account_id), since, until - 1, withscores=True):
            raw = self.client.hgetall(hour_key(account_id, int(score)))
            counts = {k.decode(): int(v) for k, v in raw.items()}
            out.append({"hour": _hour_iso(int(score)), **{
                kind: _both(counts.get(kind, 0), counts.get(f"{kind}:human", 0))
                for kind in HOURLY_KINDS if counts.get(kind)}})
        return out
