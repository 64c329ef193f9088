"""What the tracking, procactions, report and browser tests share: a platform under akd on
the harness servers, with queue depths and ClickHouse rows to look at.

Each stand has its own RabbitMQ vhost (the `vhost` fixture, tests/lib/broker.py), its own
ClickHouse database and its own control and account databases, so queue depths and row
counts are the test's own. Campaign ids are random all the same where no campaign document
is needed, so that a row can never be mistaken for another test's.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from altcraft import config as cfg
from altcraft.domain.tracking import Link, url as tracking_url
from altcraft.schema import migrate as migration
from altcraft.stores import broker
from altcraft.stores.analytics import Analytics
from tests.lib.broker import depth as queue_depth
from tests.lib.cli import run, run_json
from tests.lib.harness import SECRET, make_config
from tests.lib.ports import free_port


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(NoRedirect)


def http(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) without following redirects."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@dataclass
class Stand:
    """A main.json for the harness with trkaction on a free port, and helpers around it."""

    path: Path
    config: cfg.MainConfig
    port: int
    started: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- processes ---------------------------------------------------------------------
    def start(self, *names: str) -> None:
        result = run("akd", "start", *names, config=self.path, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr + self.logs(*names)
        self.started += [n for n in names if n not in self.started]

    def stop(self, *names: str) -> None:
        run("akd", "stop", *names, config=self.path, timeout=120)

    def status(self, name: str) -> dict:
        return run_json("akd", "status", name, config=self.path)[1][0]

    def logs(self, *names: str) -> str:
        out = []
        for name in names:
            log = self.config.logs_dir / f"{name}.log"
            if log.exists():
                out.append(f"\n---- {log} ----\n" + "\n".join(log.read_text().splitlines()[-40:]))
        return "".join(out)

    # -- links -------------------------------------------------------------------------
    def link(self, kind: str, account_id: int, db_id: int, campaign_id: int, profile_id: str,
             resource_id: int = 1, link_id: int = 0, target: str = "", issued: int | None = None) -> str:
        return tracking_url(self.base, Link(kind, account_id, db_id, resource_id, campaign_id, profile_id,
                                            link_id, target, issued or int(time.time()) - 3600), SECRET)

    # -- stores ------------------------------------------------------------------------
    def analytics(self) -> Analytics:
        return Analytics(self.config.CLICKHOUSE_SYSTEM)

    def rows(self, where: str, params: dict | None = None, what: str = "count()") -> int:
        store = self.analytics()
        try:
            return store.execute(f"SELECT {what} FROM {store.table('events')} WHERE {where}", params)[0][0]
        finally:
            store.close()

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        store = self.analytics()
        try:
            return store.execute(sql.replace("{events}", store.table("events")), params)
        finally:
            store.close()

    def depth(self, queue: str) -> int:
        return queue_depth(self.config, queue)

    def publish(self, events: list[tuple[str, str, bytes]]) -> None:
        publish_events(self.config, events)


def publish_events(config: cfg.MainConfig, events: list[tuple[str, str, bytes]]) -> None:
    """Publishes encoded events, (event_id, routing key, body) as domain.events.action and
    .delivery make them, through trkaction's publisher (each one confirmed)."""
    from altcraft.schema.rabbitmq import EVENTS_EXCHANGE
    from altcraft.services.trk.publisher import EventPublisher

    spool = Path(tempfile.mkdtemp(prefix="trk-test-spool-"))
    publisher = EventPublisher(lambda: broker.parameters(config, app="altcraft-test"),
                               EVENTS_EXCHANGE, spool, flush_timeout=120, max_buffer=len(events) + 1)
    for event_id, routing_key, body in events:
        publisher.submit(routing_key, body, event_id)
    publisher.close()
    spooled = list(spool.iterdir()) if spool.exists() else []
    shutil.rmtree(spool, ignore_errors=True)
    assert not spooled, "the broker did not confirm every test event"


def campaign_id() -> int:
    return random.randrange(10**9, 10**12)


def make_stand(harness: dict, basedir: Path, vhost: str, processes: dict | None = None, **overrides) -> Stand:
    """`processes`: settings of other processes (e.g. webcontrol's PORT), beside trkaction's."""
    port = free_port()
    settings = make_config(harness, basedir, TRACKING_BASE_URL=f"http://127.0.0.1:{port}", RABBITMQ_VHOST=vhost,
                           PROCESSES={"trkaction": {"PORT": port, "WORKERS": 2}, **(processes or {})}, **overrides)
    path = basedir / "main.json"
    path.write_text(json.dumps(settings, indent=2))
    config, _ = cfg.load(path)
    migration.run(config)
    return Stand(path, config, port)
