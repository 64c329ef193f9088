"""A client of the API v1.1 written as an integrator writes it from Altcraft's guide, and a stand
to point it at: one api process under akd on the shared real stores (tests/compat/, #16)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.lib import broker
from tests.lib.api import STRONG
from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.ports import free_port

ENVELOPE = {"error", "error_text"}


class Altcraft:
    """POST JSON to /api/v1.1/<method>, the token in the body or as `Authorization: Bearer`."""

    def __init__(self, port: int, token: str, bearer: bool = False):
        self.port, self.token, self.bearer = port, token, bearer

    def __call__(self, method: str, body: dict) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            body = {"token": self.token, **body}
        return self.post(f"/api/v1.1/{method}", json.dumps(body).encode(), headers)

    def post(self, path: str, data: bytes, headers: dict) -> tuple[int, dict]:
        """The transport: HTTP to the api process (tests/lib/compat_api.py: Flask's client)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def ok(self, method: str, body: dict) -> dict:
        status, answer = self(method, body)
        assert status == 200 and answer["error"] == 0 and set(answer) >= ENVELOPE, (method, answer)
        return answer

    def refused(self, method: str, body: dict, status: int = 400) -> str:
        """The error_text of a refusal with this HTTP status (and the same `error`)."""
        got, answer = self(method, body)
        assert (got, answer["error"]) == (status, status), (method, got, answer)
        return answer["error_text"]


@dataclass(frozen=True)
class Stand:
    admin: Altcraft
    shop: Altcraft  # the account's client, its token sent as Bearer
    account_id: int
    db_id: int
    sender_id: int  # a sender assigned to the account


@contextmanager
def api_process(harness: dict, basedir: Path) -> Iterator[Altcraft]:
    """One api process under akd (gunicorn, as in production) on the shared real stores, with a
    RabbitMQ vhost of its own (what it publishes reaches no other test); yields the admin client
    (its port is the process's)."""
    port, vhost = free_port(), broker.add_vhost(harness)
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"api": {"PORT": port}},
                                           RABBITMQ_VHOST=vhost)))
    try:
        assert run("aktool", "migrate", config=path).returncode == 0
        started = run("akd", "start", "api", config=path)
        assert started.returncode == 0, started.stdout + started.stderr
        yield Altcraft(port, run("aktool", "token", "create", "--admin", config=path).stdout.strip().splitlines()[-1])
    finally:
        run("akd", "stop", config=path)
        broker.delete_vhost(vhost)


def new_account(admin: Altcraft, name: str) -> Stand:
    """An account with a user, its token, a database and an assigned sender, made through this
    platform's own methods (Altcraft makes accounts and tokens in its panels)."""
    account = admin.ok("admin/accounts/save", {"name": name, "tz": "UTC"})["data"]
    user = admin.ok("admin/accounts/users/add", {"account_id": account["id"], "login": name,
                                                 "password": STRONG})["data"]
    token = admin.ok("admin/tokens/add", {"account_id": account["id"], "user_id": user["id"]})["data"]["token"]
    shop = Altcraft(admin.port, token, bearer=True)
    db = shop.ok("databases/add", {"name": "customers"})["data"]
    sender = admin.ok("admin/senders/save", {"name": name, "from_email": f"news@{name}.example",
                                             "dkim_algorithm": "none"})["data"]
    admin.ok("admin/senders/assign", {"id": sender["id"], "account_id": account["id"]})
    return Stand(admin, shop, account["id"], db["id"], sender["id"])
