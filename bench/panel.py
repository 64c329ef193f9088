"""The marketer's panel (webcontrol) at scale: page latency over real HTTP, with the same
store queries made directly as the reference.

    .venv/bin/python -m bench.panel [--profiles 1000000] [--events 1000000] [--requests 50]
                                    [--budget 60] [--pages list,deep,card,segment,report]
                                    [--reuse [--seed-only] [--drop]] [--profile] [--http-only PAGES]
                                    [--events-only]

1. A fresh account and profile database (key: email) with --profiles profiles, inserted with
   unordered insert_many in batches of 50,000 in the shape Profiles.upsert_prepared stores
   (every profile subscribed). With --reuse the data goes to the account
   bench-panel-<profiles>-<events> and is kept: a later --reuse run of the same size
   measures it without seeding (--seed-only seeds and stops; --drop removes it at the end).
2. A campaign (segment, template, sender: the domain's own add()) and --events events of it
   inserted into ClickHouse in batches: deliveries, opens and clicks (3 links, 5% bots) spread
   over the last 30 days across the seeded profiles.
3. webcontrol under akd (gunicorn, as production) on a loopback port; one editor signs in
   through /signin and one keep-alive connection asks each page up to --requests times: the
   profile list's first page, a deep page (after a key 100 profiles from the end), the
   profile card, the segment builder's live count (bounded) and the campaign report.
4. Reference, in the same run: the queries each page makes, made directly (pymongo and
   clickhouse-driver through the domain's own calls, no HTTP, Flask or templates), so the
   panel's own overhead shows, and each of a page's store calls timed alone. --profile: each
   page under cProfile inside webcontrol (in this process). Then the profile collection's
   indexes and the plan of each profile query: what FerretDB's explain() says it does, and
   what real MongoDB would do with those indexes.

--events-only: the profiles are not stored (their ids are made and the events name them),
for the report page alone, which reads no profile: it saves the documents store the million
inserts. With it the reference also times the report's figures counted over the raw events
(tests/lib/report_reference.py: the queries Reports.campaign made before the aggregates).

Pages: report is the campaign's report asked again and again with no new event (a process
answers it from the report it computed for that version of the campaign's events);
report-live inserts one new event of the campaign before each request (inside the timing),
as while a campaign runs: the page shows the figures of the last count with its time and
recounts in the background (Reports.live); the run reports how old the figures shown were
(age: the response's time minus their "as of"), the insert and the page's GET apart (the
insert is procactions' work in production), and, after the last request, waits for the
recount and checks that its figures equal the raw counts.

Loopback only. The last line is `p95_ms=list:<..>,deep:<..>,card:<..>,segment:<..>,report:<..>`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.panel")

from bench import _config  # noqa: E402
from bench.gen_profiles import CITIES, FIRST, LAST  # noqa: E402
from tests.lib.cli import run  # noqa: E402
from tests.lib.harness import make_config  # noqa: E402
from tests.lib.ports import free_port  # noqa: E402
from tests.lib.webpanel import PASSWORD, token_of  # noqa: E402

GOAL_MS = 300
SEGMENT = {"field_0": "city", "op_0": "eq", "value_0": "Kazan"}   # the builder's form, one row
EVENT_COLUMNS = ("event_id", "event_time", "account_id", "db_id", "kind", "channel", "campaign_id", "profile_id",
                 "resource_id", "sender_id", "link_id", "url", "is_bot", "bot_reason", "ip", "user_agent", "detail")
KINDS = (("delivered", 0.6), ("open", 0.28), ("click", 0.1), ("bounced_soft", 0.02))


class Browser:
    """One keep-alive HTTP connection with a cookie jar of one site (enough for the panel)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)  # FerretDB pages take minutes
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # gunicorn closes a keep-alive connection idle for its keepalive seconds (between
            # pages, while the reference runs): open a new one
            self.connection.close()
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
        payload = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        return response.status, payload

    def sign_in(self, login: str) -> None:
        _, page = self.request("GET", "/signin")
        status, body = self.request("POST", "/signin", {"login": login, "password": PASSWORD,
                                                       "csrf_token": token_of(page)})
        if status != 302:
            sys.exit(f"bench/panel.py: sign-in answered {status}: {body[:300]!r}")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered) * 1000,
            "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
            "max": ordered[-1] * 1000}


