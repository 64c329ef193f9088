"""Automation: scenario steps per second, timer lateness, and trigger-call-to-sink latency.

    .venv/bin/python -m bench.automation [--profiles 2000] [--wait 1] [--calls 200] [--rate 10]
                                         [--ferretdb-postgresql]

Steps: N profiles enter a scenario entry (API) -> wait (--wait seconds) -> send -> exit
(entered through the domain's `enter`, before procworkflow starts; not timed). Then
procworkflow (gunicorn, 2 workers, as production) and akmtad start under akd, and every run
is stepped until it exits; the messages go to an SMTP sink on loopback. Profile-steps per
second: the steps logged (entry, wait, send, exit: 4 per profile) over the time from the
first to the last. Lateness: for each wait step, when it was taken minus when its timer
was due (the step log's `at - due`): the timers come due while other runs are still being
stepped, so this is lateness under load.

Trigger latency: --calls `campaigns/triggers/start` calls over HTTP to the `api` process
(--rate per second, open loop), each with its own idempotency key; the time from the call's
start to its message (by Message-ID) at the sink: API -> RabbitMQ -> proctrigger (render,
the priority queue) -> akmtad -> SMTP. Reference, in the same run: the same number of
messages sent in-process through the sending half alone (services/mailout.py's Mailer, as
proctrigger calls it) -> akmtad -> SMTP, so the difference is what the API hand-off and
proctrigger add.

Needs the test harness (started if it is not running). Ends with one line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
import uuid

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.automation")

from bench import _config  # noqa: E402
from bench._stats import latency_header, latency_row, percentile  # noqa: E402
from tests.lib.ports import free_port  # noqa: E402

HTML = "<html><body><p>Hello {{ first_name }}, order {{ data.order }}</p></body></html>"


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6)
    print(f"\r{label}: {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


def message_ids(sink) -> dict[str, float]:
    """Message-ID (without <...@host>) -> when the sink received it."""
    out = {}
    for received in sink.messages:
        head = received.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        for line in head.splitlines():
            if line.lower().startswith(b"message-id:"):
                out[line.split(b"<", 1)[1].split(b"@", 1)[0].decode()] = received.at
    return out


def run_steps(pipeline, setup, n: int, wait: int) -> tuple[float, list[float], float]:
    p, account_id, db_id = pipeline.platform, setup["account_id"], setup["db_id"]
    nodes = [{"id": "in", "type": "entry", "trigger": {"type": "api"}, "next": "wait"},
             {"id": "wait", "type": "wait", "seconds": wait, "next": "send"},
             {"id": "send", "type": "send", "template_id": setup["template_id"], "sender_id": setup["sender_id"],
              "next": "out"},
             {"id": "out", "type": "exit"}]
    scenario = p.scenarios.add(account_id, "bench", db_id, nodes)
    p.scenarios.set_active(account_id, scenario["id"], True)
    scenario = p.scenarios.get(account_id, scenario["id"])
    started = time.monotonic()
    for i, profile_id in enumerate(setup["profile_ids"][:n], 1):
        p.scenarios.enter(scenario, profile_id, f"bench:{profile_id}", {"order": "S-1"})
        if i % 50 == 0 or i == n:
            progress("entering", i, n, started)
    print(file=sys.stderr)
    steps = p.scenarios.steps
    mine = {"scenario_id": scenario["id"]}
    pipeline.start("procworkflow")
    started, last, last_change = time.monotonic(), -1, time.monotonic()
    while (done := steps.count_documents(mine)) < 4 * n:
        if done != last:
            last, last_change = done, time.monotonic()
        if time.monotonic() - last_change > 120:
            log = pipeline.config.logs_dir / "procworkflow.log"
            tail = "\n".join(log.read_text().splitlines()[-30:]) if log.exists() else ""
            raise SystemExit(f"steps: stuck at {done:,} of {4 * n:,}\n{tail}")
        progress("steps", done, 4 * n, started)
        time.sleep(1)
    print(file=sys.stderr)
    rows = list(steps.find(mine, {"node": 1, "at": 1, "due": 1}))
    times = [r["at"] for r in rows]
    seconds = (max(times) - min(times)).total_seconds()
    lateness = [(r["at"] - r["due"]).total_seconds() * 1000 for r in rows if r["node"] == "wait"]
    return len(rows) / seconds, lateness, seconds


def api_call(url: str, token: str, path: str, **params) -> dict:
    request = urllib.request.Request(f"{url}/api/v1.1/{path}", data=json.dumps({**params, "token": token}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("error"):
        raise SystemExit(f"{path}: {body}")
    return body["data"]


def paced(count: int, rate: float, send, answers: list[float] | None = None) -> dict[str, float]:
    """Calls send(i) -> message id `count` times at `rate` per second; id -> when called.
    `answers` gets how long each call took to answer (ms)."""
    called, started = {}, time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        at = time.time()
        called[send(i)] = at
        if answers is not None:
            answers.append((time.time() - at) * 1000)
    return called


def latencies(sink, called: dict[str, float], label: str) -> list[float]:
    started = time.monotonic()
    while True:
        arrived = message_ids(sink)
        got = [mid for mid in called if mid in arrived]
        progress(label, len(got), len(called), started)
        if len(got) == len(called):
            break
        if time.monotonic() - started > 120:
            raise SystemExit(f"{label}: {len(got)} of {len(called)} messages at the sink after 120 s")
        time.sleep(0.2)
    print(file=sys.stderr)
    return [(arrived[mid] - at) * 1000 for mid, at in called.items()]


def run_triggers(pipeline, setup, calls: int, rate: float) -> tuple[list[float], list[float], list[float]]:
    from altcraft.services.mailout import Mailer
    from altcraft.stores.broker import Broker

    p, account_id = pipeline.platform, setup["account_id"]
    trigger = p.triggers.add(account_id, "bench", setup["db_id"], setup["template_id"], setup["sender_id"])
    token, _ = p.tokens.create("account", account_id)
    pipeline.start("api", "proctrigger")
    url = pipeline.config.listen_address("api").url()
    profiles = setup["profile_ids"]
    run = uuid.uuid4().hex[:8]
    answers: list[float] = []
    ours = latencies(setup["sink"], paced(calls, rate, lambda i: api_call(
        url, token, "campaigns/triggers/start", id=trigger["id"], profile_id=profiles[i % len(profiles)],
        data={"order": f"T-{i}"}, idempotency_key=f"{run}:{i}")["message_id"], answers), "trigger calls at the sink")
    source = p.triggers.get(account_id, trigger["id"])
    broker = Broker(pipeline.config, app="bench")
    mailer = Mailer(pipeline.config, p, broker)

    def direct(i: int) -> str:
        mid = f"bench.{run}.{i}"
        mailer.send(account_id, source, profiles[i % len(profiles)], mid, {"order": f"R-{i}"})
        return mid

    try:
        reference = latencies(setup["sink"], paced(calls, rate, direct), "reference at the sink")
    finally:
        broker.close()
    return ours, reference, answers


def setup_account(pipeline, n: int, sink) -> dict:
    p = pipeline.platform
    account = p.accounts.save(name=f"bench-{uuid.uuid4().hex[:6]}")
    database = p.databases(account["id"]).add("bench")
    store = p.profiles(account["id"], database.id)
    for start in range(0, n, 5000):
        rows = [{"email": f"user{i}@example{i % 50}.test", "first_name": "Anna"} for i in range(start, min(n, start + 5000))]
        store.upsert_prepared([store.prepare(r, require_key=True) for r in rows], subscribe=(1, "email"))
    sender = p.senders.save(name="bench", from_email="news@bench.example", from_name="Bench")
    p.senders.assign(sender["id"], account["id"])
    template = p.templates(account["id"]).add("bench", "Order {{ data.order }}", HTML, "")
    ids = [d["_id"] for d in store.collection.find({}, {"_id": 1})]
    return {"account_id": account["id"], "db_id": database.id, "sender_id": sender["id"],
            "template_id": template["id"], "profile_ids": ids, "sink": sink}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.automation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=2000, help="runs through entry -> wait -> send")
    parser.add_argument("--wait", type=int, default=1, help="the wait node's seconds (TIME_SCALE 1)")
    parser.add_argument("--calls", type=int, default=200, help="trigger API calls timed to the sink")
    parser.add_argument("--rate", type=float, default=10.0, help="trigger calls per second")
    parser.add_argument("--ferretdb-postgresql", action="store_true",
                        help="the document store: a FerretDB on the PostgreSQL handler started for this run "
                             "(bench/_ferretdb_pg.py) instead of the harness's (SQLite handler)")
    args = parser.parse_args()

    from tests.lib.sink import Sink

    sink_port = free_port()
    with _config.pipeline("automation", args.ferretdb_postgresql, sink_port=sink_port, runs_processes=True,
                          settings={"PROCESSES": {"api": {"PORT": free_port()}}}) as pipeline:
        with Sink(sink_port) as sink:
            setup = setup_account(pipeline, max(args.profiles, 1), sink)
            pipeline.start("akmtad")
            rate, lateness, seconds = run_steps(pipeline, setup, args.profiles, args.wait)
            ours, reference, answers = run_triggers(pipeline, setup, args.calls, args.rate)
    n = args.profiles
    print(latency_header(44))
    for label, values in (("timer lateness (wait steps)", lateness),
                          ("ours: triggers/start -> proctrigger -> sink", ours),
                          ("  of which the API call answering", answers),
                          ("reference: Mailer.send -> akmtad -> sink", reference)):
        print(latency_row(label, values, 44))
    print(f"profile-steps: {4 * n:,} in {seconds:.1f} s = {rate:,.0f}/s ({n:,} profiles, entry -> wait -> send -> exit)")
    print(f"steps_per_s={rate:.0f} lateness_p50_ms={percentile(lateness, 50):.0f} "
          f"lateness_p99_ms={percentile(lateness, 99):.0f} trigger_p50_ms={percentile(ours, 50):.0f} "
          f"trigger_p95_ms={percentile(ours, 95):.0f} reference_p50_ms={percentile(reference, 50):.0f} "
          f"reference_p95_ms={percentile(reference, 95):.0f} load={os.getloadavg()[0]:.1f} "
          f"store={'ferretdb-postgresql' if args.ferretdb_postgresql else 'harness'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
