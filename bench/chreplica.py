"""Events per second into ClickHouse: one server's table against two replicas (issue #17).

    .venv/bin/python -m bench.chreplica [--events 200000] [--batch 1000] [--rounds 2] [--json]

Starts its own ZooKeeper and two clickhouse-server processes (tests/lib/ch_cluster.py, the
clickhouse role's cluster drop-in) and writes the same batches of events, through the
platform's own writer (domain/ingest.EventWriter, one INSERT per batch as procactions does;
its batch is half its prefetch, 1000), into:

  single      - database bench_single on ch1 without CLICKHOUSE_SYSTEM.CLUSTER:
                ReplacingMergeTree, what one server runs;
  replicated  - database bench_replicated with CLUSTER (two replicas): the Distributed table
                on ch1 over ReplicatedReplacingMergeTree, ZooKeeper taking every block's
                checksum, ch2 fetching every part.

Same server processes, same batches, same run; the two take turns (--rounds, half of the
events each turn) so that drift in the machine's load falls on both. Prints events/s for each,
how long after the last insert ch2 held every replicated event, and ends with one line
`single=<events/s> replicated=<events/s> ratio=<replicated/single>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.chreplica")

from tests.lib.ch_cluster import ChCluster  # noqa: E402
from tests.lib.wait import wait_for  # noqa: E402

CLUSTER = "altcraft"


def batches(total: int, size: int) -> list[list]:
    from altcraft.domain.events import Event

    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    events = [Event(event_id=uuid.uuid4(), kind="open" if i % 3 else "delivered", account_id=1 + i % 5,
                    time=start + timedelta(milliseconds=i * 10), campaign_id=100 + i % 20,
                    profile_id=f"p{i % 50000:06d}", resource_id=1, ip="192.0.2.7",
                    user_agent="Mozilla/5.0 (X11; Linux x86_64)")
              for i in range(total)]
    return [events[i:i + size] for i in range(0, total, size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events written to each (default 200000)")
    parser.add_argument("--batch", type=int, default=1000, help="events per INSERT (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="turns each takes (default 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.events < args.rounds or args.batch < 1 or args.rounds < 1:
        parser.error("--events must be at least --rounds, --batch and --rounds at least 1")

    from altcraft.config import ClickHouseCluster
    from altcraft.domain.ingest import EventWriter
    from altcraft.schema import clickhouse as schema
    from altcraft.stores.analytics import Analytics

    load_before = os.getloadavg()
    work = batches(args.events, args.batch)
    per_round = -(-len(work) // args.rounds)
    seconds = {"single": 0.0, "replicated": 0.0}
    with ChCluster(replicas=2, cluster=CLUSTER) as cluster:
        ch1 = cluster.nodes[0]
        stores = {
            "single": Analytics(cluster.settings(ch1, "bench_single")),
            "replicated": Analytics(cluster.settings(ch1, "bench_replicated",
                                                     CLUSTER=ClickHouseCluster(NAME=CLUSTER))),
        }
        try:
            for store in stores.values():
                schema.migrate(store)
            writers = {name: EventWriter(store, None, None, None) for name, store in stores.items()}
            for turn in range(args.rounds):
                part = work[turn * per_round:(turn + 1) * per_round]
                for name in (("single", "replicated") if turn % 2 == 0 else ("replicated", "single")):
                    started = time.perf_counter()
                    for batch in part:
                        writers[name].write(batch)
                    seconds[name] += time.perf_counter() - started
                    print(f"round {turn + 1}/{args.rounds} {name}: {sum(map(len, part))} events", file=sys.stderr)
            done = time.perf_counter()
            ch2 = cluster.nodes[1]
            wait_for(lambda: cluster.query(ch2, "SELECT count() FROM bench_replicated.events_local")[0][0]
                     >= args.events, timeout=600, what="ch2 to hold every replicated event")
            lag = time.perf_counter() - done
            held = {name: cluster.query(ch1, f"SELECT uniqExact(event_id) FROM {db}.events")[0][0]
                    for name, db in (("single", "bench_single"), ("replicated", "bench_replicated"))}
        finally:
            for store in stores.values():
                store.close()
    rate = {name: args.events / s for name, s in seconds.items()}
    result = {
        "events": args.events, "batch": args.batch, "rounds": args.rounds,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "events_per_second": {k: round(v) for k, v in rate.items()},
        "ch2_caught_up_after_s": round(lag, 2), "distinct_events_held": held,
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "ratio": round(rate["replicated"] / rate["single"], 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("single", "replicated"):
            print(f"{name:>10}: {args.events} events in {seconds[name]:.2f} s = {rate[name]:,.0f} events/s "
                  f"({held[name]} distinct held)")
        print(f"ch2 held every replicated event {lag:.2f} s after the last insert; "
              f"load {result['load_before']} -> {result['load_after']}")
    print(f"single={rate['single']:.0f} replicated={rate['replicated']:.0f} ratio={result['ratio']}")
    return 0 if all(v == args.events for v in held.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
