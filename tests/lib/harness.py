"""The real servers of tests/harness/servers.sh and a complete main.json for them.

A server that cannot be had is an error (HarnessError), never a reason to skip: the pytest
fixture turns it into a failure, bench/ into an exit with the harness's own output.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from tests.lib import ROOT
from tests.lib.ports import free_port, port_open

HARNESS = ROOT / "tests" / "harness" / "servers.sh"
HARNESS_DIR = Path(os.environ.get("ALTCRAFT_HARNESS_DIR", "/tmp/altcraft-harness"))
SECRET = "s3cr3t-for-tests-only-0123456789abcdef"


class HarnessError(RuntimeError):
    """The harness did not start, or one of its servers does not answer."""


def start() -> dict:
    """Starts the harness unless it runs already; returns its connection facts."""
    result = subprocess.run([str(HARNESS), "start"], capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError("the real-server harness did not start:\n" + result.stdout + result.stderr)
    facts = json.loads((HARNESS_DIR / "harness.json").read_text())
    down = [
        name for name, server in facts.items()
        if "port" in server and not port_open(server["host"], server["port"])
    ]
    if down:
        raise HarnessError(f"harness servers not reachable: {', '.join(down)}")
    return facts


def servers(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """tests/harness/servers.sh with `args` (start/stop a server, rabbitmqctl ...)."""
    return subprocess.run([str(HARNESS), *args], check=check, capture_output=True)


def make_config(harness: dict, basedir: Path, **overrides) -> dict:
    """A complete main.json for the harness servers, with names unique to one test."""
    tag = uuid.uuid4().hex[:8]
    mongo_uri = harness["mongodb"]["uri"]
    ch, mq, redis, pg = harness["clickhouse"], harness["rabbitmq"], harness["redis"], harness["postgresql"]
    kv = {"ENGINE": "redis", "NODES": [{"HOST": redis["host"], "PORT": redis["port"]}]}
    config = {
        "BASEDIR": str(basedir),
        "DOCUMENTS_ENGINE": "ferretdb" if harness["mongodb"].get("engine") == "ferretdb" else "mongodb",
        "CONTROLDB_URI": mongo_uri,
        "CONTROLDB_NAME": f"control_{tag}",
        "ACCOUNTDB_URI": mongo_uri,
        "ACCOUNTDB_PREFIX": f"t{tag}_account_",
        "CLICKHOUSE_SYSTEM": {
            "HOST": ch["host"], "PORT": ch["port"], "USER": ch["user"],
            "PASSWORD": ch["password"], "DATABASE_NAME": f"altcraft_{tag}",
        },
        "RABBITMQ_HOST": mq["host"], "RABBITMQ_PORT": mq["port"], "RABBITMQ_VHOST": mq["vhost"],
        "RABBITMQ_USER": mq["user"], "RABBITMQ_PASS": mq["password"],
        "CAMP_DUPLICATESDB": kv,
        "PROCWORKFLOW_DISTRIBUTED_CACHE_DB": kv,
        "SSDB_ENGINE": "redis",
        **{f"SSDB_{role}_{k}": v for role in ("ACTIONS", "HBSUPP", "NOTIFY", "STATS")
           for k, v in (("IP", redis["host"]), ("PORT", redis["port"]))},
        "POSTGRESQL": {"ENABLE": True, "HOST": pg["host"], "PORT": pg["port"], "USER": pg["user"],
                       "PASSWORD": pg["password"], "DATABASE": pg["database"]},
        "PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET,
        "AKD": {"START_SECONDS": 3, "START_RETRIES": 2, "BACKOFF_INITIAL": 0.3, "STOP_TIMEOUT": 5},
    }
    # every process on a port of its own: default ports may belong to an installed platform
    from altcraft import registry

    processes = {p.name: {"PORT": free_port()} for p in registry.PROCESSES if p.port}
    for name, settings in overrides.pop("PROCESSES", {}).items():
        processes[name] = {**processes.get(name, {}), **settings}
    config["PROCESSES"] = processes
    config.update(overrides)
    return config


def migrated_config(harness: dict, basedir: Path, **overrides):
    """make_config written as basedir/main.json, loaded and migrated: the MainConfig."""
    from altcraft import config as cfg
    from altcraft.schema import migrate as migration
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, **overrides)))
    config, _ = cfg.load(path)
    migration.run(config)
    return config
