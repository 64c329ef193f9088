"""The campaign report's aggregates (schema/clickhouse.py: campaign_hourly, campaign_people)
on the real ClickHouse 18.16: a redelivered copy of an event, inserted again before any
merge, is still counted once; the report read from the aggregates equals the same figures
counted over the raw events and the figures of the events as generated; the back-fill of an
upgrade (and one interrupted halfway) and a rebuild after a restore give the same, and a
second migrate changes nothing."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft.domain.events import COLUMNS, DELIVERY_KINDS
from altcraft.domain.reports import Reports
from altcraft.schema import clickhouse
from altcraft.stores.analytics import Analytics
from tests.lib.report_reference import expected, raw_figures, report_figures
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration

ACCOUNT, CAMPAIGN, OTHER = 41, 7, 8
KINDS = ("delivered", "delivered", "delivered", "deferred", "bounced_soft", "bounced_hard", "dropped",
         "open", "open", "click", "click", "unsubscribe", "subscribe")


def generated(count: int, rng: random.Random) -> list[tuple]:
    """`count` events (rows in COLUMNS order) over 5 UTC hours, 150 profiles, 3 links, 10%
    of opens and clicks from bots; one in ten of another campaign."""
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0, tzinfo=None) - timedelta(hours=6)
    rows = []
    for _ in range(count):
        kind = rng.choice(KINDS)
        link = rng.randrange(1, 4) if kind == "click" else 0
        bot = 1 if kind in ("open", "click") and rng.random() < 0.1 else 0
        rows.append((uuid.uuid4(), start + timedelta(seconds=rng.randrange(5 * 3600)), ACCOUNT, 1, kind, "email",
                     OTHER if rng.random() < 0.1 else CAMPAIGN, f"p{rng.randrange(150)}", 1, 1, link,
                     f"https://shop.example/{link}" if link else "", bot, "scanner" if bot else "", "", "", ""))
    return rows


def figures_of(rows: list[tuple]) -> dict:
    """The report's figures computed here, in Python, from the distinct generated events."""
    col = {name: i for i, name in enumerate(COLUMNS)}
    events = {r[col["event_id"]]: r for r in rows if r[col["campaign_id"]] == CAMPAIGN}.values()
    kinds: dict[str, list] = {}
    links: dict[int, list] = {}
    hours: dict[tuple[int, str], list[int]] = {}
    for r in events:
        kind, human, profile = r[col["kind"]], not r[col["is_bot"]], r[col["profile_id"]]
        k = kinds.setdefault(kind, [0, 0, set(), set()])
        k[0] += 1
        k[1] += human
        k[2].add(profile)
        if human:
            k[3].add(profile)
        epoch = int(r[col["event_time"]].replace(tzinfo=timezone.utc).timestamp()) // 3600 * 3600
        h = hours.setdefault((epoch, kind), [0, 0])
        h[0] += 1
        h[1] += human
        if kind == "click":
            link = links.setdefault(r[col["link_id"]], [r[col["url"]], 0, 0, set(), set()])
            link[1] += 1
            link[2] += human
            link[3].add(profile)
            if human:
                link[4].add(profile)
    sent = {r[col["profile_id"]] for r in events if r[col["kind"]] in DELIVERY_KINDS}
    return expected({
        "kinds": {kind: (t, th, len(u), len(uh)) for kind, (t, th, u, uh) in kinds.items()},
        "sent": len(sent),
        "links": {link: (url, t, th, len(u), len(uh)) for link, (url, t, th, u, uh) in links.items()},
        "hours": {key: tuple(value) for key, value in hours.items()},
    })


@pytest.fixture
def store(config):
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    clickhouse.migrate(store)
    yield store
    store.execute(f"DROP DATABASE IF EXISTS `{store.database}`")
    store.close()


def report(store) -> dict:
    return report_figures(Reports(store).campaign(ACCOUNT, CAMPAIGN))


