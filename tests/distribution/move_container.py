"""A move to a new host between two fresh containers of the project's image (issue 14).

Heavy and exclusive like test_install_container.py (tests/lib/containers.py starts the
machines: systemd not PID 1, the platform under akd). Two containers, "old" and "new", get
this checkout and install the same version with ./install.sh (in parallel: the same
checkout builds the same wheel; the restore would refuse a backup of another version). Both
route the test domain sink.test to an SMTP sink on 127.0.0.1:2525, as the Molecule scenario
does (altcraft_main_json_extra). Then:
  1. old: molecule/basic/files/campaign_smoke.py, through the HTTP API: an account, a sender
     with its DKIM key, a profile database, a template with a link, a campaign delivered into
     the sink and counted by campaigns/report; the message's tracking link is kept; 300 more
     profiles imported into its database (profiles/import_batch);
  2. old: `aktool backup create --json` (as root, as the operator does); the backup
     directory is copied to the new host (modes and owners kept);
  3. new: `/etc/init.d/altcraft stop`, `aktool backup restore DIR --move --yes --set
     TRACKING_BASE_URL=...` (the new host's tracking name): exit 0, every count and checksum
     equal to the manifest, the three generated secrets and the setting moved, the new host's
     own store passwords kept; `/etc/init.d/altcraft start`: every implemented process running;
     every collection counts what it counted on the old host (the control database's
     audit_chain one more: the restore journals itself);
  4. new: the link from the message sent on the old host redirects (302 to the template's
     URL) and ClickHouse on the new host holds its click for that campaign.
Not part of the default run (its name does not start with test_, so pytest collects it only
when named): tests/run tests/distribution/move_container.py
(ALTCRAFT_KEEP_INSTALL_CONTAINER=1 keeps the containers to debug.)
"""

from __future__ import annotations

import json
import shlex
import threading

import pytest

from tests.lib import containers, store_counts
from tests.lib.containers import sh, sh_json, sh_out
from tests.lib.wait import wait_for

SRC = "/srv/altcraft"
AKTOOL = "/usr/local/bin/aktool"
NEW_TRACKING = "https://trk.new-host.example"
# the sink route both hosts get (a file beside inventories/local/group_vars/all/main.yml)
SINK_VARS = "altcraft_main_json_extra:\n  MTA:\n    ROUTES:\n      sink.test: 127.0.0.1:2525\n"
MORE_PROFILES = r"""
import json, sys, urllib.request
token, db_id = sys.argv[1], int(sys.argv[2])
rows = [{'email': f'moved-{i}@sink.test', 'first_name': f'P{i}'} for i in range(300)]
request = urllib.request.Request('http://127.0.0.1:8801/api/v1.1/profiles/import_batch', method='POST',
                                 data=json.dumps({'token': token, 'db_id': db_id, 'data': rows}).encode(),
                                 headers={'Content-Type': 'application/json'})
body = json.loads(urllib.request.urlopen(request, timeout=120).read())
assert body.get('error') == 0, body
print(json.dumps(body['data']))
"""
# the click, on the new host, as a mail client opens the link: without following the redirect
CLICK = r"""
import json, sys, time, urllib.error, urllib.request
link = sys.argv[1]
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
deadline = time.monotonic() + 120
while True:  # trkaction ready after the start
    try:
        urllib.request.urlopen('http://127.0.0.1:8095/trkaction/readiness', timeout=5).read()
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
request = urllib.request.Request(link, headers={'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0'})
try:
    response = urllib.request.build_opener(Keep).open(request, timeout=15)
    status, location = response.status, response.headers.get('Location')
except urllib.error.HTTPError as exc:
    status, location = exc.code, exc.headers.get('Location')
print(json.dumps({'status': status, 'location': location}))
"""
CLICKS = r"""
import json, sys, time
from altcraft import config as cfg
from altcraft.stores import analytics
conf = cfg.load('/opt/akd/config/main.json')[0]
store = analytics.Analytics(conf.CLICKHOUSE_SYSTEM)
campaign = int(sys.argv[1])
deadline = time.monotonic() + 120
while True:  # trkaction -> RabbitMQ -> procactions -> ClickHouse
    rows = store.execute(f"SELECT url, is_bot FROM {store.table('events')} WHERE kind = 'click' "
                         f"AND campaign_id = {campaign:d}")
    if rows or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([[url, int(bot)] for url, bot in rows]))
"""


def script(container: str, source: str, *args: str, timeout: float = 300):
    """Python source run with the platform's Python and arguments; the JSON of its last line."""
    return run_py(container, containers.put_file(container, "/tmp/move-test", "script.py", source), *args,
                  timeout=timeout)


