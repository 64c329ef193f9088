"""Where procworkflow's time goes: N runs entry -> wait (1 s) -> send -> exit, stepped in-process by
`Stepper.step_batch` in --workers threads (each its own Stepper, as procworkflow's gunicorn
workers), every document-store command timed with pymongo's command monitoring.

    .venv/bin/python -m bench.automation_store [--profiles 200] [--workers 2] [--ferretdb-postgresql]

Prints steps per second, the time spent waiting for the store (summed over the workers, so
it can exceed the wall time) and per command. Needs the test harness. The messages go to
a throw-away vhost (no MTA): this times the stepping, not the delivery.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.automation_store")

from bench import _store_timer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.automation_store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ferretdb-postgresql", action="store_true",
                        help="a FerretDB on the PostgreSQL handler started for this run instead of the harness's")
    args = parser.parse_args()
    timer = _store_timer.register()  # before any client exists

    from bench import _config
    from bench.automation import setup_account

    n = args.profiles
    with _config.pipeline("automation-store", args.ferretdb_postgresql) as pipeline:
        from altcraft.services.procworkflow import Stepper
        setup = setup_account(pipeline, n, None)
        p = pipeline.platform
        nodes = [{"id": "in", "type": "entry", "trigger": {"type": "api"}, "next": "wait"},
                 {"id": "wait", "type": "wait", "seconds": 1, "next": "send"},
                 {"id": "send", "type": "send", "template_id": setup["template_id"],
                  "sender_id": setup["sender_id"], "next": "out"},
                 {"id": "out", "type": "exit"}]
        scenario = p.scenarios.add(setup["account_id"], "bench", setup["db_id"], nodes)
        p.scenarios.set_active(setup["account_id"], scenario["id"], True)
        scenario = p.scenarios.get(setup["account_id"], scenario["id"])
        for profile_id in setup["profile_ids"][:n]:
            p.scenarios.enter(scenario, profile_id, f"bench:{profile_id}", {"order": "P-1"})
        steppers = [Stepper(pipeline.config) for _ in range(args.workers)]
        stop = threading.Event()

        def work(stepper):
            while not stop.is_set():
                if not stepper.step_batch():
                    stop.wait(0.2)

        mine = {"scenario_id": scenario["id"]}
        timer.clear()
        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in steppers]
        for thread in threads:
            thread.start()
        while (done := p.scenarios.steps.count_documents(mine)) < 4 * n and time.monotonic() - started < 600:
            print(f"\rsteps: {done:,}/{4 * n:,}", end="", file=sys.stderr, flush=True)
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(60)
        wall = time.monotonic() - started  # the workers' store time runs until they stop
        print(file=sys.stderr)
        rows = list(p.scenarios.steps.find(mine, {"at": 1}))
        span = (max(r["at"] for r in rows) - min(r["at"] for r in rows)).total_seconds() if rows else 0
        store = sum(v for (name, _), v in timer.seconds.items() if name != "aggregate")  # aggregate: our own count
        print(f"steps: {len(rows):,} in {span:.1f} s (first to last logged) = {len(rows) / max(span, 1e-6):,.0f}/s, "
              f"{args.workers} workers; waiting for the store {store:.1f} s of {wall * args.workers:.1f} "
              f"worker-seconds ({store / (wall * args.workers):.0%}); load {os.getloadavg()[0]:.1f}; "
              f"store {'FerretDB on PostgreSQL' if args.ferretdb_postgresql else 'the harness FerretDB'}")
        for (name, target), seconds in timer.seconds.most_common():
            calls = timer.calls[(name, target)]
            print(f"  {f'{name} {target}':40}{calls:8,} calls{seconds:9.2f} s{seconds / calls * 1000:9.1f} ms each")
        for stepper in steppers:
            stepper.close()


if __name__ == "__main__":
    main()