def test_a_redelivered_event_is_counted_once_and_the_aggregates_equal_the_raw_counts(store):
    rng = random.Random(12)
    rows = generated(1200, rng)
    redelivered = rng.sample(rows, 300)
    for table in ("events", "campaign_hourly", "campaign_people"):  # every copy stays in its own part
        store.execute(f"SYSTEM STOP MERGES {store.table(table)}")
    for batch in (rows[:500], rows[500:], redelivered, redelivered[:40] * 2):  # copies in one insert too
        store.insert("events", COLUMNS, batch)
    stored = store.execute(f"SELECT count(), uniqExact(event_id) FROM {store.table('events')}")[0]
    assert stored == (1200 + 300 + 80, 1200)  # the copies are there, not merged away

    truth = figures_of(rows)
    assert truth["kinds"]["open"][0] > 0 and truth["links"] and len(truth["hours"]) >= 5
    assert report(store) == truth
    assert expected(raw_figures(store, ACCOUNT, CAMPAIGN)) == truth

    for table in ("events", "campaign_hourly", "campaign_people"):  # merged: still the same
        store.execute(f"SYSTEM START MERGES {store.table(table)}")
        store.execute(f"OPTIMIZE TABLE {store.table(table)} FINAL")
    assert report(store) == truth


def test_upgrade_backfill_interrupted_backfill_and_rebuild_count_each_event_once(store):
    rng = random.Random(13)
    rows = generated(800, rng)
    store.insert("events", COLUMNS, rows)
    store.insert("events", COLUMNS, rows[:100])  # a redelivered batch
    truth = figures_of(rows)

    # before the upgrade: events, and neither the views nor their tables
    for view in clickhouse.VIEWS:
        store.execute(f"DROP TABLE {store.table(view.name)}")
        store.execute(f"DROP TABLE {store.table(view.target.name)}")
    assert store.execute(f"EXISTS TABLE {store.table('campaign_people')}")[0][0] == 0
    changes = clickhouse.migrate(store)
    assert ("view campaign_hourly_mv", "create, back-fill campaign_hourly") in changes
    assert ("view campaign_people_mv", "create, back-fill campaign_people") in changes
    assert report(store) == truth
    assert clickhouse.migrate(store) == []  # a second migrate: nothing to do, nothing doubled
    for view in clickhouse.VIEWS:  # a back-fill run again adds nothing either
        clickhouse.backfill(store, view)
    assert report(store) == truth

    # killed during a back-fill: the pending view is there, the real one not yet
    view = clickhouse.VIEWS[0]
    store.execute(f"DROP TABLE {store.table(view.name)}")
    store.execute(view.create_sql(store, name=view.name + clickhouse.PENDING))
    late = generated(50, rng)
    store.insert("events", COLUMNS, late)  # arrives while no real view exists: the pending one takes it
    assert clickhouse.migrate(store) == [(f"view {view.name}", f"create, back-fill {view.target.name}")]
    names = {r[0] for r in store.execute("SELECT name FROM system.tables WHERE database = %(d)s",
                                         {"d": store.database})}
    assert view.name in names and view.name + clickhouse.PENDING not in names
    truth = figures_of(rows + late)
    assert report(store) == truth

    # after a restore: emptied and refilled from events
    clickhouse.rebuild(store)
    assert report(store) == truth == expected(raw_figures(store, ACCOUNT, CAMPAIGN))


def test_a_backup_leaves_the_aggregates_out_and_a_restore_rebuilds_them(store, config, tmp_path):
    from altcraft.backup import clickhouse as backup

    rng = random.Random(14)
    rows = generated(400, rng)
    store.insert("events", COLUMNS, rows)
    section = backup.dump(config.CLICKHOUSE_SYSTEM, tmp_path / "ch", lambda *_: None)
    assert set(section["tables"]) == {"events", "audit"}  # states have no portable text form
    store.insert("events", COLUMNS, generated(100, rng))  # after the backup: gone after the restore

    backup.restore(config.CLICKHOUSE_SYSTEM, tmp_path / "ch", section, lambda *_: None)
    assert store.execute(f"SELECT uniqExact(event_id) FROM {store.table('events')}")[0][0] == 400
    assert report(store) == figures_of(rows) == expected(raw_figures(store, ACCOUNT, CAMPAIGN))
    assert clickhouse.migrate(store) == []  # the views are back as migrate makes them


