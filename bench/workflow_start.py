"""What a `workflows/start` call costs as `workflow_runs` grows: the calls go through the v1.1
API (Flask's client, in-process, as the welcome test makes them) against a collection first
filled with --sizes runs of another scenario (inserted directly), every document-store command
timed with pymongo's command monitoring, per command and collection.

    .venv/bin/python -m bench.workflow_start [--sizes 0,5000,20000] [--calls 200] [--ferretdb-postgresql]

Prints, per size: calls/s and the milliseconds a call spends per (command, collection).
Needs the test harness.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timezone

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.workflow_start")

from bench import _store_timer  # noqa: E402


def filler(scenario_id: int, account_id: int, db_id: int, count: int, at: datetime) -> list[dict]:
    """Runs of another scenario, shaped as `Scenarios.enter` stores them, done (exited)."""
    out = []
    for _ in range(count):
        rid = f"wf{scenario_id}.{uuid.uuid4().hex}"
        profile = uuid.uuid4().hex[:24]
        out.append({"_id": rid, "account_id": account_id, "scenario_id": scenario_id, "version": 1,
                    "db_id": db_id, "profile_id": profile, "data": {}, "entry": "in", "node": "out",
                    "step": 3, "visits": {"in": 1, "send": 1, "out": 1}, "state": "exited", "due_at": at,
                    "lease_until": at, "owner": None, "entry_key": f"{rid}:ended", "created_at": at})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,5000,20000", help="runs already stored before each measurement")
    parser.add_argument("--calls", type=int, default=200, help="workflows/start calls timed at each size")
    parser.add_argument("--ferretdb-postgresql", action="store_true",
                        help="a FerretDB on the PostgreSQL handler started for this run instead of the harness's")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    timer = _store_timer.register()  # before any client exists

    from altcraft import registry
    from altcraft.services.api import create_app
    from bench import _config
    from bench.automation import setup_account
    from tests.lib.api import Client

    with _config.pipeline("wfstart", args.ferretdb_postgresql) as pipeline:
        p = pipeline.platform
        setup = setup_account(pipeline, args.calls * len(sizes), None)
        token, _ = p.tokens.create("account", setup["account_id"])
        api = Client(create_app(pipeline.config, registry.get("api")).test_client(), token)
        nodes = [{"id": "in", "type": "entry", "trigger": {"type": "api"}, "next": "send"},
                 {"id": "send", "type": "send", "template_id": setup["template_id"],
                  "sender_id": setup["sender_id"], "next": "out"},
                 {"id": "out", "type": "exit"}]
        scenario = api.ok("workflows/add", name="bench", db_id=setup["db_id"], nodes=nodes)
        api.ok("workflows/activate", id=scenario["id"])
        runs = p.scenarios.runs
        profiles = iter(setup["profile_ids"])
        at = datetime.now(timezone.utc)
        for size in sizes:
            have = runs.count_documents({})
            for start in range(have, size, 5000):
                runs.insert_many(filler(scenario["id"] + 1000, setup["account_id"], setup["db_id"],
                                        min(5000, size - start), at))
            stored = runs.count_documents({})
            timer.clear()
            started = time.monotonic()
            for _ in range(args.calls):
                pid = next(profiles)
                api.ok("workflows/start", id=scenario["id"], profile_id=pid, idempotency_key=f"k:{pid}")
            wall = time.monotonic() - started
            store = sum(timer.seconds.values())
            print(f"runs stored {stored:>7,}: {args.calls / wall:6.1f} calls/s, {wall / args.calls * 1000:6.1f} ms "
                  f"a call, {store / args.calls * 1000:6.1f} ms of it in the store; load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            for (name, coll), seconds in timer.seconds.most_common(8):
                n = timer.calls[(name, coll)]
                print(f"    {name:14} {coll:22} {n / args.calls:4.1f}/call {seconds / args.calls * 1000:7.2f} ms/call",
                      flush=True)
        print(f"store {'FerretDB on PostgreSQL' if args.ferretdb_postgresql else 'the harness FerretDB (SQLite)'}")


if __name__ == "__main__":
    main()
