"""The failsafe scheme's kill run (issue 17), on the six containers of molecule/failsafe once
they are converged and verified: a campaign sent through the balancer into an SMTP sink,
opens and clicks flowing through HAProxy to the tracking endpoints meanwhile, and during it,
one after another: an application server killed (the whole container, as a machine dies),
the RabbitMQ node the platform connects to first killed (-9), the ClickHouse replica the
platform writes to first killed (-9), the Redis primary frozen until the Sentinels promote
its replica and then killed (-9). Then the killed nodes are started again and must rejoin.

What it asserts afterwards (`check`):
  * the sink: every recipient got its message, every Message-ID exactly once, except
    copies inside the MTA's repeat window (the message in flight on each of the killed
    server's open SMTP connections: the peer's 250 was sent, akmtad died before it wrote the
    done key), counted and reported apart and bounded by that server's connections;
  * ClickHouse: both replicas hold the same events (the same event ids), every event once
    (FINAL, as the reports count: raw rows are reported too), one delivery event per
    recipient, and every open and click answered through HAProxy there exactly once: each
    request carries a serial in its User-Agent (UA_MARK), so the events are matched to the
    requests one by one (`requests`: answered without an event, or with two); the summary
    is taken once the replicas agree and hold every answered one, or after five minutes;
  * tracking through HAProxy: under 1% failed requests;
  * Prometheus: every target up before the kills, and AltcraftProcessDown firing for each
    of the killed application server's scraped processes (its /api/v1/alerts), before that
    server is started again;
  * the killed nodes rejoined: the app server back UP in HAProxy's both backends, RabbitMQ
    three running nodes, ClickHouse two active replicas none read-only, the old Redis
    primary a replica of the promoted one with its link up.

The sink runs here, in this process (tests/lib/sink.py), on the scenario network's gateway
address (molecule/failsafe/molecule.yml routes sink.test there: MTA.ROUTES). Everything else
is reached with `docker exec` or over the scenario's network (HAProxy on lb1).

Run against kept containers (ALTCRAFT_KEEP_FAILSAFE=1 of failsafe_container.py):
    .venv/bin/python -m tests.lib.failsafe_kill --messages 20000
"""

from __future__ import annotations

import argparse
import email
import email.parser
import email.policy
import http.client
import itertools
import json
import queue
import re
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from html import unescape

from tests.lib import containers
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

PREFIX = "altcraft-fs-"
# a browser's User-Agent (no bot or tool word: botfilter flags nothing), then the request's
# serial after UA_MARK
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
UA_MARK = "fsreq/"
ADDRESS = {"db1": "10.58.0.11", "db2": "10.58.0.12", "db3": "10.58.0.13",
           "app1": "10.58.0.21", "app2": "10.58.0.22", "lb1": "10.58.0.5"}
SINK = ("10.58.0.1", 2525)
BALANCER = ADDRESS["lb1"]
SITES_PORT, TRK_PORT = 443, 8443
# the sink strategy's CONNECTIONS per akmtad (molecule.yml): the most copies one killed
# server's open connections can leave behind
MTA_CONNECTIONS = 2
KV_UNITS = ["altcraft-redis-kvrocks", "altcraft-redis-ssdb-actions", "altcraft-redis-ssdb-hbsupp",
            "altcraft-redis-ssdb-notify", "altcraft-redis-ssdb-stats"]


def log(message: str) -> None:
    print(f"[failsafe-kill {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the containers ------------------------------------------------------------------------

def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """stdout of `docker ARGS` (tests/lib/containers.docker); a failure raises unless check=False."""
    result = containers.docker(*args, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:4])}...: exit {result.returncode}: "
                           f"{result.stderr.decode('utf-8', 'replace')[-2000:]}")
    return result.stdout.decode("utf-8", "replace")


def sh(host: str, command: str, timeout: float = 120, check: bool = True) -> str:
    return docker("exec", PREFIX + host, "bash", "-c", command, timeout=timeout, check=check)


def py(host: str, code: str, *args: str, timeout: float = 60) -> str:
    return docker("exec", PREFIX + host, "python3", "-c", code, *args, timeout=timeout)


