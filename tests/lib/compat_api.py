"""A client of the API as an integrator writes it from Altcraft's guide, and an account to call
it with (tests/compat, issue #16).

`account_api` serves the API in-process (the api process's Flask app, Flask's test client) on
the shared real stores, and makes an account, its token and a profile database through this
platform's own methods (Altcraft makes those in its panels). The transport under akd and
gunicorn is proven by tests/compat/test_altcraft_requests.py; these modules prove shapes and
save its start and stop (about 25 s a module on a loaded machine).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lib.api import STRONG
from tests.lib.harness import make_config

ENVELOPE = {"error", "error_text"}


class Altcraft:
    """POST JSON to /api/v1.1/<method>, read the envelope; the token in the body or as Bearer."""

    def __init__(self, http: Any, token: str, bearer: bool = False):
        self.http, self.token, self.bearer = http, token, bearer

    def __call__(self, method: str, body: dict) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            body = {"token": self.token, **body}
        response = self.http.post(f"/api/v1.1/{method}", data=json.dumps(body), headers=headers)
        return response.status_code, response.get_json()

    def ok(self, method: str, body: dict) -> dict:
        status, answer = self(method, body)
        assert status == 200 and answer["error"] == 0 and set(answer) >= ENVELOPE, (method, answer)
        return answer

    def refused(self, method: str, body: dict, status: int = 400) -> str:
        """The error_text of a refusal with `status` (Altcraft's number in `error` too)."""
        got, answer = self(method, body)
        assert (got, answer["error"]) == (status, status), (method, answer)
        return answer["error_text"]


@dataclass(frozen=True)
class Account:
    admin: Altcraft
    shop: Altcraft  # the account's token, sent as Bearer
    db_id: int
    account_id: int
    platform: Any  # altcraft.wiring.Platform on the same stores, for what no API method shows


@contextmanager
def account_api(harness, basedir: Path, fields: list[dict] | None = None) -> Iterator[Account]:
    from altcraft import config as cfg
    from altcraft import registry
    from altcraft.schema import migrate as migration
    from altcraft.services.api import create_app
    from altcraft.wiring import Platform

    basedir.mkdir(parents=True, exist_ok=True)
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir)))
    config, _ = cfg.load(path)
    migration.run(config)
    platform = Platform(config)
    try:
        http = create_app(config, registry.get("api")).test_client()
        admin = Altcraft(http, platform.tokens.create("admin")[0])
        account = admin.ok("admin/accounts/save", {"name": "compat", "tz": "Europe/Moscow"})["data"]
        user = admin.ok("admin/accounts/users/add", {"account_id": account["id"], "login": "compat",
                                                     "password": STRONG})["data"]
        token = admin.ok("admin/tokens/add", {"account_id": account["id"], "user_id": user["id"]})["data"]["token"]
        shop = Altcraft(http, token, bearer=True)
        db = shop.ok("databases/add", {"name": "customers", "fields": fields or []})["data"]
        yield Account(admin, shop, db["id"], account["id"], platform)
    finally:
        platform.close()
