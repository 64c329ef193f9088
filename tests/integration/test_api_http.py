"""The issue's scenario over real HTTP: the api process under akd (gunicorn), real stores."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def api(harness, basedir):
    port = free_port()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"api": {"PORT": port}})))
    assert run("aktool", "migrate", config=path).returncode == 0
    started = run("akd", "start", "api", config=path)
    assert started.returncode == 0, started.stdout + started.stderr
    admin_token = run("aktool", "token", "create", "--admin", config=path).stdout.strip().splitlines()[-1]
    yield port, admin_token
    run("akd", "stop", config=path)


def post(port: int, method: str, **params):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1.1/{method}",
                                     data=json.dumps(params).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_admin_creates_account_user_and_the_users_token_manages_profiles(api):
    port, admin = api

    def ok(method, **params):
        status, body = post(port, method, **params)
        assert status == 200 and body["error"] == 0 and body["error_text"] == "Successful operation", (method, body)
        return body["data"]

    account = ok("admin/accounts/save", token=admin, name="http-shop", title="HTTP shop", tz="Europe/Moscow")
    user = ok("admin/accounts/users/add", token=admin, account_id=account["id"], login="owner",
              password="Correct-Horse-Battery-9", master=True, roles=["admin"])
    token = ok("admin/tokens/add", token=admin, account_id=account["id"], user_id=user["id"])["token"]
    other_account = ok("admin/accounts/save", token=admin, name="http-other")
    other = ok("admin/tokens/add", token=admin, account_id=other_account["id"])["token"]

    db = ok("databases/add", token=token, name="customers")
    profile = ok("profiles/add", token=token, db_id=db["id"], data={"email": "ivan@example.com", "first_name": "Ivan"})
    assert ok("profiles/get", token=token, db_id=db["id"], profile_id=profile["id"])["data"]["gender"] == "m"
    assert ok("profiles/update", token=token, db_id=db["id"], profile_id=profile["id"],
              data={"city": "Perm"})["data"]["city"] == "Perm"

    for method, params in (("profiles/get", {}), ("profiles/update", {"data": {"city": "X"}}),
                           ("profiles/delete", {})):
        status, body = post(port, method, token=other, db_id=db["id"], profile_id=profile["id"], **params)
        assert status == 404 and body["error"] != 0 and body["data"] is None, (method, body)

    ok("profiles/delete", token=token, db_id=db["id"], profile_id=profile["id"])
    status, body = post(port, "profiles/get", token=token, db_id=db["id"], profile_id=profile["id"])
    assert status == 404 and body["error"] == 404

    listed = post(port, "admin/accounts/list/", token=admin)[1]
    assert listed["total_count"] >= 2 and {"http-shop", "http-other"} <= {a["name"] for a in listed["data"]}