def timed(call, repeat: int, budget: float, minimum: int) -> list[float]:
    """Up to `repeat` timings of call(), fewer (at least `minimum`) once `budget` seconds are
    spent. The first call warms up (connection pools, templates, caches) and is not counted,
    unless it alone took a tenth of the budget: a page that slow is measured, not warmed."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    samples: list[float] = [first] if first > budget / 10 else []
    ends = time.monotonic() + budget - (first if samples else 0)
    while len(samples) < repeat and (len(samples) < minimum or time.monotonic() < ends):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def seed_profiles(profiles, count: int, rng: random.Random) -> tuple[float, list[str]]:
    """`count` profiles inserted with unordered insert_many in batches of 50,000, in the shape
    Profiles.upsert_prepared stores (a random hex id, the fields, one subscription, the
    stamps): upsert_prepared on a fresh database does just this, but makes its ids itself,
    and reading a million ids back costs the stand-in minutes. Returns the seconds and the
    ids."""
    started = time.perf_counter()
    stamp = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    subscriptions = [{"resource_id": 1, "channel": "email", "status": "subscribed", "changed_at": stamp}]
    ids: list[str] = []
    batch = []
    for i in range(count):
        profile_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        ids.append(profile_id)
        batch.append({"_id": profile_id,
                      "data": {"email": f"user{i}.{rng.randrange(10**6)}@example{i % 97}.com",
                               "first_name": rng.choice(FIRST), "last_name": rng.choice(LAST),
                               "phone": f"+79{rng.randrange(10**9):09d}", "city": rng.choice(CITIES),
                               "score": rng.randrange(1000)},
                      "subscriptions": subscriptions, "created_at": stamp, "updated_at": stamp})
        if len(batch) == 50_000 or i == count - 1:
            profiles.collection.insert_many(batch, ordered=False)
            batch = []
            print(f"\r  profiles: {i + 1:,}/{count:,} ({(i + 1) / (time.perf_counter() - started):,.0f}/s)",
                  end="", flush=True)
    print()
    profiles.get(profile_id=ids[0])  # the domain reads the shape back
    return time.perf_counter() - started, ids


def profile_ids(count: int, rng: random.Random) -> list[str]:
    """The ids seed_profiles would store, without storing them (--events-only)."""
    return [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(count)]


def seed_events(store, account_id: int, db_id: int, campaign_id: int, sender_id: int,
                profile_ids: list[str], count: int, rng: random.Random, quiet: bool = False) -> float:
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    kinds, weights = zip(*KINDS)
    started = time.perf_counter()
    rows = []
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        link = rng.randrange(1, 4) if kind == "click" else 0
        bot = 1 if kind in ("open", "click") and rng.random() < 0.05 else 0
        rows.append((uuid.uuid4(), now - timedelta(seconds=rng.randrange(30 * 86400)), account_id, db_id, kind,
                     "email", campaign_id, profile_ids[i % len(profile_ids)], 1, sender_id, link,
                     f"https://example.com/offer/{link}" if link else "", bot, "scanner" if bot else "",
                     "127.0.0.1", "bench", ""))
        if len(rows) == 50_000 or i == count - 1:
            store.insert("events", EVENT_COLUMNS, rows)
            rows = []
            if not quiet:
                print(f"\r  events: {i + 1:,}/{count:,}", end="", flush=True)
    if not quiet:
        print()
    return time.perf_counter() - started


def ferretdb_says(explained: dict) -> str:
    """The part of FerretDB's explain() that says what it pushed down to its storage."""
    keys = ("filterPushdown", "sortPushdown", "limitPushdown")
    found = {k: explained[k] for k in keys if k in explained}
    planner = explained.get("queryPlanner", {})
    if isinstance(planner, dict):
        found.update({k: planner[k] for k in ("Pushdown", "PushdownFilter") if k in planner})
        if "winningPlan" in planner:
            found["winningPlan.stage"] = planner["winningPlan"].get("stage")
    return json.dumps(found, default=str) if found else json.dumps(explained, default=str)[:300]