_HTTP_GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
"""

_HAPROXY_STAT = """
import socket
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect("/run/haproxy/admin.sock")
s.sendall(b"show stat\\n"); data = b""
while chunk := s.recv(65536):
    data += chunk
for line in data.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[1] not in ("FRONTEND", "BACKEND", "svname"):
        print(f[0], f[1], f[17])
"""


def prometheus(path: str) -> dict:
    return json.loads(py("lb1", _HTTP_GET, f"http://127.0.0.1:9090{path}"))


def haproxy_servers() -> dict[str, str]:
    """backend/server -> status (UP, DOWN, ...)"""
    rows = [line.split(" ", 2) for line in py("lb1", _HAPROXY_STAT).splitlines() if line.strip()]
    return {f"{r[0]}/{r[1]}": r[2] for r in rows}


def clickhouse(host: str, sql: str, fmt: str = " FORMAT TSV") -> list[list[str]]:
    out = docker("exec", PREFIX + host, "clickhouse-client", "--query", sql + fmt, timeout=300)
    return [line.split("\t") for line in out.splitlines() if line]


def unit_pid(host: str, unit: str) -> int:
    return int(sh(host, f"systemctl show -p MainPID --value {unit}").strip() or 0)


def sentinel(command: str) -> list[str]:
    """A Sentinel's answer (the one on db3, which holds no data), one item a line."""
    out = sh("db3", "REDISCLI_AUTH=$(awk '$1 == \"requirepass\" {print $2; exit}' /etc/redis/altcraft-sentinel.conf) "
                    f"redis-cli --no-auth-warning -h {ADDRESS['db3']} -p 26379 {command}")
    return out.splitlines()


def kv_replication(host: str) -> dict[str, str]:
    """INFO replication of the Kvrocks store's Redis (6666) on `host`."""
    out = sh(host, "REDISCLI_AUTH=$(awk '$1 == \"requirepass\" {print $2; exit}' /etc/redis/altcraft-kvrocks.conf) "
                   f"redis-cli --no-auth-warning -h {ADDRESS[host]} -p 6666 INFO replication")
    return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)


# -- the platform's API, through HAProxy ---------------------------------------------------

def _tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the scenario's self-signed certificates
    return context