def settled(container: str) -> dict:
    """The platform's counts (tests/lib/store_counts.py) once two reads a second apart agree
    (the import and the campaign's events are written by background processes)."""
    last: dict = {}

    def same():
        now, last["read"] = store_counts.counts(container), last.get("now")
        last["now"] = now
        return now if now == last["read"] else None

    return wait_for(same, timeout=120, every=1.0, what=f"the counts on {container} to settle")


def run_py(container: str, path: str, *args: str, timeout: float = 300):
    code, output = sh(container, f"{containers.PY} {path} {shlex.join(args)}", timeout=timeout)
    assert code == 0, output[-8000:]
    return json.loads(output.strip().splitlines()[-1])


def _install_both(old: str, new: str) -> None:
    failures: dict[str, BaseException] = {}

    def one(name: str) -> None:
        try:
            containers.install(name, SRC)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the host
            failures[name] = exc

    threads = [threading.Thread(target=one, args=(name,)) for name in (old, new)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, "\n".join(f"install on {name}: {exc}" for name, exc in failures.items())


@pytest.fixture(scope="module")
def hosts():
    containers.ensure_image()
    source = containers.checkout()
    with containers.machine("altcraft-move-old", "altcraft-old", {SRC: source}) as old, \
            containers.machine("altcraft-move-new", "altcraft-new", {SRC: source}) as new:
        for name in (old, new):
            containers.put_file(name, f"{SRC}/inventories/local/group_vars/all", "sink.yml", SINK_VARS)
        yield old, new


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_a_link_from_a_message_sent_before_the_move_is_clicked_on_the_new_host(hosts):
    old, new = hosts
    _install_both(old, new)
    move_and_click(old, new)


def move_and_click(old: str, new: str) -> None:
    """Everything after the two installs (a function of its own to rerun on kept containers)."""
    versions = {sh_out(name, f"{containers.PY} -c 'import altcraft; print(altcraft.__version__)'").strip()
                for name in (old, new)}
    assert len(versions) == 1, versions

    # 1. the old host sends a campaign and keeps more profiles
    admin = sh_out(old, f"{AKTOOL} token create --admin --name move-test").strip().splitlines()[-1]
    sent = run_py(old, f"{SRC}/molecule/basic/files/campaign_smoke.py", f"--admin-token={admin}",
                  "--sink-port", "2525", timeout=600)
    assert sent["ok"] and sent["delivered"] == 1, sent
    link, campaign = sent["link"], sent["campaign_id"]
    assert "/c/" in link, sent
    token = sh_out(old, f"{AKTOOL} token create --account {sent['account_id']:d} --name move-test")
    imported = script(old, MORE_PROFILES, token.strip().splitlines()[-1], str(sent["db_id"]))
    assert imported, imported
    before = settled(old)
    assert before.get("clickhouse.events.delivered") == 1 and "clickhouse.events.click" not in before, before

    # 2. the backup, carried to the new host
    code, created = sh_json(old, f"{AKTOOL} backup create --json", timeout=1800)
    assert code == 0 and created["ok"], created
    backup = created["path"]
    containers.copy_between(old, backup, new, backup)

    # 3. the restore on the new host, as docs/operations.md's Move procedure says
    code, output = sh(new, "/etc/init.d/altcraft stop", timeout=300)
    assert code == 0, output
    own = json.loads(sh_out(new, "cat /opt/akd/config/main.json"))
    code, restored = sh_json(new, f"{AKTOOL} backup restore {backup} --move --yes --json "
                                  f"--set TRACKING_BASE_URL={NEW_TRACKING}", timeout=1800)
    assert code == 0 and restored["ok"] and restored["mismatches"] == [], restored
    assert sorted(restored["moved"]) == sorted(
        ["PRIVATE_KEY", "WEBAPI_PRIVATE_KEY", "TRACKING_CRYPT_KEY", "TRACKING_BASE_URL"]), restored
    moved = json.loads(sh_out(new, "cat /opt/akd/config/main.json"))
    assert moved["TRACKING_BASE_URL"] == NEW_TRACKING
    assert {k: v for k, v in moved.items() if k not in restored["moved"]} == \
        {k: v for k, v in own.items() if k not in restored["moved"]}, "the new host's own settings changed"
    code, output = sh(new, "/etc/init.d/altcraft start", timeout=300)
    assert code == 0, output
    wait_for(lambda: containers.all_running(new), timeout=180, what="every implemented process RUNNING on the new host")

    after = settled(new)
    assert after.pop("control.audit_chain") == before.pop("control.audit_chain") + 1
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)}

    # 4. the link taken from the message sent before the move, on the new host
    clicked = script(new, CLICK, link)
    assert clicked == {"status": 302, "location": "https://shop.example/sale"}, clicked
    clicks = script(new, CLICKS, str(campaign))
    assert [url for url, _ in clicks] == ["https://shop.example/sale"], clicks
