"""webadmin's stop list, API token and account user pages doing their main action against
the real stores (their security cases are in test_webadmin_routes.py). One control database
for the module: the tests touch objects of their own, and one migration saves seconds."""

from __future__ import annotations

import html as html_lib
import json
import re
import uuid

import pytest

import altcraft
from altcraft import config as cfg, registry
from altcraft.domain.audit import Filter
from altcraft.domain.errors import Unauthorized
from altcraft.domain.stoplist import StopList, contact_hash
from altcraft.schema import migrate as migration
from altcraft.stores import checks, kv
from altcraft.web.admin import create_app, stoplist_pages
from altcraft.wiring import Platform
from tests.lib.harness import make_config
from tests.lib.webpanel import PASSWORD, admin_signin, make_admin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config(harness, tmp_path_factory):
    basedir = tmp_path_factory.mktemp("operator") / "akd"
    basedir.mkdir()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir)))
    loaded, _ = cfg.load(path)
    migration.run(loaded)
    return loaded


@pytest.fixture(scope="module")
def platform(config):
    platform = Platform(config)
    yield platform
    platform.close()


@pytest.fixture
def signed_in(config, platform):
    client = create_app(config, registry.get("webadmin")).test_client()
    return client, admin_signin(client, make_admin(platform)["login"])


def test_stop_list_import_counts_with_line_numbers_then_lookup(signed_in, platform, monkeypatch):
    client, token = signed_in
    tag = uuid.uuid4().hex[:10]
    known, new, quoted = (f"{n}-{tag}@example.com" for n in ("known", "new", "quoted"))
    stoplist = StopList(kv.ssdb(platform.config, "hbsupp"))
    stoplist.add(known)
    text = f"email\n{new}\n\n{known.upper()}\nnot an address\n\"{quoted}\",Ann\n{new}\n"
    response = client.post("/stoplist/import", data={"csrf_token": token, "file": (_file(text), "list.csv")})
    page = response.data.decode()
    assert response.status_code == 200, page[:500]
    # line 1 (the header) and 5 are no addresses; the repeated line 7 counts as already there
    assert "Added: 2." in page and "Already listed: 2." in page and "Not addresses: 2." in page, page
    assert "Lines that are not addresses: 1, 5" in page
    assert stoplist.blocked([new, quoted, known]) == {new, quoted, known}
    entry, = platform.journal.list(Filter(limit=1))
    assert entry["action"] == "admin.stoplist_import" and new not in str(entry["summary"]), entry

    # the lookup is the page's form posted as a browser without JS posts it: the address in
    # the body; a query string (an old bookmark) is not looked up
    page = client.get("/stoplist").data.decode()
    form = re.search(r'<form method="post" action="(/stoplist)" data-testid="stoplist-lookup">(.*?)</form>', page, re.S)
    assert form and 'name="contact"' in form.group(2) and 'name="csrf_token"' in form.group(2), page
    found = client.post(form.group(1), data={"csrf_token": token, "contact": new}).data.decode()
    assert contact_hash(new) in found and 'data-testid="stoplist-listed"' in found
    assert 'data-testid="stoplist-md5"' not in client.get(f"/stoplist?contact={new}").data.decode()
    removed = client.post("/stoplist/remove", data={"csrf_token": token, "contact": new}).data.decode()
    assert 'data-testid="stoplist-not-listed"' in removed and not stoplist.contains(new)
    entry, = platform.journal.list(Filter(limit=1))
    assert entry["summary"]["md5"] == contact_hash(new) and new not in str(entry["summary"]), entry

    monkeypatch.setattr(stoplist_pages, "IMPORT_MAX_BYTES", 64)
    other = f"big-{tag}@example.com"
    head = platform.journal.head()
    big = client.post("/stoplist/import", data={"csrf_token": token, "file": (_file(f"{other}\n" + "x" * 100), "b")})
    assert big.status_code == 413 and not stoplist.contains(other) and platform.journal.head() == head


