"""Fixtures shared by the whole suite.

Integration tests run against the real servers of tests/harness/servers.sh. The harness is
started here if it is not running; a server that cannot be had fails the run loudly. It is
never a skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "harness" / "servers.sh"
HARNESS_DIR = Path(os.environ.get("ALTCRAFT_HARNESS_DIR", "/tmp/altcraft-harness"))
SECRET = "s3cr3t-for-tests-only-0123456789abcdef"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def harness() -> dict:
    """Connection facts of the running real servers (starting them if needed)."""
    result = subprocess.run([str(HARNESS), "start"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            "the real-server harness did not start; integration tests cannot run:\n"
            + result.stdout + result.stderr, pytrace=False,
        )
    facts = json.loads((HARNESS_DIR / "harness.json").read_text())
    down = [
        name for name, server in facts.items()
        if "port" in server and not _port_open(server["host"], server["port"])
    ]
    if down:
        pytest.fail(f"harness servers not reachable: {', '.join(down)}", pytrace=False)
    return facts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture
def vhost(harness) -> str:
    """A RabbitMQ vhost of the test's own, so queues left by another test never leak in."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    user = harness["rabbitmq"]["user"]
    for args in (["add_vhost", name], ["set_permissions", "-p", name, user, ".*", ".*", ".*"]):
        subprocess.run([str(HARNESS), "rabbitmqctl", "-q", *args], check=True, capture_output=True)
    yield name
    subprocess.run([str(HARNESS), "rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


@pytest.fixture
def stand(harness, basedir, vhost):
    """The tracking stand (tests/e2e/support.py): config, processes under akd, helpers."""
    from tests.e2e.support import make_stand

    stand = make_stand(harness, basedir, vhost)
    yield stand
    stand.stop()


@pytest.fixture
def basedir(tmp_path: Path) -> Path:
    path = tmp_path / "akd"
    path.mkdir()
    return path


@pytest.fixture
def main_json(harness: dict, basedir: Path) -> Path:
    """Path of a ready main.json for the harness; the file may be rewritten by the test."""
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir), indent=2))
    return path


@pytest.fixture
def config(main_json: Path):
    from altcraft import config as cfg

    loaded, _ = cfg.load(main_json)
    return loaded
