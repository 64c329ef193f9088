"""A PostgreSQL primary, its streaming standby and FerretDB on the primary, on loopback ports.

Debian's PostgreSQL binaries (initdb, postgres, pg_basebackup) in one temporary directory,
removed by `stop()`. Both servers take the postgresql role's own drop-in (rendered from
roles/postgresql/templates/altcraft.conf.j2: wal settings, primary_conninfo with the
replication account's passfile, the replication slot, synchronous_standby_names), so the
role's output is what runs here; the standby is cloned as the role clones it (pg_basebackup
through the slot, then standby.signal). FerretDB is the harness's binary on the PostgreSQL
handler. The servers run as the postgres user when the tests run as root (PostgreSQL
refuses root); every process is ours, killed by its pid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.lib.ports import free_port, port_open
from tests.lib.wait import stop_processes, wait_started

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "postgresql"
PROMOTE_SCRIPT = ROLE / "files" / "altcraft-pg-promote"
FERRETDB_ENV_TEMPLATE = REPO / "roles" / "ferretdb" / "templates" / "etc" / "altcraft" / "ferretdb.env.j2"
FERRETDB_BIN = Path(os.environ.get("ALTCRAFT_HARNESS_CACHE", Path.home() / ".cache" / "altcraft-harness")) \
    / "bin" / "altcraft-ferretdb"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "standby-test-replication"  # loopback-only test servers
FERRETDB_PASSWORD = "standby-test-ferretdb"


def pg_bindir() -> Path:
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not dirs:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    return dirs[-1]


def _as_postgres() -> dict:
    """Popen arguments that run a command as the postgres user when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid, "extra_groups": []}


def render(template: Path, **values) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template.parent)), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["bool"] = lambda value: value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")
    return env.get_template(template.name).render(ansible_managed="rendered by tests/lib/pg_standby.py", **values)


@dataclass
class Server:
    name: str
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def dsn(self, user: str, password: str, dbname: str) -> str:
        return f"postgres://{user}:{password}@127.0.0.1:{self.port}/{dbname}"


