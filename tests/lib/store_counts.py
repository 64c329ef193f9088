"""What an installed platform holds, counted inside its container by the platform's own
Python: the documents of every collection of the control and account databases, and the
ClickHouse events by kind. The move and upgrade scenarios (tests/distribution) count before
and after and compare.

Databases are named by kind (`control`, `account<n>`) rather than by their configured names,
so that two hosts compare; schema_migrations, platform_version and platform_state are the
installation's own records (an upgrade or a restore writes them), not data, and are left out.
"""

from __future__ import annotations

from tests.lib.containers import py_json

# run by the container's platform Python; AKD_CONFIG names another main.json (a check outside
# a container)
SCRIPT = r"""
import json, os
from altcraft import config as cfg
from altcraft.stores import analytics, documents
conf = cfg.load(os.environ.get('AKD_CONFIG', '/opt/akd/config/main.json'))[0]
out = {}
for role in ('control', 'account'):
    client = documents.connect(conf, role)
    for name in sorted(client.list_database_names()):
        if name == conf.CONTROLDB_NAME or name.startswith(conf.ACCOUNTDB_PREFIX):
            label = 'control' if name == conf.CONTROLDB_NAME else 'account' + name[len(conf.ACCOUNTDB_PREFIX):]
            for coll in sorted(client[name].list_collection_names()):
                if coll not in ('schema_migrations', 'platform_version', 'platform_state'):
                    out[f'{label}.{coll}'] = client[name][coll].count_documents({})
    client.close()
store = analytics.Analytics(conf.CLICKHOUSE_SYSTEM)
for kind, n in store.execute(f"SELECT kind, uniqExact(event_id) FROM {store.table('events')} GROUP BY kind"):
    out[f'clickhouse.events.{kind}'] = n
print(json.dumps(out))
"""


def counts(container: str) -> dict[str, int]:
    """`{"control.<collection>": n, "account<n>.<collection>": n, "clickhouse.events.<kind>": n}`."""
    return py_json(container, SCRIPT)