def profile_pages(config, login: str, pages: dict[str, str], wanted: list[str], requests: int,
                  budget: float) -> None:
    """Where a page's time goes inside webcontrol: each page asked up to `requests` times (at
    least once, fewer when `budget` seconds are spent) through
    Flask's test client in this process under cProfile. Printed per page: the time in socket
    reads (waiting for a store's answer), the number of store round trips per request, and
    the functions of ours (altcraft.*) with the most time of their own."""
    import cProfile
    import pstats

    from altcraft import registry
    from altcraft.web.control import create_app
    from tests.lib.webpanel import signin

    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, login)
    print("\nwhere the time goes inside webcontrol (cProfile, Flask test client, in this process):")
    for name in wanted:
        profiler = cProfile.Profile()
        started, done = time.perf_counter(), 0
        profiler.enable()
        while done < requests and (done == 0 or time.perf_counter() - started < budget):
            client.get(pages[name])
            done += 1
        profiler.disable()
        wall = (time.perf_counter() - started) * 1000 / done
        stats = pstats.Stats(profiler).stats  # {(file, line, function): (cc, nc, tottime, cumtime, callers)}
        waiting = trips = clickhouse = 0.0
        ours: list[tuple[float, str]] = []
        for (path, _, function), (_, calls, own, cumulative, _) in stats.items():
            if "_socket.socket" in function and "recv" in function:  # a builtin: ('~', 0, "<method ...>")
                waiting += own  # pymongo reads its sockets from Python: the documents store
                trips += calls
            elif path.endswith("clickhouse_driver/client.py") and function == "execute":
                clickhouse += cumulative  # clickhouse-driver reads in compiled code: its whole call
            elif "/altcraft/" in path:
                ours.append((own, f"{Path(path).name}:{function}"))
        ours.sort(reverse=True)
        print(f"  {name:8} {wall:8.1f} ms/request (n={done}); documents store (socket reads) "
              f"{waiting * 1000 / done:.1f} ms ({trips / done:.0f} reads); ClickHouse (execute) "
              f"{clickhouse * 1000 / done:.1f} ms; ours (own time): "
              + ", ".join(f"{label} {own * 1000 / done:.1f}" for own, label in ours[:4]))


def seeded_name(args) -> str:
    """The account that --reuse seeds into and finds again: one per size."""
    return f"bench-panel-{args.profiles}-{args.events}" + ("-events-only" if args.events_only else "")


def reused(platform, args) -> dict | None:
    """The record of a complete earlier seeding of this size (--reuse), or None. An account of
    that name without the record is an interrupted seeding: dropped, to be seeded anew."""
    account = platform.accounts.collection.find_one({"name": seeded_name(args)})
    if account is None:
        return None
    record = platform.account_db(account["id"]).bench_panel.find_one({"_id": "seeded"})
    if record is not None:
        return record
    print(f"account {seeded_name(args)} holds an interrupted seeding: dropping its data and seeding anew")
    forget(platform, None, account["id"], rename=True)
    return None


def forget(platform, store, account_id: int, rename: bool = False) -> None:
    """Drops what a run seeded: the account's documents database and events. The account and
    its user stay (nothing deletes accounts); a reused one loses its name so the next
    --reuse run seeds anew."""
    platform.account_client.drop_database(platform.account_db(account_id).name)
    if store is not None:
        present = {r[0] for r in store.execute("SELECT name FROM system.tables WHERE database = %(db)s",
                                               {"db": store.database})}
        for table in ("events", "campaign_hourly", "campaign_people"):  # and the report aggregates
            if table in present:  # (a run of a version before them has none)
                store.execute(f"ALTER TABLE {store.table(table)} DELETE WHERE account_id = %(a)s", {"a": account_id})
    if rename:
        platform.accounts.collection.update_one(
            {"id": account_id}, {"$set": {"name": f"bench-panel-dropped-{uuid.uuid4().hex[:8]}"}})


