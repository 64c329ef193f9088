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

from tests.lib.altcraft_api import Altcraft as HttpAltcraft
from tests.lib.api import STRONG
from tests.lib.harness import make_config

class Altcraft(HttpAltcraft):
    """The same client, its requests handed to the api's Flask app in-process."""

    def __init__(self, http: Any, token: str, bearer: bool = False):
        super().__init__(0, token, bearer)
        self.http = http

    def post(self, path: str, data: bytes, headers: dict) -> tuple[int, dict]:
        response = self.http.post(path, data=data, headers=headers)
        return response.status_code, response.get_json()


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