def test_a_report_is_reused_only_while_no_event_of_its_campaign_was_inserted(store, monkeypatch):
    rng = random.Random(15)
    rows = generated(300, rng)
    store.insert("events", COLUMNS, rows)
    computed = []
    compute = Reports.compute
    monkeypatch.setattr(Reports, "compute", lambda self, a, c: computed.append(c) or compute(self, a, c))

    first = Reports(store).campaign(ACCOUNT, CAMPAIGN)
    assert Reports(store).campaign(ACCOUNT, CAMPAIGN) == first and computed == [CAMPAIGN]  # reused
    store.execute(f"OPTIMIZE TABLE {store.table('campaign_people')} FINAL")  # a merge: same version
    assert Reports(store).campaign(ACCOUNT, CAMPAIGN) == first and computed == [CAMPAIGN]

    store.insert("events", COLUMNS, rows[:20])  # a redelivered batch: counted anew, the same figures
    assert Reports(store).campaign(ACCOUNT, CAMPAIGN) == first and len(computed) == 2
    more = [r for r in generated(40, rng) if r[COLUMNS.index("campaign_id")] == CAMPAIGN]
    store.insert("events", COLUMNS, more)  # new events: never the older report
    assert report(store) == figures_of(rows + more) != report_figures(first) and len(computed) == 3
    other = [r[:6] + (OTHER,) + r[7:] for r in generated(5, rng)]
    store.insert("events", COLUMNS, other)  # another campaign's events: this one's version stays
    assert report(store) == figures_of(rows + more) and len(computed) == 3


def finished(reports: Reports):
    """The page's figures once no recount is under way, else None."""
    live = reports.live(ACCOUNT, CAMPAIGN)
    return None if live.recounting else live


def test_the_page_shows_the_last_count_with_its_time_while_one_recount_runs_in_the_background(
        store, config, monkeypatch):
    """Reports.live (the report page): after new events it answers the last count, saying
    its time and that a recount runs; one recount per campaign however often it is asked;
    the recount's figures are exact (a redelivered batch adds nothing, new events count)."""
    rng = random.Random(16)
    rows = generated(300, rng)
    store.insert("events", COLUMNS, rows)
    reports = Reports(store, opener=lambda: Analytics(config.CLICKHOUSE_SYSTEM), recount_every=0)
    first = reports.live(ACCOUNT, CAMPAIGN)  # nothing kept yet: counted in the caller's thread
    assert not first.recounting and report_figures(first.report) == figures_of(rows)
    assert reports.live(ACCOUNT, CAMPAIGN) == first  # nothing new: the same count, not recounting

    release = threading.Event()
    recounts = []
    compute = Reports.compute

    def held(self, a, c):  # a background recount waits for the test; the caller's thread does not
        if threading.current_thread() is not threading.main_thread():
            recounts.append(c)
            assert release.wait(30)
        return compute(self, a, c)
    monkeypatch.setattr(Reports, "compute", held)

    more = [r for r in generated(60, rng) if r[COLUMNS.index("campaign_id")] == CAMPAIGN]
    store.insert("events", COLUMNS, rows[:30] + more)  # a redelivered batch and new events
    # not before the last count is recount_every old: the page says recounting, none runs yet
    patient = Reports(store, opener=lambda: Analytics(config.CLICKHOUSE_SYSTEM), recount_every=3600)
    assert patient.live(ACCOUNT, CAMPAIGN).recounting and not recounts
    for _ in range(3):
        shown = reports.live(ACCOUNT, CAMPAIGN)
        assert shown.recounting and (shown.as_of, shown.report) == (first.as_of, first.report)
    threads = [t for t in threading.enumerate() if t.name == f"report-recount-{CAMPAIGN}"]
    assert len(threads) == 1  # one recount, however often the page asks (held until released)
    wait_for(lambda: recounts, what="the background recount to start")
    release.set()
    done = wait_for(lambda: finished(reports), what="the recount to finish")
    assert report_figures(done.report) == figures_of(rows + more) != report_figures(first.report)
    assert done.as_of > first.as_of and len(recounts) == 1
    assert report(store) == figures_of(rows + more)  # the API's report is the same count

    store.insert("events", COLUMNS, rows[:10])  # only copies: recounted, the same figures
    assert reports.live(ACCOUNT, CAMPAIGN).recounting
    again = wait_for(lambda: finished(reports), what="the second recount to finish")
    assert report_figures(again.report) == figures_of(rows + more) and again.as_of > done.as_of
