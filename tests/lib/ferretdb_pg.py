"""A FerretDB on the PostgreSQL handler for one benchmark run (`--ferretdb-postgresql`) or one
heavy test run (the welcome scenario's ALTCRAFT_WELCOME_STORE=ferretdb-postgresql).

The same binary the harness builds (tests/harness/servers.sh, tools/ferretdb), on a free
loopback port, storing into a PostgreSQL database of its own in the harness's PostgreSQL
(created here, dropped at the end). The harness's own FerretDB (the SQLite handler) is left
as it is. The password goes through the environment (FERRETDB_POSTGRESQL_URL), not argv.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.lib.ports import free_port, port_open

BINARY = Path(os.environ.get("ALTCRAFT_HARNESS_CACHE", Path.home() / ".cache" / "altcraft-harness")) \
    / "bin" / "altcraft-ferretdb"


@contextmanager
def ferretdb_postgresql(harness: dict, logdir: Path) -> Iterator[dict]:
    """The harness's `mongodb` entry for a FerretDB on PostgreSQL, running while in the block."""
    import psycopg

    if not BINARY.exists():
        raise SystemExit(f"no FerretDB binary at {BINARY}: start the harness once (tests/harness/servers.sh start)")
    pg = harness["postgresql"]
    name = f"bench_ferretdb_{uuid.uuid4().hex[:8]}"
    connect = {"host": pg["host"], "port": pg["port"], "user": pg["user"], "password": pg["password"],
               "autocommit": True}
    with psycopg.connect(dbname=pg["database"], **connect) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    log = (logdir / "ferretdb-postgresql.log").open("wb")
    env = {**os.environ, "FERRETDB_POSTGRESQL_URL":
           f"postgres://{pg['user']}:{pg['password']}@{pg['host']}:{pg['port']}/{name}"}
    process = subprocess.Popen([str(BINARY), "-listen-addr", f"127.0.0.1:{port}", "-handler", "postgresql"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"FerretDB (PostgreSQL handler) did not start; see {log.name}")
            time.sleep(0.1)
        print(f"FerretDB on PostgreSQL: 127.0.0.1:{port}, database {name}", flush=True)
        yield {"uri": f"mongodb://127.0.0.1:{port}/", "host": "127.0.0.1", "port": port, "engine": "ferretdb"}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _drop(psycopg, pg["database"], connect, name)


def _drop(psycopg, database: str, connect: dict, name: str) -> None:
    """Drops the database; FORCE needs rights over every session in it (a background worker
    of another role may be there), so without them the plain DROP is retried a while."""
    with psycopg.connect(dbname=database, **connect) as conn:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            pass
        for _ in range(30):
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(1)
        print(f"FerretDB on PostgreSQL: database {name} still in use, left in place", flush=True)