class StandbyPair:
    def __init__(self, synchronous: bool = True):
        self.root = Path(tempfile.mkdtemp(prefix="altcraft-pgstandby-"))
        os.chmod(self.root, 0o755)
        self.socket_dir = self.root / "run"
        self.socket_dir.mkdir()
        self.passfile = self.root / "replication.pgpass"
        self.bin = pg_bindir()
        self.synchronous = synchronous
        self.primary = Server("pg1", self.root)
        self.standby = Server("pg2", self.root)
        self.ferretdb: subprocess.Popen | None = None
        self.ferretdb_port = free_port()
        self.ferretdb_target: Server | None = None
        if os.geteuid() == 0:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, "postgres", "postgres")

    # -- the role's drop-in ------------------------------------------------------------------
    def dropin(self, server: Server, standby_of: str) -> str:
        return render(ROLE / "templates" / "altcraft.conf.j2",
                      postgresql_listen_addresses=["127.0.0.1"], postgresql_port=server.port,
                      postgresql_max_connections=50, postgresql_shared_buffers="32MB",
                      postgresql_replication_enable=True, postgresql_max_wal_senders=5,
                      postgresql_max_slot_wal_keep_size="1GB", postgresql_standby_of=standby_of,
                      postgresql_replication_user=REPLICATION_USER,
                      postgresql_replication_passfile=str(self.passfile),
                      postgresql_application_name=server.name, postgresql_replication_slot=f"standby_{server.name}",
                      postgresql_synchronous=self.synchronous,
                      postgresql_standby_names=[self.standby.name] if server is self.primary else [])

    def _write_dropin(self, server: Server, standby_of: str) -> None:
        conf_d = server.data / "conf.d"
        conf_d.mkdir(exist_ok=True)
        # the rendered port is the role's; the standby streams from the primary's test port
        text = self.dropin(server, standby_of).replace(
            f"host={standby_of} port={server.port}", f"host={standby_of} port={self.primary.port}")
        (conf_d / "altcraft.conf").write_text(text)
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nunix_socket_directories = '{self.socket_dir}'\nfsync = off\ninclude_dir = 'conf.d'\n")
        self._own(conf_d)

    def _own(self, *paths: Path) -> None:
        if os.geteuid() == 0:
            for path in paths:
                subprocess.run(["chown", "-R", "postgres:postgres", str(path)], check=True)

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, check=True, timeout=60,
                              **_as_postgres(), **kwargs)

    def psql(self, server: Server, sql: str, dbname: str = "postgres") -> str:
        # as the role's setup statements: a commit on the primary must not wait for a
        # standby that does not exist yet (synchronous_standby_names names it)
        return self.run(str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-h", str(self.socket_dir), "-p", str(server.port), "-U", "postgres", "-d", dbname,
                        "-c", sql, env={"PGOPTIONS": "-c synchronous_commit=local", "PATH": "/usr/bin:/bin"}
                        ).stdout.strip()

    # -- processes -------------------------------------------------------------------------
    def start(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.primary.data), "-U", "postgres", "-E", "UTF8",
                 "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        self._write_dropin(self.primary, "")
        self.start_server(self.primary)
        self.psql(self.primary, f"CREATE ROLE {REPLICATION_USER} REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}'")
        self.psql(self.primary, f"CREATE ROLE ferretdb LOGIN PASSWORD '{FERRETDB_PASSWORD}'")
        self.psql(self.primary, "CREATE DATABASE ferretdb OWNER ferretdb")
        self.psql(self.primary, f"SELECT pg_create_physical_replication_slot('standby_{self.standby.name}')")
        self.passfile.write_text(f"*:*:*:{REPLICATION_USER}:{REPLICATION_PASSWORD}\n")
        self.passfile.chmod(0o600)
        self._own(self.passfile)
        self.clone_standby()
        self.start_server(self.standby)

    def clone_standby(self) -> None:
        """What the role does on a standby: pg_basebackup through its slot, then standby.signal."""
        self.run(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                 "-U", REPLICATION_USER, "-D", str(self.standby.data), "-X", "stream",
                 "-S", f"standby_{self.standby.name}", "--no-password", "--no-sync", "--checkpoint=fast",
                 env={"PGPASSFILE": str(self.passfile), "PATH": "/usr/bin:/bin"})
        shutil.rmtree(self.standby.data / "conf.d", ignore_errors=True)
        (self.standby.data / "postgresql.conf").write_text(
            (self.primary.data / "postgresql.conf").read_text().split("\nunix_socket_directories")[0])
        self._write_dropin(self.standby, "127.0.0.1")
        (self.standby.data / "standby.signal").touch()
        self._own(self.standby.data)

    def start_server(self, server: Server) -> None:
        out = open(server.log, "ab")
        server.process = subprocess.Popen([str(self.bin / "postgres"), "-D", str(server.data)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True, **_as_postgres())
        out.close()
        wait_started(server.process, lambda: self._ready(server), f"PostgreSQL {server.name} on port {server.port}",
                     server.log, every=0.1)

    def _ready(self, server: Server) -> bool:
        return subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(server.port)],
                              check=False).returncode == 0

    def kill(self, server: Server) -> None:
        """kill -9 of the postmaster: no shutdown checkpoint, no goodbye to the standby."""
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)

    def promote_script(self, server: Server, *args: str) -> subprocess.CompletedProcess:
        """The role's altcraft-pg-promote against one server, as the postgres user, over its socket."""
        return subprocess.run(["python3", str(PROMOTE_SCRIPT), *args, "--host", str(self.socket_dir),
                               "--port", str(server.port), "--timeout", "20"],
                              capture_output=True, text=True, timeout=90, **_as_postgres())

    # -- FerretDB --------------------------------------------------------------------------
    def start_ferretdb(self, target: Server) -> None:
        """FerretDB on the PostgreSQL handler, its URL from the ferretdb role's env template."""
        if not FERRETDB_BIN.exists():
            raise RuntimeError(f"{FERRETDB_BIN} missing: tests/harness/servers.sh builds it")
        self.stop_ferretdb()
        env_line = render(FERRETDB_ENV_TEMPLATE,
                          ferretdb_postgresql_url=target.dsn("ferretdb", FERRETDB_PASSWORD, "ferretdb"))
        env = dict(line.split("=", 1) for line in env_line.splitlines() if line and not line.startswith("#"))
        out = open(self.root / "ferretdb.log", "ab")
        self.ferretdb = subprocess.Popen(
            [str(FERRETDB_BIN), "-listen-addr", f"127.0.0.1:{self.ferretdb_port}", "-handler", "postgresql"],
            env={"PATH": "/usr/bin:/bin", **env}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.ferretdb_target = target
        wait_started(self.ferretdb, lambda: port_open("127.0.0.1", self.ferretdb_port, 0.2), "FerretDB",
                     self.root / "ferretdb.log", every=0.1)

    def stop_ferretdb(self) -> None:
        stop_processes(self.ferretdb, timeout=10)

    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.ferretdb_port}/"

    def stop(self) -> None:
        self.stop_ferretdb()
        stop_processes(self.primary.process, self.standby.process, sig=signal.SIGINT, timeout=20)  # fast shutdown
        shutil.rmtree(self.root, ignore_errors=True)