def test_a_token_is_shown_once_then_only_its_prefix(signed_in, platform):
    client, csrf = signed_in
    account = platform.accounts.save(name=f"acc-{uuid.uuid4().hex[:8]}")
    created = client.post("/tokens", data={"csrf_token": csrf, "scope": "account",
                                           "account_id": str(account["id"]), "name": "crm"})
    assert created.status_code == 200
    token = created.data.decode().split('data-testid="token-value">', 1)[1].split("<", 1)[0]
    principal = platform.tokens.authenticate(token)
    assert principal.account_id == account["id"]
    listing = client.get(f"/tokens?prefix={token[:4]}").data.decode()
    assert f'data-testid="token-row-{principal.token_id}"' in listing and token[:8] in listing
    assert token not in listing and token[:9] not in listing
    assert token not in str(platform.journal.list(Filter(limit=1))[0]["summary"])
    assert f"token-row-{principal.token_id}" not in client.get("/tokens?prefix=" + ("-" if token[0] != "-" else "_")).data.decode()

    assert client.post(f"/tokens/{principal.token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
    with pytest.raises(Unauthorized):
        platform.tokens.authenticate(token)
    missing = client.post("/tokens", data={"csrf_token": csrf, "scope": "account", "account_id": ""})
    assert missing.status_code == 400 and "account_id: missing" in missing.data.decode()


def test_account_user_added_edited_password_reset_locked(signed_in, platform):
    client, csrf = signed_in
    account = platform.accounts.save(name=f"acc-{uuid.uuid4().hex[:8]}")
    login = f"u-{uuid.uuid4().hex[:8]}"
    weak = client.post(f"/accounts/{account['id']}/users", data={"csrf_token": csrf, "login": login, "password": "abc"})
    assert weak.status_code == 400 and "password" in weak.data.decode()
    added = client.post(f"/accounts/{account['id']}/users", data={"csrf_token": csrf, "login": login,
                                                                   "password": PASSWORD, "roles": ["editor"]})
    assert added.status_code == 302
    user = platform.users.verify(login, PASSWORD)
    assert user["roles"] == ["editor"] and user["account_id"] == account["id"]
    url = f"/accounts/{account['id']}/users/{user['id']}"
    client.post(url, data={"csrf_token": csrf, "roles": ["analyst", "viewer"], "lang": "ru", "name": "Ann"})
    assert (platform.users.get(user["id"])["roles"], platform.users.get(user["id"])["lang"]) == (["analyst", "viewer"], "ru")
    new = PASSWORD + "-2"
    assert client.post(f"{url}/password", data={"csrf_token": csrf, "password": new,
                                                "password_repeat": new}).status_code == 200
    assert platform.users.verify(login, PASSWORD) is None and platform.users.verify(login, new)
    assert client.post(f"{url}/lock", data={"csrf_token": csrf}).status_code == 302
    assert platform.users.verify(login, new) is None
    assert client.post(f"{url}/unlock", data={"csrf_token": csrf}).status_code == 302
    assert platform.users.verify(login, new)
    other = platform.accounts.save(name=f"acc-{uuid.uuid4().hex[:8]}")
    assert client.get(f"/accounts/{other['id']}/users/{user['id']}").status_code == 404


def _file(text: str):
    import io
    return io.BytesIO(text.encode())


def test_system_page_reports_processes_stores_and_disk_in_english_and_russian(signed_in, platform):
    client, _ = signed_in
    head = platform.journal.head()
    answer = client.get("/system", headers={"Accept-Language": "en"})
    html = answer.data.decode()
    assert answer.status_code == 200, html[:500]
    # akd's processes of this host, and each store `aktool check` checks, one row each
    assert re.findall(r'<tr data-testid="process-([a-z_0-9]+)"', html) == [p.name for p in registry.select()]
    assert re.findall(r'<tr data-testid="check-([a-z_0-9]+)"', html) == list(checks.configured(platform.config))
    assert "Every store answers." in html and ">FAIL<" not in html
    assert f"<dd>{altcraft.__version__}</dd>" in html and "MTA spool" in html
    # RabbitMQ's queues with their depths: the platform's (migrated) are all listed
    from altcraft.schema.rabbitmq import QUEUES
    listed = re.findall(r'<tr data-testid="queue-([a-z_.0-9]+)">', html)
    assert set(q.name for q in QUEUES) <= set(listed), listed
    ru = client.get("/system", headers={"Accept-Language": "ru"}).data.decode()
    for text in ("<h1>Система</h1>", "Процессы", "Все хранилища отвечают.", "Очередь MTA на диске", "Свободно"):
        assert text in ru, text
    assert platform.journal.head() == head  # reading is no change


def test_system_page_names_a_store_that_does_not_answer(config, platform):
    from tests.lib.ports import free_port
    broken = config.model_copy(update={"SSDB_STATS_PORT": free_port()})  # nothing listens there
    client = create_app(broken, registry.get("webadmin")).test_client()
    admin_signin(client, make_admin(platform)["login"])
    html = client.get("/system").data.decode()
    row = re.search(r'<tr data-testid="check-ssdb_stats">.*?</tr>', html, re.S).group(0)
    assert ">FAIL<" in row and str(broken.SSDB_STATS_PORT) in row
    assert "A store does not answer" in html
    assert '<tr data-testid="check-controldb"><td>controldb</td>\n    <td data-testid="check-result">ok' in html
    down = config.model_copy(update={"RABBITMQ_PORT": free_port()})  # the broker's queues cannot be read
    client = create_app(down, registry.get("webadmin")).test_client()
    admin_signin(client, make_admin(platform)["login"])
    assert 'data-testid="queues-error">RabbitMQ does not answer' in client.get("/system").data.decode()


def test_an_accounts_tariff_is_edited_and_a_blank_one_refused(signed_in, platform):
    client, token = signed_in
    account = platform.accounts.save(name=f"tf-{uuid.uuid4().hex[:8]}")
    form = {"csrf_token": token, "name": account["name"], "title": "Shop", "tz": "UTC"}
    answer = client.post(f"/accounts/{account['id']}", data={**form, "tariff": " "})
    assert answer.status_code == 400 and "tariff: the tariff&#39;s name, 1-63 characters" in answer.data.decode()
    assert platform.accounts.get(account["id"])["tariff"] == "default"
    assert client.post(f"/accounts/{account['id']}", data={**form, "tariff": "pro"}).status_code == 200
    assert platform.accounts.get(account["id"])["tariff"] == "pro"


def test_a_virtual_sender_is_made_refused_by_field_and_deleted(signed_in, platform):
    client, token = signed_in
    account = platform.accounts.save(name=f"vm-{uuid.uuid4().hex[:8]}")
    sender = platform.senders.save(name=f"vm-{uuid.uuid4().hex[:6]}", from_email="news@shop.example",
                                   dkim_algorithm="none")
    platform.senders.assign(sender["id"], account["id"])
    url = f"/accounts/{account['id']}/vsenders"
    default = {"match": "default", "senders": [{"id": sender["id"], "weight": 1}]}
    for rules, reason in (("[{", "rules: not JSON"),
                          (json.dumps([default, {**default, "match": "to_domain", "values": ["a.example"]}]),
                           "the default rule must be the last"),
                          (json.dumps([{"match": "default", "senders": [{"id": 999999, "weight": 1}]}]),
                           "999999")):
        answer = client.post(url, data={"csrf_token": token, "vsender_name": "by domain", "vsender_rules": rules})
        shown = html_lib.unescape(answer.data.decode())
        assert answer.status_code in (400, 404) and 'data-testid="vsender-error"' in shown, rules
        assert reason in re.search(r'data-testid="vsender-error">([^<]*)<', shown).group(1), (reason, rules)
    assert platform.vsenders.list(account["id"]) == [], "a refused form stored a virtual sender"
    rules = [{"match": "to_domain", "values": ["gmail.com"], "senders": [{"id": sender["id"], "weight": 2}]}, default]
    answer = client.post(url, data={"csrf_token": token, "vsender_name": "by domain", "vsender_rules": json.dumps(rules)})
    assert answer.status_code == 302
    [made] = platform.vsenders.list(account["id"])
    assert made["name"] == "by domain" and [r["match"] for r in made["rules"]] == ["to_domain", "default"]
    assert client.post(f"{url}/{made['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert platform.vsenders.list(account["id"]) == []


def test_account_page_lists_its_virtual_senders(signed_in, platform):
    client, _ = signed_in
    account = platform.accounts.save(name=f"vs-{uuid.uuid4().hex[:8]}")
    other = platform.accounts.save(name=f"vs-{uuid.uuid4().hex[:8]}")
    sender = platform.senders.save(name=f"news-{uuid.uuid4().hex[:6]}", from_email="news@shop.example",
                                   dkim_algorithm="none")
    for acc in (account, other):
        platform.senders.assign(sender["id"], acc["id"])
    ours = platform.vsenders.add(account["id"], "by domain", [
        {"match": "to_domain", "values": ["gmail.com"], "senders": [{"id": sender["id"], "weight": 3}]},
        {"match": "default", "senders": [{"id": sender["id"], "weight": 1}]}])
    theirs = platform.vsenders.add(other["id"], "not ours", [{"match": "default", "senders": [{"id": sender["id"], "weight": 1}]}])
    html = client.get(f"/accounts/{account['id']}", headers={"Accept-Language": "en"}).data.decode()
    row = re.search(rf'<tr data-testid="vsender-{ours["id"]}">.*?</tr>', html, re.S).group(0)
    text = re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", "", row)))
    assert "by domain" in text and "recipient's domain: gmail.com" in text
    assert f"{sender['name']} (weight 3)" in text and f"otherwise → {sender['name']} (weight 1)" in text
    assert f'vsender-{theirs["id"]}"' not in html  # another account's are not shown
    empty = client.get(f"/accounts/{platform.accounts.save(name=f'vs-{uuid.uuid4().hex[:8]}')['id']}").data.decode()
    assert 'data-testid="no-vsenders"' in empty
