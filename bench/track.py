"""Click-redirect throughput, with nginx's own `return 302` as the reference, and the event
pipeline's rate from RabbitMQ into ClickHouse.

    .venv/bin/python -m bench.track [--seconds 8] [--connections 64]     (from the repository root)

1. trkaction under akd (its server: registry.Process.server, granian RSGI; WORKERS workers) on a loopback port; wrk (Debian,
   installed if missing and root, else the script stops naming it) drives GET /c/<signed
   token> for SECONDS with CONNECTIONS connections; every request is a real click: token
   verified, bot check, event appended to the worker's journal, 302. Afterwards: how many
   events the broker confirmed (trkaction's relay process publishes the journals) and how
   long the relay needed to catch up.
2. A throwaway nginx (Debian's nginx-light, the same way) with `worker_processes WORKERS; access_log off;
   return 302`, on another loopback port, driven by the same wrk command.
3. procactions drains the clicks (topped up with synthetic events to at least --events)
   from RabbitMQ into ClickHouse: events/s from its first row to its last.
4. The reference for 3: a queue of the bench's own, bound like procactions' events.actions,
   receives a copy of every one of those events; a bare pika consumer (the same prefetch,
   acknowledging half a window at a time, doing nothing with a message) drains it first.
   procactions' rate over this raw rate is the pipeline's own cost.

With `--front native`, step 1 runs the compiled front of /c and /o instead (native/trkfront,
built with `go build`; Go from PATH or Debian's golang-go) on trkaction's port, with trkaction's
relay process publishing its journal: the same wrk command, the same nginx reference in the
same run; the confirmed count is what reached the bench's own queue.

Before the load, the check click must have reached the bench's queue (the relay is up, as it
is long before any burst in production), and before each measured phase (ours, nginx, the
bare consumer, procactions) the machine must be quiet (bench/_machine.py: under 10 % busy for
a second, at most 120 s of waiting; the output says how long and how busy).

Loopback only, bounded in time. The last line is `ratio=<ours/nginx>` (requests/s) and
`pipeline_ratio=<procactions/raw consumer>` (events/s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.track")

from bench import _config  # noqa: E402
from bench._machine import settle  # noqa: E402
from tests.lib import broker as test_broker  # noqa: E402
from tests.lib.cli import run  # noqa: E402
from tests.lib.harness import make_config  # noqa: E402
from tests.lib.packages import require  # noqa: E402
from tests.lib.ports import free_port  # noqa: E402

RAW_BINDING = "action.#"  # what events.actions is bound to (altcraft/schema/rabbitmq.py)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def wrk(binary: str, url: str, seconds: int, connections: int, threads: int) -> dict:
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-H",
               f"User-Agent: {BROWSER}", url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {"rate": rate, "requests": total, "non_3xx": int(bad.group(1)) if bad else 0,
            "errors": errors.group(1) if errors else "", "p50": latency.get("50", "?"),
            "p99": latency.get("99", "?"), "command": " ".join(command[:5]) + " <url>"}


def wrk_settled(binary: str, url: str, seconds: int, connections: int, threads: int,
                before: Callable[[], dict] | None = None) -> dict:
    """wrk once the machine is quiet (bench/_machine.py); `before()` is taken just before the load."""
    settled = settle()
    taken = before() if before else None
    result = wrk(binary, url, seconds, connections, threads)
    result["settled"] = settled
    if before:
        result["before"] = taken
    return result


def cpu_seconds(pid_file: Path) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the tracking process's family, by title:
    the workers, the relay (AK:<name>:relay, if any), the master."""
    import psutil

    master = psutil.Process(int(pid_file.read_text().split()[0]))
    used: dict[str, float] = {}
    for member in [master, *master.children(recursive=True)]:
        try:
            title = " ".join(member.cmdline()).strip()
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        role = title.rsplit(":", 1)[-1] if title.startswith("AK:") and title.count(":") == 2 else "master"
        used[role] = used.get(role, 0.0) + times.user + times.system
    return used


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    match = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def raw_drain(parameters, queue: str, expected: int, prefetch: int) -> tuple[int, float]:
    """Consume `expected` messages from `queue` doing nothing with them: (count, events/s
    from the first message to the last)."""
    import pika

    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    batch, got, first_at, last_at = max(1, prefetch // 2), 0, None, None
    deadline = time.monotonic() + 600
    for method, _properties, _body in channel.consume(queue, inactivity_timeout=5):
        if method is None:
            if got >= expected or time.monotonic() > deadline:
                break
            continue
        got += 1
        last_at = time.monotonic()
        first_at = first_at or last_at
        if got % batch == 0 or got >= expected:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if got >= expected:
            break
    channel.cancel()
    connection.close()
    rate = (got - 1) / (last_at - first_at) if first_at and last_at and last_at > first_at else 0.0
    return got, rate


def publishing(config, raw_queue: str, started: float) -> float:
    """Seconds until the check click reached the bench's queue: the relay is up and
    connected, as it is long before any burst in production (its start-up, imports and
    all, otherwise lands inside the measured load)."""
    import pika

    from altcraft.stores import broker

    with pika.BlockingConnection(broker.parameters(config, app="altcraft-bench")) as connection:
        channel = connection.channel()
        while channel.queue_declare(raw_queue, passive=True).method.message_count < 1:
            if time.monotonic() - started > 60:
                sys.exit("bench/track.py: the check click did not reach the bench's queue within 60 s")
            time.sleep(0.05)
    return time.monotonic() - started


def akd(*args: str, config: Path) -> None:
    result = run("akd", *args, config=config, timeout=180)
    if result.returncode != 0:
        sys.exit(f"akd {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def python_front(args, config, main_json: Path, port: int, click: str, wrk_bin: str, raw_queue: str):
    """trkaction under akd: (wrk's figures, accepted, confirmed, spooled, catch-up seconds,
    CPU seconds by role before, after the load, after catching up)."""
    akd("start", "trkaction", config=main_json)
    check = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    check.request("GET", click.removeprefix(config.TRACKING_BASE_URL), headers={"User-Agent": BROWSER})
    answer = check.getresponse()
    if answer.status != 302 or answer.getheader("Location") != "https://example.com/landing":
        sys.exit(f"bench/track.py: the redirect answered {answer.status}, not 302")
    check.close()
    publishing(config, raw_queue, time.monotonic())
    pid_file = config.pids_dir / "trkaction.pid"
    ours = wrk_settled(wrk_bin, click, args.seconds, args.connections, args.threads,
                       before=lambda: cpu_seconds(pid_file))
    cpu_before = ours.pop("before")
    cpu_load = cpu_seconds(pid_file)
    ended = time.monotonic()
    while metric(port, "altcraft_trk_events_buffered") > 0 and time.monotonic() - ended < 300:
        time.sleep(0.2)
    catch_up = time.monotonic() - ended
    cpu_after = cpu_seconds(pid_file)
    accepted = metric(port, 'altcraft_trk_events_total{outcome="accepted"}')
    confirmed = metric(port, 'altcraft_trk_events_total{outcome="confirmed"}')
    spooled = metric(port, 'altcraft_trk_events_total{outcome="spooled"}')
    akd("stop", "trkaction", config=main_json)
    return ours, accepted, confirmed, spooled, catch_up, cpu_before, cpu_load, cpu_after


def native_front(args, config, main_json: Path, basedir: Path, port: int, click: str, wrk_bin: str,
                 raw_queue: str):
    """native/trkfront on trkaction's port with trkaction's relay (see python_front)."""
    import psutil
    import pika

    from altcraft import registry
    from altcraft.services.trk.app import spool_dir, start_relay
    from altcraft.stores import broker
    from tests.lib import trkfront

    binary = trkfront.build(basedir / "trkfront")
    front = trkfront.start(binary, main_json, basedir / "trkfront.log")
    relay = start_relay(config, registry.get("trkaction"))
    journal = spool_dir(config, registry.get("trkaction"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                check = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                check.request("GET", click.removeprefix(config.TRACKING_BASE_URL), headers={"User-Agent": BROWSER})
                answer = check.getresponse()
                break
            except OSError:
                if front.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"bench/track.py: trkfront did not start: {(basedir / 'trkfront.log').read_text()}")
                time.sleep(0.1)
        if answer.status != 302 or answer.getheader("Location") != "https://example.com/landing":
            sys.exit(f"bench/track.py: the redirect answered {answer.status}, not 302")
        check.close()
        publishing(config, raw_queue, time.monotonic())
        members = {"front": psutil.Process(front.pid), "relay": psutil.Process(relay.pid)}

        def cpu() -> dict[str, float]:
            return {role: sum(member.cpu_times()[:2]) for role, member in members.items()}

        ours = wrk_settled(wrk_bin, click, args.seconds, args.connections, args.threads, before=cpu)
        cpu_before = ours.pop("before")
        cpu_load = cpu()
        ended = time.monotonic()
        accepted = metric(port, 'altcraft_trkfront_events_total{outcome="accepted"}')

        def caught_up() -> bool:
            for path in journal.glob("*.jsonl"):
                done = path.with_name(path.name + ".done")
                if not done.exists() or int(done.read_text() or 0) < path.stat().st_size:
                    return False
            return True

        while not caught_up() and time.monotonic() - ended < 300:
            time.sleep(0.2)
        catch_up = time.monotonic() - ended
        cpu_after = cpu()
        with pika.BlockingConnection(broker.parameters(config, app="altcraft-bench")) as connection:
            confirmed = connection.channel().queue_declare(raw_queue, passive=True).method.message_count
    finally:
        front.send_signal(signal.SIGTERM)
        front.wait(30)
        relay.stop()
    return ours, accepted, float(confirmed), 0.0, catch_up, cpu_before, cpu_load, cpu_after


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.track", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per run (default 8)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="trkaction workers and nginx worker_processes")
    parser.add_argument("--events", type=int, default=100_000,
                        help="at least this many events for the ClickHouse rate (synthetic top-up)")
    parser.add_argument("--config", help="main.json with the stores (default: the test harness)")
    parser.add_argument("--front", choices=("python", "native"), default="python",
                        help="what answers /c: trkaction under akd (python) or native/trkfront with trkaction's relay")
    args = parser.parse_args()

    wrk_bin, nginx_bin = require("wrk", "wrk"), require("nginx", "nginx-light")

    from altcraft import config as cfg
    from altcraft.domain.tracking import Link, url as tracking_url
    from altcraft.schema import migrate as migration
    from altcraft.stores.analytics import Analytics

    basedir = Path(tempfile.mkdtemp(prefix="altcraft-bench-track-"))
    port = free_port()
    vhost = None
    if args.config:
        settings = json.loads(Path(args.config).read_text())
    else:
        # a vhost of its own: in the harness's shared one, events.actions may hold other
        # runs' events or have other procactions consuming it, and the rate would be theirs too
        harness = _config.harness()
        vhost = test_broker.add_vhost(harness, prefix="bench-")
        settings = make_config(harness, basedir, RABBITMQ_VHOST=vhost)
    settings.update(BASEDIR=str(basedir), TRACKING_BASE_URL=f"http://127.0.0.1:{port}",
                    PROCESSES={"trkaction": {"PORT": port, "WORKERS": args.workers}})
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(settings))
    config, _ = cfg.load(main_json)
    migration.run(config)
    campaign = int(uuid.uuid4().int % 10**12)
    account_id = 900_000 + campaign % 100_000
    click = tracking_url(config.TRACKING_BASE_URL,
                         Link("click", account_id, 1, 1, campaign, uuid.uuid4().hex, 1, "https://example.com/landing",
                              int(time.time()) - 3600), config.TRACKING_CRYPT_KEY)
    nginx_dir = basedir / "nginx"
    from altcraft.schema.rabbitmq import EVENTS_EXCHANGE
    from altcraft.services.procactions import PREFETCH
    from altcraft.stores import broker

    raw_queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    import pika

    with pika.BlockingConnection(broker.parameters(config, app="altcraft-bench")) as connection:
        channel = connection.channel()
        # expires: the queue goes away by itself if the bench dies before deleting it
        channel.queue_declare(raw_queue, durable=True, arguments={"x-expires": 3_600_000})
        channel.queue_bind(raw_queue, EVENTS_EXCHANGE, RAW_BINDING)
    try:
        # 1. ours ------------------------------------------------------------------------
        if args.front == "native":
            measured = native_front(args, config, main_json, basedir, port, click, wrk_bin, raw_queue)
        else:
            measured = python_front(args, config, main_json, port, click, wrk_bin, raw_queue)
        ours, accepted, confirmed, spooled, catch_up, cpu_before, cpu_load, cpu_after = measured

        # 2. nginx -----------------------------------------------------------------------
        nginx_port = free_port()
        nginx_dir.mkdir()
        (nginx_dir / "nginx.conf").write_text(f"""
worker_processes {args.workers};
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {nginx_dir}/body; proxy_temp_path {nginx_dir}/proxy;
  fastcgi_temp_path {nginx_dir}/fastcgi; uwsgi_temp_path {nginx_dir}/uwsgi; scgi_temp_path {nginx_dir}/scgi;
  server {{ listen 127.0.0.1:{nginx_port}; location / {{ return 302 https://example.com/landing; }} }}
}}
""")
        subprocess.run([nginx_bin, "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)], check=True)
        time.sleep(0.5)
        reference = wrk_settled(wrk_bin, f"http://127.0.0.1:{nginx_port}/c/{click.rsplit('/', 1)[1]}", args.seconds,
                        args.connections, args.threads)
        subprocess.run([nginx_bin, "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir), "-s", "stop"],
                       check=False, stderr=subprocess.DEVNULL)

        # 3. RabbitMQ -> ClickHouse ----------------------------------------------------------
        # the bench's queue receives every message (a relay's resend after a confirm timeout
        # counts twice); ClickHouse keeps one row per event id. The native front counts what
        # it accepted, the Python path what was confirmed.
        messages = int(confirmed + spooled)
        expected = int(accepted) if args.front == "native" else messages
        if expected < args.events:
            from altcraft.services.trk.publisher import EventPublisher

            publisher = EventPublisher(lambda: broker.parameters(config, app="altcraft-bench"), EVENTS_EXCHANGE,
                                       basedir / "spool", max_buffer=args.events + 1, flush_timeout=300)
            from altcraft.domain import events
            from altcraft.domain.tracking import Link

            for i in range(args.events - expected):  # the events trkaction would have made
                opened = Link("open", account_id, 1, 1, campaign, f"{i:032x}")
                event_id, routing_key, body = events.action(opened, "open", ip="127.0.0.1", user_agent=BROWSER)
                publisher.submit(routing_key, body, event_id)
            publisher.close()
            messages += args.events - expected
            expected = args.events
        raw_settled = settle()
        raw_cpu = time.process_time()
        raw_count, raw_rate = raw_drain(broker.parameters(config, app="altcraft-bench-raw"), raw_queue,
                                        messages, PREFETCH)
        raw_cpu = time.process_time() - raw_cpu
        store = Analytics(config.CLICKHOUSE_SYSTEM)

        def count() -> int:
            return store.execute(f"SELECT uniqExact(event_id) FROM {store.table('events')} "
                                 f"WHERE account_id = %(a)s AND campaign_id = %(c)s", {"a": account_id, "c": campaign})[0][0]

        proc_settled = settle()
        akd("start", "procactions", config=main_json)
        worker_pid = config.pids_dir / "procactions.pid"
        deadline = time.monotonic() + 600
        first_at, first, cpu_first = None, 0, 0.0
        while time.monotonic() < deadline:
            current = count()
            if current and first_at is None:
                first_at, first, cpu_first = time.monotonic(), current, sum(cpu_seconds(worker_pid).values())
            if current >= expected:
                break
            time.sleep(0.05)
        drained = time.monotonic()
        proc_cpu = sum(cpu_seconds(worker_pid).values()) - cpu_first  # its CPU from its first row to its last
        akd("stop", "procactions", config=main_json)
        written = count()
        store.close()
        ch_rate = (written - first) / (drained - first_at) if first_at and drained > first_at else 0.0
    finally:
        run("akd", "stop", config=main_json, timeout=120)
        try:
            with pika.BlockingConnection(broker.parameters(config, app="altcraft-bench")) as connection:
                connection.channel().queue_delete(raw_queue)
        except pika.exceptions.AMQPError:
            pass  # x-expires removes it within the hour
        if vhost is not None:
            test_broker.delete_vhost(vhost)
        pid_file = nginx_dir / "nginx.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass

    ratio = ours["rate"] / reference["rate"]
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"wrk: {ours['command']}; loopback only")
    print(f"before each phase, the machine (bench/_machine.py): ours {ours['settled']}, nginx {reference['settled']}, "
          f"bare consumer {raw_settled}, procactions {proc_settled}")
    print(f"{'':50}{'requests/s':>12}{'requests':>11}{'p50':>9}{'p99':>9}")
    from altcraft import registry

    server = registry.get("trkaction").server
    label = ("ours: trkfront /c/<token> (Go, GOMAXPROCS default)" if args.front == "native"
             else "ours: trkaction /c/<token> (" + server + ", " + str(args.workers) + " workers)")
    print(f"{label:50}"
          f"{ours['rate']:>12,.0f}{ours['requests']:>11,}{ours['p50']:>9}{ours['p99']:>9}")
    print(f"{'reference: nginx return 302 (' + str(args.workers) + ' workers)':50}"
          f"{reference['rate']:>12,.0f}{reference['requests']:>11,}{reference['p50']:>9}{reference['p99']:>9}")
    if ours["non_3xx"] or ours["errors"]:
        print(f"ours: non-3xx answers {ours['non_3xx']}, socket errors {ours['errors'] or 0}")
    delivered = ("in the bench's queue (copies of a resend included)" if args.front == "native"
                 else "confirmed by RabbitMQ")
    print(f"click events: accepted {accepted:,.0f}, {delivered} {confirmed:,.0f}, spooled {spooled:,.0f}; "
          f"the relay caught up {catch_up:.1f} s after the load ended")
    # CPU per click: less sensitive to the machine's load than the rates (nothing else's time in it)
    per_click = {role: (cpu_load.get(role, 0.0) - cpu_before.get(role, 0.0)) / max(1, ours["requests"]) * 1e6
                 for role in cpu_load}
    publishing = {role: (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / max(1, accepted) * 1e6
                  for role in cpu_after if role not in ("worker", "front")}
    print("CPU per click during the load (us): " + ", ".join(f"{r} {v:.1f}" for r, v in sorted(per_click.items()))
          + "; per event until caught up, beside the workers: "
          + (", ".join(f"{r} {v:.1f}" for r, v in sorted(publishing.items())) or "-"))
    # CPU per event (the process's own, user + system): less swayed by the machine's load than the rates
    print(f"RabbitMQ -> ClickHouse (procactions): {written:,} events, {ch_rate:,.0f} events/s "
          f"(first row to last), CPU {proc_cpu / max(1, written - first) * 1e6:.1f} us/event")
    print(f"reference: bare pika consumer, same events and prefetch: {raw_count:,} events, {raw_rate:,.0f} events/s, "
          f"CPU {raw_cpu / max(1, raw_count) * 1e6:.1f} us/event")
    pipeline_ratio = ch_rate / raw_rate if raw_rate else 0.0
    print(f"ratio={ratio:.3f} pipeline_ratio={pipeline_ratio:.3f}")


if __name__ == "__main__":
    main()
