"""One batch of events into the platform: ClickHouse first, then what the events change.

procactions hands every batch it took from the broker to `EventWriter.write` and
acknowledges the batch only when it returns. The order inside matters:

  1. bot timing: clicks too close to the message's delivery or to an open are flagged
     (botfilter.flag_fast_clicks; earlier events are looked up in ClickHouse);
  2. one INSERT of the whole batch into `events` (ClickHouse wants few, large inserts);
  3. profile effects: unsubscribe / subscribe / hard bounce (effects.py; idempotent and
     ordered by event time, so a redelivered batch changes nothing twice);
  4. hourly account statistics for the hours the batches touched, recomputed from
     ClickHouse and written as absolute values into SSDB, at most once per STATS_EVERY
     seconds, and less often when recounting takes long (an hour of a big campaign: 250 ms
     at 700,000 events on the bench machine), so that it takes at most STATS_SHARE of the
     writer's time (a failure here is retried later; it does not hold events back). A worker
     that starts recomputes the last CATCH_UP_HOURS hours first, which covers the hours
     touched by batches acknowledged just before a crash.

A failure in 1-3 raises: the batch is not acknowledged and comes back from the broker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone

from altcraft.domain import botfilter
from altcraft.domain.effects import STATUS_OF, Effects
from altcraft.domain.errors import NotFound
from altcraft.domain.events import COLUMNS, Event, columns
from altcraft.domain.reports import HourlyStats
from altcraft.stores.analytics import Analytics

log = logging.getLogger("altcraft.ingest")

PROFILES_CACHE_SECONDS = 60.0
STATS_EVERY = 1.0
STATS_SHARE = 0.1  # at most this share of the writer's time recounting hours (batches wait meanwhile)
CATCH_UP_HOURS = 2
_ACCOUNT_ID, _EVENT_TIME = COLUMNS.index("account_id"), COLUMNS.index("event_time")  # unix seconds


class EventWriter:
    def __init__(self, analytics: Analytics, profiles_factory, stoplist, stats: HourlyStats | None):
        self.analytics = analytics
        self._profiles_factory = profiles_factory
        self._profiles: dict[tuple[int, int], tuple[float, object]] = {}
        self.effects = Effects(self._cached_profiles, stoplist)
        self.stats = stats
        self._dirty: set[tuple[int, int]] = set()
        self._stats_at = 0.0
        self._stats_wait = STATS_EVERY
        self.written = 0

    def _cached_profiles(self, account_id: int, db_id: int):
        key = (account_id, db_id)
        hit = self._profiles.get(key)
        if hit is not None and time.monotonic() - hit[0] < PROFILES_CACHE_SECONDS:
            if isinstance(hit[1], Exception):
                raise hit[1]
            return hit[1]
        try:
            value: object = self._profiles_factory(account_id, db_id)
        except (NotFound, ValueError) as exc:
            self._profiles[key] = (time.monotonic(), exc)
            raise
        self._profiles[key] = (time.monotonic(), value)
        return value

    def _stored_before(self, clicks: list[Event], since: datetime, until: datetime
                       ) -> Iterable[tuple[int, str, str, datetime, object]]:
        rows = self.analytics.execute(
            f"SELECT campaign_id, profile_id, kind, toUInt32(event_time), event_id FROM {self.analytics.table('events')} "
            f"WHERE account_id IN %(a)s AND campaign_id IN %(c)s AND kind IN ('delivered', 'open') "
            f"AND profile_id IN %(p)s AND event_time >= toDateTime(%(since)s) AND event_time <= toDateTime(%(until)s)",
            {"a": tuple({c.account_id for c in clicks}), "c": tuple({c.campaign_id for c in clicks}),
             "p": tuple({c.profile_id for c in clicks}), "since": int(since.timestamp()),
             "until": int(until.timestamp()) + 1})
        for campaign_id, profile_id, kind, epoch, event_id in rows:
            yield (int(campaign_id), profile_id, kind, datetime.fromtimestamp(epoch, timezone.utc),
                   event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)))

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        botfilter.flag_fast_clicks(events, self._stored_before)
        table = columns(events)  # after the bot flags: is_bot and bot_reason are final
        self.analytics.insert("events", COLUMNS, table, columnar=True)
        for event in events:
            if event.kind in STATUS_OF:
                self.effects.apply(event)
        self.written += len(events)
        self._dirty |= {(a, at - at % 3600) for a, at in zip(table[_ACCOUNT_ID], table[_EVENT_TIME])}
        self.refresh_stats()

    def refresh_stats(self, force: bool = False) -> None:
        if self.stats is None or not self._dirty:
            return
        if not force and time.monotonic() - self._stats_at < self._stats_wait:
            return
        began = time.monotonic()
        try:
            self.stats.refresh(self.analytics, self._dirty)
            self._dirty.clear()
        except Exception as exc:  # SSDB away: the counts are recomputed with a later batch
            log.warning("hourly statistics not updated (%s); retried later", type(exc).__name__)
        self._stats_at = time.monotonic()
        took = self._stats_at - began
        self._stats_wait = max(STATS_EVERY, took * (1 - STATS_SHARE) / STATS_SHARE)

    def catch_up(self) -> None:
        """Recompute the statistics of the last CATCH_UP_HOURS hours (at start)."""
        if self.stats is None:
            return
        rows = self.analytics.execute(
            f"SELECT DISTINCT account_id, intDiv(toUInt32(event_time), 3600) * 3600 "
            f"FROM {self.analytics.table('events')} WHERE event_time >= toDateTime(%(since)s)",
            {"since": int(time.time()) // 3600 * 3600 - (CATCH_UP_HOURS - 1) * 3600})
        self._dirty |= {(int(a), int(h)) for a, h in rows}
        self.refresh_stats(force=True)
