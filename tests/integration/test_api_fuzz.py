"""Every endpoint of the served OpenAPI document, fed generated requests: never a 5xx (#16).

Why here and not in tests/compat/: tests/compat holds requests exactly as Altcraft's guide writes
them, one per compatible row; this test covers every endpoint this platform serves (its own
additions included, and endpoints registered after it was written, since it reads the served
document), and needs the real API process with real stores behind it, which is what
tests/integration is for.

The api process runs under akd (gunicorn), as in production. Requests carry a valid token of the
endpoint's scope (in the body or as `Authorization: Bearer`), as JSON or form fields, and mix values the document allows with values it does not (out-of-range
integers, integers past int64, strings past maxLength and 100k characters long, wrong JSON
types, unknown keys, deep or huge free-form objects; tests/lib/openapi_requests.py). Each answer
must be the envelope with a status below 500, and a 400 must name what it refuses: a parameter
of the document or a key of the request.

Hypothesis runs derandomized (the same examples every run, so CI is reproducible) with a bounded
number of examples per endpoint, and no example database.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.lib import broker
from tests.lib.api import STRONG
from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.openapi_requests import Requests, keys_in
from tests.lib.ports import free_port

pytestmark = pytest.mark.integration

EXAMPLES = 12  # per endpoint; with ~60 endpoints this keeps the module well under a minute
PREFIX = "/api/v1.1/"


class Api:
    def __init__(self, port: int, config_path):
        self.port = port
        self.config_path = config_path
        self.tokens: dict[str, str] = {}

    def post(self, method: str, body: dict, bearer: str | None = None, form: bool = False) -> tuple[int, dict]:
        if form:  # form fields: text as it is, anything else as the JSON text a form client sends
            data = urllib.parse.urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            data, headers = json.dumps(body), {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{PREFIX}{method}",
                                         data=data.encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def ok(self, method: str, **params):
        status, body = self.post(method, {"token": self.tokens["admin"], **params})
        assert status == 200, (method, body)
        return body["data"]

    def renew_tokens(self) -> None:
        """Fresh admin and account tokens: a generated request may revoke or deactivate ours."""
        created = run("aktool", "token", "create", "--admin", config=self.config_path)
        assert created.returncode == 0, created.stderr
        self.tokens["admin"] = created.stdout.strip().splitlines()[-1]
        account = self.ok("admin/accounts/save", name=f"fuzz-{free_port()}")
        user = self.ok("admin/accounts/users/add", account_id=account["id"], login=f"owner-{account['id']}",
                       password=STRONG)
        self.tokens["account"] = self.ok("admin/tokens/add", account_id=account["id"],
                                         user_id=user["id"])["token"]
        db = self.post("databases/add", {"token": self.tokens["account"], "name": "fuzz"})[1]["data"]
        self.post("profiles/add", {"token": self.tokens["account"], "db_id": db["id"],
                                   "data": {"email": "fuzz@example.com"}})

    def token_lost(self, status: int, body: dict) -> bool:
        return status in (401, 403) and body.get("error") == status


@pytest.fixture(scope="module")
def api(harness, tmp_path_factory):
    basedir = tmp_path_factory.mktemp("fuzz") / "akd"
    basedir.mkdir()
    vhost = broker.add_vhost(harness)
    port = free_port()
    path = basedir / "main.json"
    # akmtad too: the admin queue methods ask it; without it they answer 503 by design
    path.write_text(json.dumps(make_config(
        harness, basedir, PROCESSES={"api": {"PORT": port}, "akmtad": {"PORT": free_port()}},
        RABBITMQ_VHOST=vhost, MTA={"ROUTES": {"*": f"127.0.0.1:{free_port()}"}, "TRY_TLS": False,
                                   "SPOOL_DIR": str(basedir / "spool")})))
    assert run("aktool", "migrate", config=path).returncode == 0
    started = run("akd", "start", "api", "akmtad", config=path)
    assert started.returncode == 0, started.stdout + started.stderr
    client = Api(port, path)
    try:
        client.renew_tokens()
        yield client
    finally:
        run("akd", "stop", config=path)
        broker.delete_vhost(vhost)


def _document() -> dict:
    from altcraft.http import openapi
    from altcraft.services.apiv11 import api

    return openapi.build(api)


DOCUMENT = _document()
REQUESTS = Requests(DOCUMENT)
OPERATIONS = sorted(
    ((path.removeprefix(PREFIX), item["post"]) for path, item in DOCUMENT["paths"].items()),
    # account endpoints first: an admin call may deactivate the account the account token is of
    key=lambda pair: (pair[1]["x-altcraft-scope"] == "admin", pair[0]))


def test_the_served_document_is_the_one_generated_from(api):
    served = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{api.port}{PREFIX}openapi.json").read())
    assert sorted(served["paths"]) == sorted(DOCUMENT["paths"]) and len(OPERATIONS) == len(served["paths"])


@pytest.mark.parametrize("method,operation", OPERATIONS, ids=[m for m, _ in OPERATIONS])
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_request_gets_a_5xx_and_every_refusal_names_its_parameter(api, method, operation, data):
    schema = REQUESTS.resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    body = data.draw(REQUESTS.body(schema), label="body")
    scope = operation["x-altcraft-scope"]
    bearer = None
    if scope != "public" and data.draw(st.booleans(), label="token in the Authorization header"):
        bearer = api.tokens[scope]
    elif scope != "public":
        body["token"] = api.tokens[scope]
    form = data.draw(st.integers(0, 3), label="form fields instead of JSON") == 0
    status, answer = api.post(method, body, bearer, form)
    assert status < 500, (method, status, answer)
    assert set(answer) >= {"data", "error", "error_text"}, answer
    assert answer["error"] == (0 if status == 200 else status), answer  # Altcraft's numbers: error is the status
    if status == 400:
        named = re.match(r"[^.:\[;\s]*", answer["error_text"]).group()
        known = set(schema.get("properties", {})) | keys_in(body) | {"token"}
        assert named in known, (method, body, answer)
    if api.token_lost(status, answer):
        api.renew_tokens()
