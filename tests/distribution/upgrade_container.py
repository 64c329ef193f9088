"""`playbooks/upgrade.yml` on a fresh machine installed from an older commit (issue 14).

Heavy and exclusive like test_install_container.py (the same machine, tests/lib/containers.py:
systemd not PID 1, the platform under akd), about twice its time: two installs'
worth of work (the old install with its wheelhouse, then the new wheel) plus two runs of
the upgrade playbook. Inside the container:
  1. the checkout of OLD_COMMIT (pinned: the last commit before versioned migrations) is
     installed with its own ./install.sh;
  2. the platform is filled through the old version's stores: documents in the control
     database and an account database, rows in ClickHouse's events table;
  3. the working tree's playbooks/upgrade.yml: exit 0; a pre-upgrade backup complete (the old
     processes do not answer the backup's quiet point: aktool upgrade stops them for it);
     the ledger holds each migration once, `aktool migrate --status` lists none pending;
     every count of the old version equals the count before; every process the new version
     implements RUNNING (those it adds started too);
  4. the upgrade playbook again: the play recap says changed=0, the ledger and every count
     are unchanged.
Not part of the default run (its name does not start with test_, so pytest collects it only
when named): tests/run tests/distribution/upgrade_container.py
Renaming it to test_upgrade_container.py makes it join the default run.
(ALTCRAFT_KEEP_INSTALL_CONTAINER=1 keeps the container to debug.)
"""

from __future__ import annotations

import json

import pytest

from tests.lib import containers, store_counts
from tests.lib.containers import py_json, recap, sh

OLD_COMMIT = "d4081b898be096eaaac7069daed2205ca7ae42ef"
OLD_SRC, NEW_SRC = "/srv/altcraft-old", "/srv/altcraft"
FILL = r"""
import uuid, datetime
from altcraft import config as cfg
from altcraft.stores import analytics, documents
conf = cfg.load('/opt/akd/config/main.json')[0]
client = documents.connect(conf, 'control')
client[conf.CONTROLDB_NAME]['upgrade_probe'].insert_many([{'n': i} for i in range(500)])
client[conf.ACCOUNTDB_PREFIX + '1']['profiles_probe'].insert_many([{'email': f'p{i}@example.test'} for i in range(1000)])
client.close()
store = analytics.Analytics(conf.CLICKHOUSE_SYSTEM)
now = datetime.datetime(2026, 11, 1, 12, 0, 0)
store.execute(f"INSERT INTO {store.table('events')} (event_id, event_time, account_id, kind, campaign_id) VALUES",
              [(uuid.uuid4(), now, 1, 'delivered', 7) for _ in range(300)])
"""
LEDGER = r"""
import json
from altcraft import config as cfg
from altcraft.stores import documents
conf = cfg.load('/opt/akd/config/main.json')[0]
client = documents.connect(conf, 'control')
print(json.dumps(sorted([d['store'], d['version'], d['state']] for d in
                        client[conf.CONTROLDB_NAME]['schema_migrations'].find({}, {'_id': 0}))))
"""


@pytest.fixture(scope="module")
def machine():
    containers.ensure_image()
    sources = {OLD_SRC: containers.commit(OLD_COMMIT), NEW_SRC: containers.checkout()}
    with containers.machine("altcraft-upgrade", "altcraft-upgrade", sources) as name:
        yield name


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_an_old_install_upgraded_by_the_playbook_loses_nothing_and_a_rerun_changes_nothing(machine):
    containers.install(machine, OLD_SRC)
    code, output = sh(machine, f"{containers.PY} - <<'EOF'\n{FILL}\nEOF", timeout=300)
    assert code == 0, output
    before = store_counts.counts(machine)
    assert before["clickhouse.events.delivered"] == 300 and len(before) > 3, before

    upgrade = (f"cd {NEW_SRC} && {containers.ANSIBLE_PLAYBOOK} -i inventories/local/hosts.yml "
               "playbooks/upgrade.yml")
    code, output = sh(machine, upgrade, timeout=3600)
    assert code == 0, output[-20000:]

    code, output = sh(machine, "/usr/local/bin/aktool backup list --json")
    backups = json.loads(output)["backups"]
    assert [b["state"] for b in backups] == ["complete"], backups
    code, output = sh(machine, "/usr/local/bin/aktool migrate --status --json")
    status = json.loads(output)
    assert code == 0 and status["migrations_pending"] == [] and status["changes"] == [], status
    ledger = py_json(machine, LEDGER)
    assert ledger == [["clickhouse", 1, "applied"], ["mongodb", 1, "applied"], ["rabbitmq", 1, "applied"]]
    after = store_counts.counts(machine)
    # nothing lost: what the old version held counts the same (the new version's own new,
    # empty collections and indexes may be there besides)
    assert {key: after.get(key) for key in before} == before

    running, implemented = containers.running_and_implemented(machine)
    assert implemented <= running, sorted(implemented - running)

    code, output = sh(machine, upgrade, timeout=3600)
    assert code == 0, output[-20000:]
    assert set(recap(output).values()) == {0}, output[-8000:]
    assert py_json(machine, LEDGER) == ledger
    assert store_counts.counts(machine) == after
