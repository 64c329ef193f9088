"""The campaign -> RabbitMQ -> akmtad -> SMTP sink pipeline as the MTA tests drive it: a
main.json routing all mail to a local sink, a campaign set up in the real stores, akd to
run the processes, and DKIM verification of what the sink received (the delivery events are
read with tests/lib/broker.py)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from altcraft import config as cfg
from altcraft.domain.stoplist import StopList
from altcraft.schema import migrate as migration
from altcraft.stores import kv
from altcraft.wiring import Platform
from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.ports import free_port

VERIFIER = Path(__file__).resolve().parent / "dkim_verify.pl"
TEMPLATE_HTML = ('<html><body><p>Hello {{ first_name | default("friend") }}!</p>'
                 '<a href="https://shop.example/sale?utm=mail&amp;id=1">Sale</a> '
                 '<a href="https://shop.example/about">About</a> <a href="mailto:help@shop.example">Help</a>'
                 '</body></html>')


class Pipeline:
    def __init__(self, harness, basedir: Path, sink_port: int, vhost: str, settings: dict | None = None,
                 processes: dict | None = None, **mta):
        self.basedir = basedir
        self.main_json = basedir / "main.json"
        mta = {"ROUTES": {"*": f"127.0.0.1:{sink_port}"}, "TRY_TLS": False,
               "SPOOL_DIR": str(basedir / "spool"),
               "RETRY": {"TYPE": "fixed", "INTERVAL_SECONDS": 2, "MAX_ATTEMPTS": 5}, **mta}
        settings = dict(settings or {})  # may name a TRACKING_BASE_URL and other processes' settings
        settings.setdefault("TRACKING_BASE_URL", "https://click.example.test")
        settings["PROCESSES"] = {"akmtad": {"PORT": free_port()}, **(processes or {}), **settings.get("PROCESSES", {})}
        data = make_config(harness, basedir, MTA=mta, RABBITMQ_VHOST=vhost, **settings)
        self.main_json.write_text(json.dumps(data))
        self.config, _ = cfg.load(self.main_json)
        migration.run(self.config)
        self.platform = Platform(self.config)

    def setup_campaign(self, profiles: int, algorithm: str = "ed25519", unsubscribed: int = 0,
                       stopped: int = 0, rules_emails: list[str] = ()) -> dict:
        p = self.platform
        account = p.accounts.save(name="sender-test")
        database = p.databases(account["id"]).add("main")
        # addresses unique to this run: the stop list lives in a store other tests share too
        tag = uuid.uuid4().hex[:6]
        rows = [{"email": f"user{i:06d}.{tag}@example{i % 7}.test", "first_name": "Anna" if i % 2 else "Ivan"}
                for i in range(profiles)] + [{"email": e} for e in rules_emails]
        store = p.profiles(account["id"], database.id)
        for start in range(0, len(rows), 5000):
            store.upsert_prepared([store.prepare(r, require_key=True) for r in rows[start:start + 5000]],
                                  subscribe=(1, "email"))
        docs = list(store.collection.find({}, {"data.email": 1}).sort("_id", 1))
        excluded = set()
        for doc in docs[:unsubscribed]:
            store.set_subscription(doc["_id"], 1, "email", "unsubscribed")
            excluded.add(doc["data"]["email"])
        stoplist = StopList(kv.ssdb(self.config, "hbsupp"))
        for doc in docs[unsubscribed:unsubscribed + stopped]:
            stoplist.add(doc["data"]["email"], "test")
            excluded.add(doc["data"]["email"])
        sender = p.senders.save(name="news", from_email="news@shop.example", from_name="Shop",
                                dkim_algorithm=algorithm)
        p.senders.assign(sender["id"], account["id"])
        segment = p.segments(account["id"]).add("everyone", database.id, {})
        template = p.templates(account["id"]).add("promo", "Hi {{ first_name }}", TEMPLATE_HTML,
                                                  "Hello {{ first_name }}")
        campaign = p.campaigns.add(account["id"], "promo", database.id, segment["id"], template["id"],
                                   sender["id"])
        expected = {d["data"]["email"] for d in docs} - excluded
        return {"account": account, "db": database, "sender": p.senders.get(sender["id"]),
                "campaign": campaign, "expected": expected, "stoplist": stoplist,
                "order": [d["data"]["email"] for d in docs]}  # the order the campaign sends in

    def start(self, *names: str) -> None:
        result = run("akd", "start", *names, config=self.main_json)
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self) -> None:
        run("akd", "stop", config=self.main_json)
        self.platform.close()

    def pid(self, name: str) -> int:
        return int((self.basedir / "pids" / f"{name}.pid").read_text())

    def campaign(self, setup) -> dict:
        return self.platform.campaigns.get(setup["account"]["id"], setup["campaign"]["id"])


def verify_dkim(messages, sender, tmp_path: Path) -> subprocess.CompletedProcess:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{sender['dkim_selector']}._domainkey.{sender['dkim_domain']} {sender['dkim_dns_record']}\n")
    files = []
    for index, message in enumerate(messages):
        path = tmp_path / f"m{index}.eml"
        path.write_bytes(message.data)
        files.append(str(path))
    return subprocess.run(["perl", str(VERIFIER), str(keys), *files], capture_output=True, text=True)