def seed(platform, store, args) -> dict:
    """A fresh account, profile database, segment, template, sender and campaign, the profiles
    and the events; with --reuse under a fixed name and recorded (bench_panel.seeded) last,
    so a later --reuse run of the same size finds it complete."""
    from altcraft.web.control.segment_pages import condition_from_form

    rng = random.Random(1)
    tag = uuid.uuid4().hex[:8]
    name = seeded_name(args) if args.reuse else f"bench-panel-{tag}"
    account_id = platform.accounts.save(name=name)["id"]
    login = f"bench-{tag}"
    platform.users.add(account_id, login, PASSWORD, roles=["editor"], lang="en")
    database = platform.databases(account_id).add("bench", "email", [{"name": "score", "type": "integer"}])
    profiles = platform.profiles(account_id, database.id)
    if args.events_only:
        print(f"making {args.profiles:,} profile ids (--events-only: no profile is stored)", flush=True)
        started = time.perf_counter()
        ids = profile_ids(args.profiles, rng)
        profile_seconds = time.perf_counter() - started
    else:
        print(f"seeding {args.profiles:,} profiles (insert_many, batches of 50,000, fresh database)", flush=True)
        profile_seconds, ids = seed_profiles(profiles, args.profiles, rng)
    ids.sort()
    segment = platform.segments(account_id).add("Kazan", database.id, condition_from_form(SEGMENT))
    template = platform.templates(account_id).add("offer", "Hello {{ first_name }}", "<p>Hello</p>")
    sender = platform.senders.save(name=f"bench {tag}", from_email=f"news@{tag}.example", dkim_algorithm="none")
    platform.senders.assign(sender["id"], account_id)
    campaign = platform.campaigns.add(account_id, "bench offer", database.id, segment["id"], template["id"],
                                      sender_id=sender["id"], schedule={"type": "once", "at": "2099-01-01T00:00:00Z"})
    print(f"seeding {args.events:,} events (ClickHouse, batches of 50,000)", flush=True)
    # the card's profile gets its share too: every len(ids)-th event
    event_seconds = seed_events(store, account_id, database.id, campaign["id"], sender["id"], ids,
                                args.events, rng)
    print(f"seeded: {args.profiles:,} profiles in {profile_seconds:.1f}s "
          f"({args.profiles / profile_seconds:,.0f}/s), {args.events:,} events in {event_seconds:.1f}s", flush=True)
    record = {"_id": "seeded", "account_id": account_id, "login": login, "db_id": database.id,
              "segment_id": segment["id"], "campaign_id": campaign["id"],
              "deep_after": ids[-101],  # a key near the end: the next page holds the last 100 profiles
              "card_id": ids[len(ids) // 2], "profiles": args.profiles, "events": args.events,
              "profile_seconds": profile_seconds, "event_seconds": event_seconds,
              "seeded_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    if args.reuse:
        platform.account_db(account_id).bench_panel.insert_one(record)
    return record


# What real MongoDB does with each shape: the profile collection has the _id index and the
# unique key index data.<key> (altcraft/domain/databases.py); nothing else.
MONGODB_PLANS = {
    "list": "LIMIT 51 <- FETCH <- IXSCAN {_id: 1} bounds [MinKey, MaxKey]: the sort is the index order, "
            "no SORT stage, 51 keys and 51 documents read",
    "deep": "LIMIT 51 <- FETCH <- IXSCAN {_id: 1} bounds (after, MaxKey]: the same 51 reads at any depth",
    "card": "EXPRESS_IXSCAN/IDHACK on {_id: 1}: one key, one document",
    "segment": "COUNT <- LIMIT 10001 <- COLLSCAN filter {data.city: 'Kazan'}: no index on data.city "
               "(a condition may name any field; only the key is indexed), but the scan stops at the "
               "10,001st match (about 80,000 documents at 1 in 8); the sample LIMIT 5 <- COLLSCAN stops "
               "at the fifth match",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="requests per page (default 50)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds per page and side after which fewer requests are made (at least 3; default 60)")
    parser.add_argument("--min-requests", type=int, default=3,
                        help="requests per page and side at least, whatever the budget (default 3)")
    parser.add_argument("--http-only", default="", type=lambda text: {p.strip() for p in text.split(",") if p.strip()},
                        help="pages measured over HTTP only, without the direct reference (comma-separated): "
                             "for pages that take minutes on the stand-in")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each page inside webcontrol (cProfile, in this process)")
    parser.add_argument("--pages", default="list,deep,card,segment,report",
                        help="which pages to measure (comma-separated; default all five)")
    parser.add_argument("--workers", type=int, default=2, help="webcontrol's gunicorn workers")
    parser.add_argument("--config", help="main.json with the stores (default: the test harness)")
    parser.add_argument("--reuse", action="store_true",
                        help="seed into the account bench-panel-<profiles>-<events> and keep it; when a "
                             "complete earlier seeding of that size is there, measure it without seeding")
    parser.add_argument("--seed-only", action="store_true",
                        help="with --reuse: seed (unless seeded) and stop, measuring nothing")
    parser.add_argument("--drop", action="store_true",
                        help="with --reuse: drop the reused data at the end (default: kept)")
    parser.add_argument("--events-only", action="store_true",
                        help="store the events but not the profiles (their ids only): for --pages report")
    args = parser.parse_args()
    if (args.seed_only or args.drop) and not args.reuse:
        sys.exit("bench/panel.py: --seed-only and --drop go with --reuse")
    if args.profiles < 200 or args.events < 1 or args.requests < 1 or not 1 <= args.min_requests <= args.requests:
        sys.exit("bench/panel.py: --profiles at least 200, --events and --requests at least 1, "
                 "--min-requests 1 to --requests")
    wanted = [p.strip() for p in args.pages.split(",") if p.strip()]
    if args.events_only and set(wanted) - {"report", "report-live"}:
        sys.exit("bench/panel.py: --events-only stores no profiles: it goes with --pages report,report-live")
    unknown = set(wanted) - set(MONGODB_PLANS) - {"report", "report-live"}
    if unknown or not wanted:
        sys.exit(f"bench/panel.py: --pages: unknown {', '.join(sorted(unknown)) or '(none given)'}; "
                 "choose from list, deep, card, segment, report, report-live")

    from altcraft import config as cfg
    from altcraft.domain.reports import Reports, profile_timeline
    from altcraft.schema import migrate as migration
    from altcraft.stores.analytics import Analytics
    from altcraft.web.control.segment_pages import LIVE_COUNT_LIMIT, condition_from_form
    from altcraft.wiring import Platform
    from tests.lib.report_reference import expected, raw_figures, report_figures

    basedir = Path(tempfile.mkdtemp(prefix="altcraft-bench-panel-"))
    port = free_port()
    settings = json.loads(Path(args.config).read_text()) if args.config else make_config(_config.harness(), basedir)
    settings.update(BASEDIR=str(basedir), PROCESSES={"webcontrol": {"PORT": port, "WORKERS": args.workers}})
    if args.reuse and not args.config:
        # the harness's configuration names its databases after a random tag: a run that
        # reuses data must find the control and account databases of the run that seeded it
        settings.update(CONTROLDB_NAME="bench_panel_control", ACCOUNTDB_PREFIX="bench_panel_account_")
        # and its ClickHouse database: in a random one a reused run would find no events
        settings["CLICKHOUSE_SYSTEM"]["DATABASE_NAME"] = "bench_panel"
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(settings))
    config, _ = cfg.load(main_json)
    migration.run(config)
    platform = Platform(config)
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    seeded = reused(platform, args) if args.reuse else None
    if seeded is None:
        seeded = seed(platform, store, args)
    else:
        print(f"reusing the data seeded on {seeded['seeded_at']:%Y-%m-%d %H:%M} UTC into account "
              f"{seeded['account_id']} ({args.profiles:,} profiles, {args.events:,} events; seeding took "
              f"{seeded['profile_seconds']:.0f} s + {seeded['event_seconds']:.0f} s)", flush=True)
    if args.seed_only:
        print(f"seeded data kept in account {seeded['account_id']} ({seeded_name(args)})")
        return
    account_id, login = seeded["account_id"], seeded["login"]
    database = platform.databases(account_id).get(seeded["db_id"])
    profiles = platform.profiles(account_id, database.id)
    deep_after, card_id = seeded["deep_after"], seeded["card_id"]
    campaign = platform.campaigns.get(account_id, seeded["campaign_id"])
    segment = platform.segments(account_id).get(seeded["segment_id"])

    pages = {
        "list": f"/databases/{database.id}/profiles",
        "deep": f"/databases/{database.id}/profiles?after={deep_after}",
        "card": f"/databases/{database.id}/profiles/{card_id}",
        "segment": f"/databases/{database.id}/segments/count?{urllib.parse.urlencode(SEGMENT)}",
        "report": f"/campaigns/{campaign['id']}/report",
        "report-live": f"/campaigns/{campaign['id']}/report",
    }
    live_rng = random.Random(2)
    live_reports = Reports(store, opener=lambda: Analytics(config.CLICKHOUSE_SYSTEM))
    # the report page's call; a checkout before Reports.live (a "before" run) counts instead
    live_report = getattr(live_reports, "live", live_reports.campaign)
    inserts: list[float] = []  # report-live over HTTP: the insert and the GET of each request apart
    gets: list[float] = []
    ages: list[float] = []  # seconds between a recounting page's "as of" and its answer
    shown_recounting = [0]

    def one_more_event() -> None:
        """report-live: a new event of the campaign before each request, as while it runs,
        so the report is counted anew every time (the insert is inside the timing)."""
        started = time.perf_counter()
        seed_events(store, account_id, database.id, campaign["id"], campaign.get("sender_id") or 0,
                    [card_id], 1, live_rng, quiet=True)
        inserts.append(time.perf_counter() - started)
    condition = condition_from_form(SEGMENT)
    segments = platform.segments(account_id)
    reference = {
        "list": lambda: profiles.page(limit=50),
        "deep": lambda: profiles.page(after=deep_after, limit=50),
        "card": lambda: (profiles.get(profile_id=card_id), profile_timeline(store, account_id, card_id, limit=50)),
        "segment": lambda: segments.match(database.id, condition, 5, limit=LIVE_COUNT_LIMIT + 1),
        "report": lambda: (platform.campaigns.get(account_id, campaign["id"]),
                           Reports(store).campaign(account_id, campaign["id"])),
        "report-live": lambda: (one_more_event(), platform.campaigns.get(account_id, campaign["id"]),
                                live_report(account_id, campaign["id"])),
    }
    collection = profiles.collection
    live_query = segments.query({**segment, "condition": condition})
    steps = {  # each store call of a page alone, to see where the time goes
        "card": {"profile find_one {_id} (documents store)": lambda: profiles.get(profile_id=card_id),
                 "timeline, last 50 events (ClickHouse)":
                     lambda: profile_timeline(store, account_id, card_id, limit=50)},
        "segment": {f"count_documents, limit {LIVE_COUNT_LIMIT + 1:,}":
                        lambda: collection.count_documents(live_query, limit=LIVE_COUNT_LIMIT + 1),
                    "sample: find(...).limit(5)": lambda: list(collection.find(live_query).limit(5))},
        "report": {"campaign (documents store)": lambda: platform.campaigns.get(account_id, campaign["id"]),
                   "Reports.campaign, computed (ClickHouse, the aggregates)":
                       lambda: Reports(store, reuse=False).campaign(account_id, campaign["id"]),
                   "before the aggregates: the same figures over the raw events":
                       lambda: raw_figures(store, account_id, campaign["id"])},
    }
    breakdown: dict[str, dict[str, float]] = {name: {} for name in steps}
    if "report" in wanted:  # the page's figures are the raw counts', or the run measures nothing
        same = report_figures(Reports(store).campaign(account_id, campaign["id"])) == expected(
            raw_figures(store, account_id, campaign["id"]))
        print(f"the report (aggregates) equals the raw uniqExact counts over events: {'yes' if same else 'NO'}")
        if not same:
            sys.exit("bench/panel.py: the report's aggregates disagree with the events")
    results: dict[str, tuple[dict, dict]] = {}
    report_live_get: list = []  # the page's GET alone of report-live: percentiles, n
    try:
        started = run("akd", "start", "webcontrol", config=main_json, timeout=180)
        if started.returncode != 0:
            sys.exit(f"akd start webcontrol failed:\n{started.stdout}{started.stderr}")
        browser = Browser(port)
        browser.sign_in(login)
        for name in wanted:
            path = pages[name]

            def ask(path=path, name=name):
                if name == "report-live":
                    one_more_event()
                started = time.perf_counter()
                status, body = browser.request("GET", path)
                if status != 200:
                    sys.exit(f"bench/panel.py: {path} answered {status}: {body[:300]!r}")
                if name == "report-live":
                    gets.append(time.perf_counter() - started)
                    as_of = re.search(rb'data-as-of="(\d+)"', body)
                    if as_of and b'data-recounting="1"' in body:
                        shown_recounting[0] += 1
                        ages.append(time.time() - int(as_of.group(1)))

            print(f"  measuring {name} (up to {args.requests} requests each way)", flush=True)
            ours_samples = timed(ask, args.requests, args.budget, args.min_requests)
            direct_samples = ([float("nan")] if name in args.http_only
                              else timed(reference[name], args.requests, args.budget, args.min_requests))
            results[name] = (percentiles(ours_samples) | {"n": len(ours_samples)},
                             percentiles(direct_samples) | {"n": 0 if name in args.http_only else len(direct_samples)})
            ours, direct = results[name]  # as it comes: a long run leaves what it measured
            print(f"    HTTP p95 {ours['p95']:.1f} ms (n={ours['n']}), direct p95 {direct['p95']:.1f} ms "
                  f"(n={direct['n']})", flush=True)
            if name == "report-live":
                insert, get = percentiles(inserts[:len(gets)]), percentiles(gets)
                print(f"    over HTTP, apart: the insert p50 {insert['p50']:.1f} ms, p95 {insert['p95']:.1f} ms; "
                      f"the page's GET p50 {get['p50']:.1f} ms, p95 {get['p95']:.1f} ms, max {get['max']:.1f} ms "
                      f"(n={len(gets)}, the warm-up included)", flush=True)
                report_live_get[:] = [get, len(gets)]
                if ages:
                    age = percentiles(ages)
                    print(f"    {shown_recounting[0]} of {len(gets)} pages showed an earlier count (recounting): "
                          f"its age p50 {age['p50'] / 1000:.1f} s, p95 {age['p95'] / 1000:.1f} s, "
                          f"max {age['max'] / 1000:.1f} s", flush=True)
            if name == "report-live" and hasattr(live_reports, "live"):
                waited = time.perf_counter()
                while (shown := live_reports.live(account_id, campaign["id"])).recounting:
                    time.sleep(0.2)
                exact = report_figures(shown.report) == expected(raw_figures(store, account_id, campaign["id"]))
                print(f"    recount done {time.perf_counter() - waited:.1f} s after the last request; its "
                      f"figures equal the raw uniqExact counts: {'yes' if exact else 'NO'}", flush=True)
                if not exact:
                    sys.exit("bench/panel.py: the recounted report disagrees with the events")
            for step, call in (steps.get(name, {}) if name not in args.http_only else {}).items():  # where the direct time goes
                samples = timed(call, min(args.requests, 10), args.budget / 3, args.min_requests)
                breakdown[name][step] = percentiles(samples)["p50"]
                print(f"      {step}: p50 {breakdown[name][step]:.1f} ms (n={len(samples)})", flush=True)
    finally:
        run("akd", "stop", config=main_json, timeout=120)

    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; documents engine: "
          f"{config.DOCUMENTS_ENGINE}; {args.profiles:,} profiles, {args.events:,} events, "
          f"{args.requests} requests per page, webcontrol {args.workers} gunicorn workers")
    print(f"{'page (ms)':10}{'n':>4}{'HTTP p50':>10}{'p95':>9}{'max':>9}   {'n':>4}{'direct p50':>11}{'p95':>9}"
          f"{'max':>9}   goal")
    for name, (ours, direct) in results.items():
        verdict = "ok" if ours["p95"] < GOAL_MS else f"MISSES {GOAL_MS} ms"
        print(f"{name:10}{ours['n']:>4}{ours['p50']:>10.1f} {ours['p95']:>8.1f} {ours['max']:>8.1f}   "
              f"{direct['n']:>4}{direct['p50']:>11.1f} {direct['p95']:>8.1f} {direct['max']:>8.1f}   {verdict}")
    if report_live_get:  # report-live without the insert before it (procactions' work, not the page's)
        get, n = report_live_get
        print(f"{'  its GET':10}{n:>4}{get['p50']:>10.1f} {get['p95']:>8.1f} {get['max']:>8.1f}   "
              f"{'':>4}{'':>11} {'':>8} {'':>8}   {'ok' if get['p95'] < GOAL_MS else f'MISSES {GOAL_MS} ms'}")

    if args.profile:
        profile_pages(config, login, pages, wanted, min(args.requests, 10), args.budget)
    print("\nindexes of the profile collection (listIndexes):")
    for index_name, spec in collection.index_information().items():
        print(f"  {index_name}: key {spec['key']}{', unique' if spec.get('unique') else ''}")
    print("query plans (profile queries). FerretDB = what explain() says the stand-in does; "
          "MongoDB = the plan real MongoDB would use with those indexes:")
    shapes = {
        "list": collection.find({}).sort("_id", 1).limit(51),
        "deep": collection.find({"_id": {"$gt": deep_after}}).sort("_id", 1).limit(51),
        "card": collection.find({"_id": card_id}).limit(1),
        "segment": collection.find(live_query).limit(LIVE_COUNT_LIMIT + 1),
    }
    for name, cursor in shapes.items():
        if name not in wanted:
            continue
        try:
            said = ferretdb_says(cursor.explain())
        except Exception as exc:  # noqa: BLE001 - a stand-in without explain still gets the MongoDB plan
            said = f"explain() failed: {exc}"
        print(f"  {name:8} FerretDB: {said}")
        print(f"  {'':8} MongoDB:  {MONGODB_PLANS[name]}")

    print("\nwhere the direct time goes (p50 of each store call alone, ms): " + "; ".join(
        f"{name}: " + ", ".join(f"{step} {ms:.1f}" for step, ms in parts.items())
        for name, parts in breakdown.items() if parts))
    if not args.reuse or args.drop:
        forget(platform, store, account_id, rename=args.reuse)
    store.close()
    platform.close()
    live_get = [f"report-live-get:{report_live_get[0]['p95']:.0f}"] if report_live_get else []
    print("p95_ms=" + ",".join([f"{name}:{ours['p95']:.0f}" for name, (ours, _) in results.items()] + live_get))


if __name__ == "__main__":
    main()
