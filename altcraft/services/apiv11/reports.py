"""Account API: campaign reports (ClickHouse) and hourly account statistics (SSDB stats)."""

from __future__ import annotations

import threading
import time
from typing import Optional

from pydantic import Field

from altcraft.domain.reports import HourlyStats, Reports
from altcraft.http.apiv11 import Params
from altcraft.services.apiv11 import api
from altcraft.stores import kv
from altcraft.stores.analytics import Analytics

TAG = "reports"
# A ClickHouse client is not thread-safe: one per gthread worker thread, and per set of
# connection settings (a test process serves several configurations one after another).
_local = threading.local()


def _cached(kind: str, key: tuple, make):
    cache = _local.__dict__.setdefault(kind, {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _analytics(ctx) -> Analytics:
    ch = ctx.config.CLICKHOUSE_SYSTEM
    return _cached("analytics", (ch.HOST, ch.PORT, ch.USER, ch.DATABASE_NAME),
                   lambda: Analytics(ch))


def _stats(ctx) -> HourlyStats:
    c = ctx.config
    return _cached("stats", (c.SSDB_STATS_IP, c.SSDB_STATS_PORT), lambda: HourlyStats(kv.ssdb(c, "stats")))


UNTIL_MAX = 4_102_444_800  # 2100-01-01: well inside the DateTime range of the statistics store


class CampaignReport(Params):
    id: int = Field(..., ge=1, description="campaign id")


class HourlyReport(Params):
    hours: int = Field(24, ge=1, le=24 * 62, description="the last N hours (UTC), the current one included")
    until: Optional[int] = Field(None, ge=0, le=UNTIL_MAX,
                                 description="end of the period, unix seconds (default: now)")


@api.endpoint("campaigns/report", CampaignReport, scope="account", tag=TAG,
              summary="Campaign report: sent, delivered, bounces, opens and clicks (unique/total, "
                      "human/all), unsubscribes, complaints, per link, per hour")
def campaigns_report(ctx, principal, p: CampaignReport):
    campaign = ctx.campaigns.get(principal.account_id, p.id)  # another account's: 404, not zeros
    store = _analytics(ctx)
    report = Reports(store).campaign(principal.account_id, p.id)
    if campaign.get("ab"):
        from altcraft.domain.reports import ab_variants
        report["ab"] = ab_variants(store, campaign)
    return report


@api.endpoint("reports/hourly", HourlyReport, scope="account", tag=TAG, returns_list=True,
              summary="Hourly account statistics (events per kind, all and human)")
def reports_hourly(ctx, principal, p: HourlyReport):
    until = (p.until if p.until is not None else int(time.time())) // 3600 * 3600 + 3600
    rows = _stats(ctx).get(principal.account_id, until - p.hours * 3600, until)
    return rows, len(rows)