class Api:
    def __init__(self, token: str):
        self.token = token

    def __call__(self, method: str, **params):
        connection = http.client.HTTPSConnection(BALANCER, SITES_PORT, timeout=60, context=_tls())
        try:
            connection.request("POST", f"/api/v1.1/{method}", body=json.dumps({"token": self.token, **params}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = json.loads(response.read() or b"{}")
        finally:
            connection.close()
        if body.get("error") != 0:
            raise RuntimeError(f"{method}: HTTP {response.status}: {body.get('error_text') or body}")
        return body["data"]


def admin_token() -> str:
    return sh("app2", "/usr/local/bin/aktool token create --admin --name failsafe-kill-"
                      + uuid.uuid4().hex[:6]).strip().splitlines()[-1]


# -- opens and clicks through HAProxy --------------------------------------------------------

@dataclass
class Tracking:
    """Worker threads that request each arriving message's open pixel and click link through
    HAProxy's trk frontend, a new TLS connection each (as mail clients do)."""

    workers: int = 4
    todo: queue.Queue = field(default_factory=queue.Queue)
    # (at, kind, "302"/"200"/error, serial): the serial travels in the User-Agent (UA_MARK), so
    # that ClickHouse's user_agent column names each request's event
    results: list[tuple[float, str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    serials: itertools.count = field(default_factory=lambda: itertools.count(1))

    def start(self) -> Tracking:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def add(self, kind: str, path: str) -> None:
        self.todo.put((kind, path))

    def stop(self) -> None:
        self.todo.join()
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                kind, path = self.todo.get(timeout=0.5)
            except queue.Empty:
                continue
            serial = next(self.serials)
            try:
                outcome = self._get(path, serial)
            except Exception as exc:  # a failed request is a result, counted below
                outcome = f"{type(exc).__name__}: {exc}"[:200]
            with self.lock:
                self.results.append((time.time(), kind, outcome, serial))
            self.todo.task_done()

    @staticmethod
    def _get(path: str, serial: int) -> str:
        connection = http.client.HTTPSConnection(BALANCER, TRK_PORT, timeout=15, context=_tls())
        try:
            connection.request("GET", path, headers={"User-Agent": USER_AGENT + f" {UA_MARK}{serial}"})
            response = connection.getresponse()
            response.read()
            return str(response.status)
        finally:
            connection.close()

    def summary(self, kill_at: float) -> dict:
        """Counts; `answered_just_before_kill`: those answered in the second before the app
        server died (reported: their events are in app1's journal files, published by its
        relay once app1 is started again, and the check expects them)."""
        with self.lock:
            results = list(self.results)
        ok = {"open": "200", "click": "302"}
        failed = [r for r in results if r[2] != ok[r[1]]]
        return {"requests": len(results), "failed": len(failed),
                "failed_ratio": round(len(failed) / max(1, len(results)), 5),
                "answered": dict(Counter(r[1] for r in results if r[2] == ok[r[1]])),
                "answered_just_before_kill": dict(Counter(r[1] for r in results if r[2] == ok[r[1]]
                                                          and kill_at - 1 <= r[0] <= kill_at + 0.5)),
                "failures": dict(Counter(r[2] for r in failed).most_common(8)),
                "failed_at": [round(r[0], 1) for r in failed][:50]}


def answered_serials(results) -> dict[str, dict[int, float]]:
    """kind -> {serial: answered at} of the requests answered as they should be."""
    ok = {"open": "200", "click": "302"}
    out: dict[str, dict[int, float]] = {"open": {}, "click": {}}
    for at, kind, outcome, serial in results:
        if outcome == ok[kind]:
            out[kind][serial] = at
    return out


def tracking_paths(raw: bytes) -> tuple[str | None, str | None]:
    """The open pixel's and the first click link's paths in a message's HTML."""
    message = email.message_from_bytes(raw)
    html = next((part.get_payload(decode=True).decode(errors="replace") for part in message.walk()
                 if part.get_content_type() == "text/html"), "")
    opened = re.search(r'src=["\'][^"\']*?(/o/[A-Za-z0-9_-]+\.gif)', html)
    click = re.search(r'href=["\'][^"\']*?(/c/[A-Za-z0-9_-]+)', html)
    return (unescape(opened.group(1)) if opened else None, unescape(click.group(1)) if click else None)


# -- the run ----------------------------------------------------------------------------------

@dataclass
class Run:
    messages: int
    timeline: dict[str, float] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    def mark(self, what: str) -> None:
        self.timeline[what] = time.time()
        log(what)


def targets_up() -> tuple[int, list[str]]:
    active = prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
    return len(active), [t["scrapeUrl"] for t in active if t["health"] != "up"]


def relays() -> dict[str, list[str]]:
    """The tracking event relays (trk/relay.py, `AK:<process>:relay`, children of the
    tracking processes' masters) running on each app server."""
    return {host: sorted(sh(host, "ps -eo args= | grep '^AK:.*:relay' || true").split())
            for host in ("app1", "app2")}


def process_targets(host: str) -> set[str]:
    """The platform processes Prometheus scrapes on `host` (AltcraftProcessDown's targets)."""
    active = prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
    return {t["labels"].get("process", "") for t in active
            if t["labels"].get("job", "").startswith("altcraft_") and t["labels"].get("host") == host}


def process_down_alerts(host: str) -> list[dict]:
    alerts = prometheus("/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == "AltcraftProcessDown"
            and a["labels"].get("host") == host]


def setup_campaign(api: Api, admin: Api, messages: int) -> dict:
    suffix = uuid.uuid4().hex[:8]
    account = admin("admin/accounts/save", name=f"failsafe-{suffix}")
    token = admin("admin/tokens/add", account_id=account["id"])["token"]
    sender = admin("admin/senders/save", name=f"failsafe-{suffix}", from_email="news@failsafe.example",
                   dkim_algorithm="rsa", ips=[])
    admin("admin/senders/assign", id=sender["id"], account_id=account["id"])
    api.token = token
    db = api("databases/add", name="failsafe")
    recipients = [f"r{i:06d}-{suffix}@sink.test" for i in range(messages)]
    for start in range(0, messages, 1000):  # a call well inside the API client's 60 s
        api("profiles/import_batch", db_id=db["id"], subscribe_resource_id=1,
            data=[{"email": rcpt, "first_name": f"R{start + i}"} for i, rcpt in enumerate(recipients[start:start + 1000])])
    segment = api("segments/add", name="all", db_id=db["id"])
    template = api("templates/add", name="failsafe", subject="Hello {{ first_name }}",
                   html="<p>Hi {{ first_name }}, see <a href='https://shop.example/sale'>the sale</a></p>",
                   text="Hi {{ first_name }}")
    campaign = api("campaigns/add", name="failsafe", db_id=db["id"], segment_id=segment["id"],
                   template_id=template["id"], sender_id=sender["id"])
    return {"account_id": account["id"], "campaign_id": campaign["id"], "recipients": set(recipients)}


def restore() -> None:
    """Whatever a failed run left killed or frozen is started again (best effort), so that the
    containers can be verified or run again."""
    for command in (["start", PREFIX + "app1"],
                    ["exec", PREFIX + "db1", "bash", "-c",
                     "".join(f"systemctl kill -s SIGCONT {unit}; " for unit in KV_UNITS)
                     + "systemctl start rabbitmq-server clickhouse-server " + " ".join(KV_UNITS)]):
        try:
            docker(*command, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            log(f"restore: docker {' '.join(command[:2])} timed out")


def run(messages: int, alert_timeout: float = 420, deliver_timeout: float = 1800) -> dict:
    try:
        return _run(messages, alert_timeout, deliver_timeout)
    except BaseException:
        restore()
        raise


def _run(messages: int, alert_timeout: float, deliver_timeout: float) -> dict:
    state = Run(messages)
    count, down = targets_up()
    assert count > 0 and not down, f"Prometheus targets not up before the kills: {down} (of {count})"
    state.facts["targets_up_before"] = count
    state.facts["relays_before"] = relays()
    app1_processes = process_targets(PREFIX + "app1")
    assert app1_processes, "Prometheus scrapes no platform process on app1"
    assert all(s == "UP" for s in haproxy_servers().values()), haproxy_servers()

    admin = Api(admin_token())
    api = Api("")
    campaign = setup_campaign(api, admin, messages)
    state.facts["campaign_id"] = campaign["campaign_id"]
    tracking = Tracking().start()
    fed: set[int] = set()  # id() of the sink's messages already fed
    feed_lock = threading.Lock()

    with Sink(SINK[1], host=SINK[0]) as sink:
        def feed() -> int:
            """New messages' opens and clicks to the tracking workers; returns messages in the sink."""
            received = sink.messages
            with feed_lock:
                for item in received:
                    key = id(item)
                    if key in fed:
                        continue
                    fed.add(key)
                    opened, click = tracking_paths(item.data)
                    if opened:
                        tracking.add("open", opened)
                    if click:
                        tracking.add("click", click)
            return len(received)

        api("campaigns/start", id=campaign["campaign_id"])
        state.mark("campaign started")
        wait_for(lambda: feed() >= max(50, messages // 10), timeout=600, what="the first tenth in the sink", every=0.5)

        # 1. an application server dies (the container, with akd, its processes and nginx)
        state.mark("kill app1 (docker kill)")
        docker("kill", PREFIX + "app1")
        _feed_for(feed, 20)

        # 2. the RabbitMQ node every client tries first
        state.mark("kill -9 rabbitmq on db1")
        sh("db1", "systemctl kill -s SIGKILL rabbitmq-server")
        _feed_for(feed, 15)
        sh("db1", "systemctl start rabbitmq-server", timeout=300)
        state.mark("rabbitmq on db1 started")
        _feed_for(feed, 10)

        # 3. the ClickHouse replica the platform writes to first
        state.mark("kill -9 clickhouse-server on db1")
        sh("db1", "systemctl kill -s SIGKILL clickhouse-server")
        _feed_for(feed, 15)
        sh("db1", "systemctl start clickhouse-server", timeout=300)
        state.mark("clickhouse on db1 started")
        _feed_for(feed, 10)

        # 4. the Redis primary: frozen (as a machine that stops answering) until the Sentinels
        # have promoted the replica, then killed
        primary_ip = sentinel("SENTINEL get-master-addr-by-name altcraft-kv")[0]
        primary = next(host for host, ip in ADDRESS.items() if ip == primary_ip)
        other = next(host for host in ("db1", "db2") if host != primary)
        state.facts["kv_primary_killed"] = primary
        pids = {unit: unit_pid(primary, unit) for unit in KV_UNITS}
        state.mark(f"freeze the Redis primary on {primary} ({len(pids)} instances)")
        sh(primary, "kill -STOP " + " ".join(str(p) for p in pids.values() if p))
        wait_for(lambda: _feed_and(feed, sentinel("SENTINEL get-master-addr-by-name altcraft-kv")[:1] == [ADDRESS[other]]),
                 timeout=120, what=f"the Sentinels promoting {other}", every=1)
        state.mark(f"Sentinels promoted {other}; kill -9 the old primary")
        sh(primary, "; ".join(f"systemctl kill -s SIGKILL {unit}" for unit in pids) + "; sleep 1; "
                    + "; ".join(f"systemctl start {unit}" for unit in pids), timeout=120)
        state.mark("old Redis primary started again")

        # 5. the process-down alert for the dead app server, then it starts again
        # for each of app1's processes: the rule is per target, and each target's scrapes
        # fail at their own offset in the scrape interval, so they fire one evaluation or
        # two apart; the wait ends when every one of app1's processes fires
        def app1_firing() -> dict[str, str]:
            return {a["labels"].get("process", ""): a.get("activeAt", "")
                    for a in process_down_alerts(PREFIX + "app1") if a["state"] == "firing"}

        wait_for(lambda: _feed_and(feed, app1_firing()), timeout=alert_timeout,
                 what="AltcraftProcessDown firing for app1", every=5)
        state.mark("AltcraftProcessDown firing for app1 (the first of its processes)")
        try:
            wait_for(lambda: _feed_and(feed, set(app1_firing()) >= app1_processes), timeout=120,
                     what="AltcraftProcessDown firing for every process of app1", every=5)
        except AssertionError:  # wait_for's timeout: the check names the processes that did not fire
            pass
        firing = app1_firing()
        state.mark(f"AltcraftProcessDown firing for {len(firing)} of app1's {len(app1_processes)} processes")
        state.facts["alerts_firing"] = sorted(firing)
        state.facts["alerts_active_at"] = firing
        state.facts["app1_processes"] = sorted(app1_processes)
        docker("start", PREFIX + "app1")
        state.mark("app1 started (docker start)")

        wait_for(lambda: _feed_and(feed, all(s == "UP" for s in haproxy_servers().values())),
                 timeout=300, what="app1 UP again in HAProxy's backends", every=2)
        state.mark("app1 UP in HAProxy")

        wait_for(lambda: feed() >= messages and {m.rcpt for m in sink.messages} >= campaign["recipients"],
                 timeout=deliver_timeout, what=f"all {messages} recipients in the sink", every=2)
        state.mark("every recipient reached")
        # late copies (a repeat would come from a server's retry): give them a moment
        _feed_for(feed, 15)
        received = sink.messages
    tracking.stop()
    state.mark("tracking requests done")
    state.facts["sink"] = sink_summary(received, campaign["recipients"], state.timeline["kill app1 (docker kill)"])
    state.facts["tracking"] = tracking.summary(state.timeline["kill app1 (docker kill)"])
    state.facts["rejoined"] = rejoined(state.facts["kv_primary_killed"])
    state.facts["relays_after"] = relays()
    serials = answered_serials(tracking.results)
    state.facts["clickhouse"] = clickhouse_summary(campaign, state.facts["tracking"]["answered"], messages,
                                                   serials=serials, since=state.timeline["campaign started"])
    missing = {kind: [s for s, _ in row["missing_first"]]
               for kind, row in state.facts["clickhouse"]["requests"]["db1"].items() if row["missing"]}
    if missing:
        try:
            state.facts["missing_events_diagnosis"] = diagnose_missing(missing)
        except Exception as exc:  # the diagnosis is for the reader; the check stands without it
            state.facts["missing_events_diagnosis"] = f"{type(exc).__name__}: {exc}"
    state.facts["timeline"] = {k: round(v - state.timeline["campaign started"], 1) for k, v in state.timeline.items()}
    return state.facts


def _feed_for(feed, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        feed()
        time.sleep(0.5)


def _feed_and(feed, value):
    feed()
    return value


def sink_summary(received, recipients: set[str], kill_at: float) -> dict:
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    copies: dict[str, list] = {}
    per_rcpt: dict[str, set[str]] = {}
    for item in received:
        message_id = (parser.parsebytes(item.data)["Message-ID"] or "").strip()
        copies.setdefault(message_id, []).append(item)
        per_rcpt.setdefault(item.rcpt, set()).add(message_id)
    repeats = {mid: items for mid, items in copies.items() if len(items) > 1}
    # the MTA's window: the first copy left the killed app server in the moments before it
    # died (its 250 sent, the done key not yet written), the next came after (the message in flight when akmtad died, sent again from its spool)
    window = {mid for mid, items in repeats.items()
              if items[0].peer == ADDRESS["app1"] and kill_at - 5 <= items[0].at <= kill_at + 1
              and all(i.at > kill_at for i in items[1:])}
    return {"received": len(received), "message_ids": len(copies), "recipients": len(per_rcpt),
            "missing_recipients": len(recipients - set(per_rcpt)),
            "recipients_with_two_message_ids": sum(1 for ids in per_rcpt.values() if len(ids) > 1),
            "repeated_in_mta_window": len(window),
            "repeated_outside_window": len(set(repeats) - window),
            "from": dict(Counter(item.peer for item in received))}


def clickhouse_summary(campaign: dict, answered: dict, messages: int, timeout: float = 300,
                       serials: dict[str, dict[int, float]] | None = None, since: float = 0.0) -> dict:
    """Each replica's events of the campaign per kind, once both replicas agree, hold a
    delivery for every message and as many opens and clicks as were answered through
    HAProxy (or after `timeout`: the check then says what differs). With `serials` (the
    answered requests, answered_serials), each replica's opens and clicks are matched to
    the requests by the serial in their user_agent: which answered requests have no event,
    which have more than one."""
    database = clickhouse("db2", "SELECT database FROM system.replicas WHERE table = 'events_local' LIMIT 1")[0][0]
    where = f"account_id = {int(campaign['account_id'])} AND campaign_id = {int(campaign['campaign_id'])}"

    def replica(host: str) -> dict:
        rows = clickhouse(host, f"SELECT kind, count(), uniqExact(event_id), uniqExact(profile_id), "
                                f"groupBitXor(cityHash64(toString(event_id))) FROM `{database}`.`events_local` "
                                f"WHERE {where} GROUP BY kind ORDER BY kind")
        final = clickhouse(host, f"SELECT kind, count() FROM `{database}`.`events_local` FINAL WHERE {where} "
                                 f"GROUP BY kind ORDER BY kind")
        kinds = {r[0]: {"rows": int(r[1]), "events": int(r[2]), "profiles": int(r[3]), "ids_hash": r[4]} for r in rows}
        for kind, count in final:
            kinds[kind]["final"] = int(count)
        return kinds

    def complete(kinds: dict) -> bool:
        return (kinds.get("delivered", {}).get("profiles", 0) >= messages
                and all(kinds.get(kind, {}).get("events", 0) >= count for kind, count in answered.items()))

    per_replica: dict = {}
    previous = None
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        per_replica = {host: replica(host) for host in ("db1", "db2")}
        if per_replica["db1"] == per_replica["db2"] == previous and complete(per_replica["db1"]):
            break
        previous = per_replica["db1"] if per_replica["db1"] == per_replica["db2"] else None
        time.sleep(5)
    summary = {"database": database, "per_replica": per_replica, "answered": answered, "messages": messages,
               "settled_after_s": round(time.monotonic() - started)}
    if serials is not None:
        summary["requests"] = {host: request_events(host, database, where, serials, since)
                               for host in ("db1", "db2")}
    return summary


def request_events(host: str, database: str, where: str, serials: dict[str, dict[int, float]],
                   since: float = 0.0) -> dict:
    """Per kind: answered requests without an event (`missing`, with the first serials and
    their answer times), with more than one event (`doubled`), and events of requests not
    answered as they should be (`unanswered`: a client-side failure the server recorded)."""
    rows = clickhouse(host, f"SELECT kind, toUInt64OrZero(extract(user_agent, '{UA_MARK}([0-9]+)')) AS serial, "
                            f"uniqExact(event_id) FROM `{database}`.`events_local` WHERE {where} "
                            f"AND kind IN ('open', 'click') GROUP BY kind, serial")
    return match_requests([(kind, int(serial), int(events)) for kind, serial, events in rows], serials, since)


def match_requests(rows: list[tuple[str, int, int]], serials: dict[str, dict[int, float]],
                   since: float = 0.0) -> dict:
    """request_events' reading of (kind, serial, distinct events) rows against the answered
    requests (kind -> {serial: answered at}); `missing_by_30s`: the missing ones by when they
    were answered, seconds after `since` (the campaign's start) in 30 s steps."""
    held: dict[str, Counter] = {"open": Counter(), "click": Counter()}
    for kind, serial, events in rows:
        held[kind][serial] = events
    out = {}
    for kind, answered in serials.items():
        missing = sorted(set(answered) - set(held[kind]))
        out[kind] = {"answered": len(answered), "with_event": len(set(answered) & set(held[kind])),
                     "missing": len(missing),
                     "missing_first": [(serial, round(answered[serial], 1)) for serial in missing[:20]],
                     "missing_by_30s": dict(sorted(Counter(int((answered[serial] - since) // 30 * 30)
                                                           for serial in missing).items())),
                     "doubled": sum(1 for serial, n in held[kind].items() if n > 1),
                     "unanswered": len(set(held[kind]) - set(answered))}
    return out


def diagnose_missing(missing: dict[str, list[int]]) -> dict:
    """Where answered requests without an event went: which app server's nginx logged each
    (its access log names the serial in the User-Agent), what the tracking spool directories
    and RabbitMQ's queues hold now."""
    found: dict = {}
    for kind, serials in missing.items():
        for serial in serials[:10]:
            hits = {}
            for host in ("app1", "app2"):
                out = sh(host, f"grep -h '{UA_MARK}{serial}\"' /var/log/altcraft-nginx/trk-access.log || true", check=False)
                if out.strip():
                    hits[host] = out.strip()[-300:]
            found[f"{kind} {serial}"] = hits
    spools = {host: sh(host, "ls -la /opt/akd/run/trk/* 2>&1 | tail -20", check=False) for host in ("app1", "app2")}
    queues = sh("db1", "rabbitmqctl -q list_queues name type messages messages_unacknowledged 2>&1", check=False)
    return {"nginx": found, "spools": spools, "queues": queues}


def rejoined(old_primary: str) -> dict:
    rabbit = json.loads(sh("db1", "rabbitmqctl -q cluster_status --formatter json"))
    replicas = clickhouse("db1", "SELECT count(), countIf(is_readonly), min(active_replicas) FROM system.replicas")[0]
    master = sentinel("SENTINEL get-master-addr-by-name altcraft-kv")
    return {"haproxy": haproxy_servers(),
            "rabbitmq_running_nodes": len(rabbit["running_nodes"]),
            "clickhouse_tables": int(replicas[0]), "clickhouse_readonly": int(replicas[1]),
            "clickhouse_min_active_replicas": int(replicas[2]),
            "kv_primary": master[0] if master else "",
            "old_kv_primary": {k: v for k, v in kv_replication(old_primary).items()
                               if k in ("role", "master_host", "master_link_status")}}


def check(facts: dict) -> list[str]:
    """What did not hold, one sentence each (empty: the run proved the scheme)."""
    problems = []
    sink, trk, ch, back = facts["sink"], facts["tracking"], facts["clickhouse"], facts["rejoined"]
    if sink["missing_recipients"] or sink["recipients_with_two_message_ids"]:
        problems.append(f"sink: {sink['missing_recipients']} recipients missing, "
                        f"{sink['recipients_with_two_message_ids']} with two Message-IDs")
    if sink["repeated_outside_window"]:
        problems.append(f"sink: {sink['repeated_outside_window']} Message-IDs delivered twice outside the MTA's window")
    if sink["repeated_in_mta_window"] > MTA_CONNECTIONS:
        problems.append(f"sink: {sink['repeated_in_mta_window']} repeats in the MTA's window, more than the "
                        f"killed server's {MTA_CONNECTIONS} connections")
    if trk["failed_ratio"] >= 0.01:
        problems.append(f"tracking: {trk['failed']} of {trk['requests']} requests failed ({trk['failures']})")
    replicas = ch["per_replica"]
    if replicas["db1"] != replicas["db2"]:
        problems.append(f"clickhouse: the replicas differ: {replicas}")
    for host, kinds in replicas.items():
        # one delivery per recipient; a repeat in the MTA's window may add its own event
        # (the same Message-ID, so the same event id unless its attempt number differs)
        delivered = kinds.get("delivered", {})
        if delivered.get("profiles") != ch["messages"] or not (
                ch["messages"] <= delivered.get("events", 0) <= ch["messages"] + sink["repeated_in_mta_window"]):
            problems.append(f"clickhouse {host}: delivered events {delivered} for {ch['messages']} messages")
        for kind, row in kinds.items():
            if row.get("final") != row["events"]:
                problems.append(f"clickhouse {host}: {kind} counts {row.get('final')} rows FINAL for {row['events']} events")
        # every answered open and click, also those answered just before app1 died: the
        # worker's journal line was written before the answer (trk/journal.py), and the
        # container's files outlive its processes
        for kind, count in ch["answered"].items():
            held = kinds.get(kind, {}).get("events", 0)
            if held < count:  # more: a request that failed here but was recorded (`unanswered`)
                problems.append(f"clickhouse {host}: {held} {kind} events for {count} answered through HAProxy "
                                f"({trk['answered_just_before_kill'].get(kind, 0)} of them just before the kill)")
        for kind, row in ch.get("requests", {}).get(host, {}).items():
            if row["missing"] or row["doubled"]:
                problems.append(f"clickhouse {host}: {kind}: {row['missing']} answered requests without an event "
                                f"(answered, seconds after the start: {row['missing_by_30s']}), "
                                f"{row['doubled']} with more than one")
    for moment in ("relays_before", "relays_after"):
        for host, running in facts.get(moment, {}).items():
            # trkaction answers /o and /c behind the trk instance (its default process)
            if "AK:trkaction:relay" not in running:
                problems.append(f"trk: the event relays on {host} ({moment}): {running}")
    if not facts.get("alerts_firing"):
        problems.append("prometheus: AltcraftProcessDown did not fire for app1")
    elif set(facts.get("app1_processes", [])) - set(facts["alerts_firing"]):
        problems.append("prometheus: AltcraftProcessDown did not fire for app1's "
                        f"{sorted(set(facts['app1_processes']) - set(facts['alerts_firing']))}")
    if any(status != "UP" for status in back["haproxy"].values()):
        problems.append(f"haproxy: {back['haproxy']}")
    if back["rabbitmq_running_nodes"] != 3:
        problems.append(f"rabbitmq: {back['rabbitmq_running_nodes']} running nodes")
    if back["clickhouse_readonly"] or back["clickhouse_min_active_replicas"] != 2:
        problems.append(f"clickhouse: {back}")
    old = back["old_kv_primary"]
    if old.get("role") != "slave" or old.get("master_link_status") != "up" or old.get("master_host") != back["kv_primary"]:
        problems.append(f"redis: the old primary did not rejoin as a replica of {back['kv_primary']}: {old}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print only the result as JSON")
    args = parser.parse_args()
    facts = run(args.messages)
    facts["problems"] = check(facts)
    print(json.dumps(facts, indent=None if args.json else 2, default=str))
    return 1 if facts["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
