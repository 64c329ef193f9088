"""main.json: where it is, what it may hold, and how it is checked.

Key names follow Altcraft's documented main.json (BASEDIR, CONTROLDB_*, CLICKHOUSE_SYSTEM,
RABBITMQ_*, CAMP_DUPLICATESDB, SSDB_*, TRACKING_*, WEBCONTROL_*, ...). Keys this platform
adds are marked as such below and in docs/configuration.md.

Validation collects every problem at once; each names the key path and what is wrong and
never echoes the value (values may be secrets). Unknown keys are warnings: main.json files
carry keys for modules this platform does not have.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CONFIG_PATH = Path("/opt/akd/config/main.json")
CONFIG_ENV = "AKD_CONFIG"
SECRET_MIN_LENGTH = 32


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"not a TCP port: {value} (expected 1-65535)")
    return value


def _check_secret(value: str) -> str:
    # The value itself is never put into the message: it is a secret.
    if len(value) < SECRET_MIN_LENGTH:
        raise ValueError(
            f"secret too short: {len(value)} characters, at least {SECRET_MIN_LENGTH} required"
        )
    return value


def _check_host(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("not a host name or IP address")
    return value


Port = Annotated[int, AfterValidator(_check_port)]
Secret = Annotated[str, AfterValidator(_check_secret)]
Host = Annotated[str, AfterValidator(_check_host)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class _Section(BaseModel):
    # strict: "9000" is not a port and "true" is not a boolean; extra keys are kept so
    # that they can be reported as warnings.
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class MongoNode(_Section):
    IP: Host
    PORT: Port = 27017


class KVNode(_Section):
    HOST: Host
    PORT: Port = 6666


class SentinelNode(_Section):
    HOST: Host
    PORT: Port = 26379


class BrokerNode(_Section):
    HOST: Host
    PORT: Port = 5672


class KVCluster(_Section):
    """A Redis-protocol store (Kvrocks in production; Redis is a selectable engine).

    MODE "sentinel" (platform addition): a primary and its replicas watched by Redis
    Sentinels, which Kvrocks supports as Redis does. Clients ask the SENTINELS where the
    primary named SENTINEL_MASTER is and ask again after a failover; NODES then lists the
    data nodes for the record (the sentinels, not NODES, say which one is the primary)."""

    MODE: Literal["standalone", "cluster", "sentinel"] = "standalone"
    PASSWORD: str = ""
    NODES: list[KVNode] = Field(default_factory=lambda: [KVNode(HOST="127.0.0.1")], min_length=1)
    ENGINE: Literal["kvrocks", "redis"] = "kvrocks"  # platform addition
    DB: int = 0  # platform addition: logical database (Redis engine only)
    # Platform additions, MODE "sentinel" only.
    SENTINELS: list[SentinelNode] = Field(default_factory=list)
    SENTINEL_MASTER: str = ""  # the name the sentinels monitor the primary under
    SENTINEL_PASSWORD: str = ""  # the sentinels' own requirepass (empty: none)
    # How long a command keeps being retried while the sentinels notice a dead primary and
    # promote a replica: more than the sentinels' down-after-milliseconds plus a failover.
    FAILOVER_WAIT_SECONDS: Annotated[float, Field(gt=0, le=300)] = 30.0

    def problems(self) -> list[tuple[str, str]]:
        """What the keys say together (each problem with the key it is about)."""
        out: list[tuple[str, str]] = []
        if self.MODE != "sentinel":
            if self.SENTINELS or self.SENTINEL_MASTER:
                out.append(("MODE", f"is {self.MODE!r} but SENTINELS/SENTINEL_MASTER are set "
                                    "(they are read in MODE \"sentinel\" only)"))
            return out
        if len(self.SENTINELS) < 1:
            out.append(("SENTINELS", "missing: at least one sentinel {HOST, PORT} when MODE is "
                                     "\"sentinel\" (three on three hosts for a quorum of 2)"))
        if not self.SENTINEL_MASTER.strip() or any(c.isspace() for c in self.SENTINEL_MASTER):
            out.append(("SENTINEL_MASTER", "missing: the name the sentinels monitor the primary "
                                           "under (sentinel monitor <name> ...), without spaces"))
        seen = [(n.HOST, n.PORT) for n in self.SENTINELS]
        if len(set(seen)) != len(seen):
            out.append(("SENTINELS", "the same HOST:PORT is listed twice"))
        return out


SsdbRoleKey = Literal["ACTIONS", "HBSUPP", "NOTIFY", "STATS"]


class SsdbSentinel(_Section):
    """Platform addition: SSDB roles served by the redis engine (SSDB_ENGINE "redis"), each a
    primary with replicas under Redis Sentinel. A role named in MASTERS is reached through the
    SENTINELS as the primary they monitor under that name (SSDB_<ROLE>_IP/PORT then only
    record its first node); the others stay on their IP/PORT."""

    SENTINELS: list[SentinelNode] = Field(default_factory=list)
    SENTINEL_PASSWORD: str = ""
    MASTERS: dict[SsdbRoleKey, str] = Field(default_factory=dict)
    FAILOVER_WAIT_SECONDS: Annotated[float, Field(gt=0, le=300)] = 30.0

    def problems(self, engine: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.MASTERS and not self.SENTINELS:
            return out
        if engine != "redis":
            out.append(("MASTERS", "Sentinel serves the redis engine only: SSDB_ENGINE is "
                                   f"{engine!r} (SSDB replicates with its own slaveof)"))
        if not self.SENTINELS:
            out.append(("SENTINELS", "missing: at least one sentinel {HOST, PORT} when MASTERS is set"))
        if not self.MASTERS:
            out.append(("MASTERS", "missing: the monitored name of each role to reach through the "
                                   "SENTINELS, e.g. {\"HBSUPP\": \"altcraft-ssdb-hbsupp\"}"))
        for role, name in self.MASTERS.items():
            if not name.strip() or any(c.isspace() for c in name):
                out.append((f"MASTERS.{role}", "the name the sentinels monitor the role under, without spaces"))
        seen = [(n.HOST, n.PORT) for n in self.SENTINELS]
        if len(set(seen)) != len(seen):
            out.append(("SENTINELS", "the same HOST:PORT is listed twice"))
        return out


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError("not an identifier (letters, digits and _, not starting with a digit)")
    return value


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
Identifier = Annotated[str, AfterValidator(_check_identifier)]


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("not host:port")
    _check_host(host)
    _check_port(int(port))
    return value


HostPort = Annotated[str, AfterValidator(_check_host_port)]


class ClickHouseCluster(_Section):
    """Platform addition: the tables live on a ClickHouse cluster (remote_servers' NAME).
    REPLICATED: Replicated*MergeTree local tables coordinated by ZooKeeper/ClickHouse Keeper
    (each shard's replicas hold the same rows); off: plain *MergeTree per shard. Either way
    the migrations run ON CLUSTER and the platform reads and writes a Distributed table."""

    NAME: Identifier
    REPLICATED: bool = True
    # The cluster's other servers ("host:port", native protocol): the client goes on with the
    # next one when HOST does not answer (each holds the Distributed table).
    ALT_HOSTS: list[HostPort] = Field(default_factory=list)


class ClickHouseSystem(_Section):
    HOST: Host = "127.0.0.1"
    PORT: Port = 9000
    USER: str = "altcraft"
    PASSWORD: str = ""
    DATABASE_NAME: str = "altcraft_system"
    IS_DEBUG: bool = False
    SECURE: bool = False  # platform addition: TLS on the native protocol
    CLUSTER: ClickHouseCluster | None = None  # platform addition: one server when unset


class PostgreSQL(_Section):
    """Optional store (Market module, DataDB). Platform addition."""

    ENABLE: bool = False
    HOST: Host = "127.0.0.1"
    PORT: Port = 5432
    USER: str = "altcraft"
    PASSWORD: str = ""
    DATABASE: str = "altcraft"


class ProcessSettings(_Section):
    """Per-process overrides of the registry defaults. Platform addition."""

    ENABLE: bool = True
    IP: Host | None = None
    PORT: Port | None = None
    WORKERS: Annotated[int, Field(ge=1, le=64)] = 2


class AkdSettings(_Section):
    """Supervisor tuning. Platform addition."""

    # A run shorter than START_SECONDS counts as a failed start.
    START_SECONDS: Annotated[float, Field(gt=0)] = 10.0
    # After this many failed starts in a row the process is left in FATAL.
    START_RETRIES: Annotated[int, Field(ge=0)] = 5
    BACKOFF_INITIAL: Annotated[float, Field(gt=0)] = 1.0
    BACKOFF_MAX: Annotated[float, Field(gt=0)] = 30.0
    STOP_TIMEOUT: Annotated[float, Field(gt=0)] = 10.0


class RetrySettings(_Section):
    """Altcraft's retry rule: fixed, geometric (interval x exponent^n) or random delay."""

    TYPE: Literal["fixed", "geometric", "random"] = "geometric"
    INTERVAL_SECONDS: Annotated[float, Field(gt=0)] = 300.0
    EXPONENT: Annotated[float, Field(ge=1)] = 2.0
    MODIFIER: Annotated[float, Field(ge=0)] = 1.0  # random: interval .. interval x (1 + modifier)
    MAX_ATTEMPTS: Annotated[int, Field(ge=1, le=100)] = 10
    MAX_DELAY_SECONDS: Annotated[float, Field(gt=0)] = 6 * 3600.0
    # Which sending IP the next attempt uses: the same one, another of the sender's IPs, or
    # any of them (Altcraft's "any IP of any node"; one node here: any IP of this node).
    MODE: Literal["same_ip", "other_ip", "any_ip"] = "same_ip"


# Headers an ISP override may not touch: they carry the message's identity and structure.
PROTECTED_HEADERS = frozenset({"from", "to", "message-id", "mime-version", "content-type",
                               "content-transfer-encoding", "dkim-signature"})
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext


def _header_overrides(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r}: not a header name")
        if name.lower() in PROTECTED_HEADERS:
            raise ValueError(f"{name}: may not be overridden (one of {', '.join(sorted(PROTECTED_HEADERS))})")
        if "\r" in text or "\n" in text or not text.isascii():
            raise ValueError(f"{name}: the value must be one line of ASCII")
    return value


class StrategySettings(_Section):
    """An ISP and its strategy: the recipient DOMAINS it covers, connections x messages per
    connection, RATE "messages:seconds", how to introduce ourselves (HELO), whether to try
    STARTTLS, whether to drop its mail, the transfer ENCODING its messages are re-encoded
    to, and HEADERS set on its messages (an empty value removes the header)."""

    DOMAINS: list[str] = Field(default_factory=list)
    CONNECTIONS: Annotated[int, Field(ge=1, le=500)] = 10
    MESSAGES_PER_CONNECTION: Annotated[int, Field(ge=1, le=100000)] = 100
    RATE: Annotated[str, Field(pattern=r"^\d+:\d+$")] = "0:1"  # 0 = unlimited
    # "": MTA.HELO (or the host name); "ptr": the sending IP's PTR name; "domain": the
    # sender's From domain; "ip": the sending IP as an address literal.
    HELO: Literal["", "ptr", "domain", "ip"] = ""
    TRY_TLS: bool | None = None  # None: MTA.TRY_TLS
    DROP: bool = False  # messages to this ISP are dropped (an event each), never sent
    ENCODING: Literal["", "quoted-printable", "base64", "8bit"] = ""  # "": as rendered
    HEADERS: Annotated[dict[str, str], AfterValidator(_header_overrides)] = Field(default_factory=dict)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class BouncePattern(_Section):
    TYPE: Literal["hard", "soft", "bounce"]
    PATTERN: Regex
    NAME: str = ""


class LockRule(_Section):
    """Stop sending to an ISP (a strategy's name, "default", or "*" for any) for SECONDS
    when its answer matches PATTERN (searched in "<code> <text>", ignoring case)."""

    PATTERN: Regex
    SECONDS: Annotated[int, Field(ge=1, le=7 * 86400)] = 600
    ISP: str = "*"
    NAME: str = ""


class MtaSettings(_Section):
    """akmtad. Platform addition (Altcraft keeps these in the admin panel)."""

    SPOOL_DIR: str = ""  # default {BASEDIR}/spool/akmta
    HELO: str = ""  # default: the host name
    # Static routes: recipient domain (or "*") -> "host:port". Empty: MX lookup.
    ROUTES: dict[str, str] = Field(default_factory=dict)
    TRY_TLS: bool = True
    DEFAULT_STRATEGY: StrategySettings = Field(default_factory=StrategySettings)
    STRATEGIES: dict[str, StrategySettings] = Field(default_factory=dict)
    RETRY: RetrySettings = Field(default_factory=RetrySettings)
    BOUNCE_PATTERNS: list[BouncePattern] = Field(default_factory=list)  # custom, tried first
    LOCK_RULES: list[LockRule] = Field(default_factory=list)
    PREFETCH: Annotated[int, Field(ge=1, le=100000)] = 1000
    # Intake pauses while this many messages wait in the spool: the rest stay in RabbitMQ
    # (durable, and there for other sending nodes) instead of crowding one node's memory
    # and competing with delivery for the CPU.
    MAX_SPOOLED: Annotated[int, Field(ge=100, le=10_000_000)] = 20000
    DEDUP_TTL_DAYS: Annotated[int, Field(ge=1, le=365)] = 14
    # How often akmtad looks for a newer rule set saved in the control database
    # (domain/mta_rules.py): a saved change applies within this many seconds.
    RULES_POLL_SECONDS: Annotated[float, Field(ge=0.2, le=3600)] = 3.0
    # The bearer token of akmtad's control port (queue stats, hold, release, purge, rules).
    # Required when that port listens on another address than loopback (a sending server
    # the control server's panel asks across the network); empty: loopback only, no token.
    CONTROL_TOKEN: Annotated[str, AfterValidator(lambda v: _check_secret(v) if v else v)] = ""


class ImportSettings(_Section):
    """Profile imports of the panel, run by procleadsaver. Platform addition."""

    MAX_BYTES: Annotated[int, Field(ge=1024, le=10 * 1024**3)] = 256 * 1024**2  # an uploaded file
    BATCH: Annotated[int, Field(ge=1, le=100_000)] = 1000  # rows per write and per progress step
    LEASE_SECONDS: Annotated[float, Field(ge=1, le=3600)] = 30.0  # a silent worker's job is taken over after


def _networks(value: list[str]) -> list[str]:
    from altcraft.domain.netguard import parse_networks

    parse_networks(value)  # raises naming the first value that is not a CIDR
    return value


class WebhookSettings(_Section):
    """prochook, outgoing webhooks. Platform addition."""

    # Networks webhooks may reach although they are loopback, private, link-local, multicast
    # or reserved (refused by default), as CIDRs: ["10.20.0.0/16", "127.0.0.1/32"].
    ALLOW_NETWORKS: Annotated[list[str], AfterValidator(_networks)] = Field(default_factory=list)
    TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=60)] = 15.0
    # Parallel requests: a slow receiver holds one of them for up to TIMEOUT_SECONDS.
    CONCURRENCY: Annotated[int, Field(ge=1, le=64)] = 8
    # How long the previous secret stays valid (both signatures sent) after a rotation.
    SECRET_OVERLAP_HOURS: Annotated[float, Field(ge=0, le=24 * 30)] = 24.0
    # Delivered, failed and cancelled messages (with their attempt log) are kept this long.
    KEEP_DAYS: Annotated[int, Field(ge=1, le=3650)] = 30
    # Multiplies every retry delay: 0.001 makes three days of retries last minutes
    # (for tests; 1 in production).
    TIME_SCALE: Annotated[float, Field(gt=0, le=1)] = 1.0


class WorkflowSettings(_Section):
    """procworkflow, scenarios. Platform addition."""

    # The one test clock of scenarios: multiplies every wait, 0.0001 makes three days last
    # 26 s. For tests only: any other value than 1 is reported by `aktool config check` and
    # logged by procworkflow at start (the distribution never writes it).
    TIME_SCALE: Annotated[float, Field(gt=0, le=1)] = 1.0
    # How often proctask enters new segment members and profiles whose date field is due
    # into the scenarios entered that way.
    ENTRY_EVERY_SECONDS: Annotated[int, Field(ge=1, le=86400)] = 300
    # How long a claimed run is procworkflow's; a run whose worker died is stepped again by
    # another when it ends. Longer than a step ever takes.
    LEASE_SECONDS: Annotated[float, Field(ge=2, le=600)] = 30.0
    # Runs one procworkflow worker claims and steps together (one broker transaction and
    # one step-log insert a batch); a smaller batch stores its steps sooner.
    BATCH: Annotated[int, Field(ge=1, le=1000)] = 200


class TaskSettings(_Section):
    """proctask, the scheduler of named jobs. Platform addition."""

    # Finished trigger sends (and proctask's own run records) are dropped after this many
    # days; an idempotency key is honoured for at least as long.
    KEEP_DAYS: Annotated[int, Field(ge=1, le=3650)] = 30
    RETENTION_EVERY_MINUTES: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60
    # A scheduled backup from proctask every N hours (0: off). The distribution's systemd
    # timer (altcraft-backup.timer) is the default; turn this on only where that timer is
    # off. Both take the maintenance flag, so they never run together.
    BACKUP_EVERY_HOURS: Annotated[int, Field(ge=0, le=24 * 30)] = 0
    BACKUP_ROOT: str = ""  # empty: `aktool backup create`'s default root
    TICK_SECONDS: Annotated[float, Field(gt=0, le=300)] = 15.0
    # Multiplies an A/B test's wait before the winner is chosen: 0.01 turns a minute into
    # 0.6 s (for tests; 1 in production).
    AB_TIME_SCALE: Annotated[float, Field(gt=0, le=1)] = 1.0


def _ldap_url(value: str) -> str:
    # the value is not echoed: a URL may carry a password (which is refused here)
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("not an LDAP URL: ldap://host[:port] (StartTLS) or ldaps://host[:port]") from None
    if parts.username or parts.password:
        raise ValueError("no user or password in the URL: they are BIND_DN and BIND_PASSWORD")
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError("not ldap://host[:port] (StartTLS) or ldaps://host[:port]")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("not a TCP port in the URL")
    return value


def _ldap_filter(placeholder: str):
    def check(value: str) -> str:
        depth = 0
        for char in value:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                break
        if not value.startswith("(") or depth != 0:
            raise ValueError("not an LDAP filter: it must be one parenthesized expression, like (uid={login})")
        if placeholder not in value:
            raise ValueError(f"must contain {placeholder} (replaced, escaped, by the sign-in's value)")
        return value
    return check


def _admin_roles(value: dict[str, str]) -> dict[str, str]:
    from altcraft.domain.admins import ROLES

    for group, role in value.items():
        if "=" not in group:
            raise ValueError(f"{group!r}: not a group DN (like cn=altcraft-admins,ou=groups,dc=example,dc=com)")
        if role not in ROLES:
            raise ValueError(f"{group}: role {role!r} is not one of {', '.join(ROLES)}")
    return value


class LdapSettings(_Section):
    """webadmin's sign-in through a directory (LDAP). Platform addition. An administrator
    unknown locally is searched for under USER_BASE with USER_FILTER (as BIND_DN), its password
    checked by binding as the entry found, its groups read (a search under GROUP_BASE with
    GROUP_FILTER, or the entry's MEMBER_OF_ATTRIBUTE when GROUP_BASE is empty) and mapped to a
    role by ROLES. ldap:// URLs always use StartTLS; ldaps:// is TLS from the start; the
    server's certificate is checked against CA_FILE (empty: the system's CAs)."""

    ENABLE: bool = False
    SERVERS: list[Annotated[str, AfterValidator(_ldap_url)]] = Field(default_factory=list)  # tried in order
    CA_FILE: str = ""
    BIND_DN: str = ""  # empty: the search is anonymous
    BIND_PASSWORD: str = ""  # a secret (main.json is 0600); never logged
    USER_BASE: str = ""
    USER_FILTER: Annotated[str, AfterValidator(_ldap_filter("{login}"))] = \
        "(&(objectClass=inetOrgPerson)(uid={login}))"
    LOGIN_ATTRIBUTE: str = "uid"  # the entry's attribute that becomes the administrator's login
    GROUP_BASE: str = ""
    GROUP_FILTER: Annotated[str, AfterValidator(_ldap_filter("{dn}"))] = \
        "(&(objectClass=groupOfNames)(member={dn}))"
    MEMBER_OF_ATTRIBUTE: str = "memberOf"
    ROLES: Annotated[dict[str, str], AfterValidator(_admin_roles)] = Field(default_factory=dict)
    CONNECT_TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=60)] = 5.0
    TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=120)] = 10.0

    def problems(self) -> list[tuple[str, str]]:
        """What the keys say together (each problem with the key it is about)."""
        out: list[tuple[str, str]] = []
        if self.BIND_DN and not self.BIND_PASSWORD:
            out.append(("BIND_PASSWORD", "missing: BIND_DN is set"))
        if self.BIND_PASSWORD and not self.BIND_DN:
            out.append(("BIND_DN", "missing: BIND_PASSWORD is set"))
        if self.CA_FILE and not self.CA_FILE.startswith("/"):
            out.append(("CA_FILE", "must be an absolute path"))
        if not self.ENABLE:
            return out
        if not self.SERVERS:
            out.append(("SERVERS", "missing: at least one ldap:// or ldaps:// URL when ENABLE is true"))
        if not self.USER_BASE:
            out.append(("USER_BASE", "missing: the DN users are searched under when ENABLE is true"))
        if not self.ROLES:
            out.append(("ROLES", "missing: at least one group DN -> role when ENABLE is true "
                                 "(no group, no sign-in)"))
        if not self.LOGIN_ATTRIBUTE:
            out.append(("LOGIN_ATTRIBUTE", "missing"))
        if not self.GROUP_BASE and not self.MEMBER_OF_ATTRIBUTE:
            out.append(("MEMBER_OF_ATTRIBUTE", "missing: groups come from it when GROUP_BASE is empty"))
        return out


def _http_url(value: str) -> str:
    # the value is not echoed: a URL may carry a password (which is refused here)
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("not an http(s)://host[:port] URL") from None
    if parts.username or parts.password:
        raise ValueError("no user or password in the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("not an http(s)://host[:port] URL")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("not a TCP port in the URL")
    return value


def _metric_processes(value: list[str]) -> list[str]:
    from altcraft.registry import PROCESS_NAMES  # the registry knows nothing of config

    unknown = [name for name in value if name not in PROCESS_NAMES]
    if unknown:
        raise ValueError(f"no such process: {', '.join(unknown)} (see akd --processes)")
    return value


def _metric_ports(value: dict[str, int]) -> dict[str, int]:
    _metric_processes(list(value))
    return value


class PrometheusMetrics(_Section):
    """Altcraft's PROMETHEUS_METRICS {ENABLE, PROCESSES}, with the platform's push settings.
    ENABLE and PROCESSES choose which processes' metrics are exported: what the campaign
    worker pushes to the Pushgateway and what the distribution's prometheus role scrapes
    (altcraft/metrics). PUSHGATEWAY_URL .. INSTANCE are platform additions."""

    ENABLE: bool = True
    PROCESSES: Annotated[list[str], AfterValidator(_metric_processes)] = Field(default_factory=list)  # []: all
    PUSHGATEWAY_URL: Annotated[str, AfterValidator(_http_url)] = "http://127.0.0.1:9091"
    PUSH_INTERVAL_SECONDS: Annotated[float, Field(ge=1, le=3600)] = 15.0  # while a run is on
    PUSH_TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=60)] = 5.0
    INSTANCE: str = ""  # the grouping key's instance label; "": the host name
    # Workers without a port of their own serve GET /metrics on this one (PROCESSES.<name>.IP
    # or 127.0.0.1); Altcraft has WF_METRIC_PORT, PROC_TRIGGER_METRIC_PORT the same way.
    WORKER_PORTS: Annotated[dict[str, Port], AfterValidator(_metric_ports)] = \
        Field(default_factory=lambda: {"procactions": 8913})

    def exports(self, name: str) -> bool:
        """Whether process `name`'s metrics are exported (pushed or scraped)."""
        return self.ENABLE and (not self.PROCESSES or name in self.PROCESSES)


class MainConfig(_Section):
    BASEDIR: str = "/opt/akd"
    PRODUCT_NAME: str = "Altcraft"
    DEFAULT_LOG_LEVEL: LogLevel = "INFO"

    # Control database (MongoDB). CONTROLDB (a list of nodes) selects the replica set form.
    MONGO_AUTH_DB: str = "admin"
    CONTROLDB_IP: Host = "127.0.0.1"
    CONTROLDB_PORT: Port = 27017
    CONTROLDB_NAME: str = "control"
    CONTROLDB_USER: str = ""
    CONTROLDB_PASS: str = ""
    CONTROLDB_REPL_SET_NAME: str = ""
    CONTROLDB: list[MongoNode] = Field(default_factory=list)
    CONTROLDB_URI: str = ""  # platform addition: a full MongoDB URI overrides the keys above

    # What speaks the MongoDB protocol: MongoDB itself, or FerretDB, which scans where MongoDB
    # uses an index for anything but _id, so bulk paths choose other strategies. Platform addition.
    DOCUMENTS_ENGINE: Literal["mongodb", "ferretdb"] = "mongodb"

    # Account databases (MongoDB, one database per account). Platform naming, after CONTROLDB.
    ACCOUNTDB_IP: Host = "127.0.0.1"
    ACCOUNTDB_PORT: Port = 27018
    ACCOUNTDB_USER: str = ""
    ACCOUNTDB_PASS: str = ""
    ACCOUNTDB_REPL_SET_NAME: str = ""
    ACCOUNTDB: list[MongoNode] = Field(default_factory=list)
    ACCOUNTDB_URI: str = ""
    ACCOUNTDB_PREFIX: str = "account_"

    FILEDB_ENABLE: bool = False
    FILEDB_IP: Host = "127.0.0.1"
    FILEDB_PORT: Port = 27017
    FILEDB_NAME: str = "filedb"
    FILEDB_USER: str = ""
    FILEDB_PASS: str = ""
    FILEDB_REPL_SET_NAME: str = ""
    FILEDB: list[MongoNode] = Field(default_factory=list)

    CLICKHOUSE_SYSTEM: ClickHouseSystem = Field(default_factory=ClickHouseSystem)

    # SSDB instances (Redis protocol): actions, hard-bounce suppression, notifications, stats.
    SSDB_ACTIONS_IP: Host = "127.0.0.1"
    SSDB_ACTIONS_PORT: Port = 4410
    SSDB_ACTIONS_PASS: str = ""
    SSDB_HBSUPP_IP: Host = "127.0.0.1"
    SSDB_HBSUPP_PORT: Port = 4420
    SSDB_HBSUPP_PASS: str = ""
    SSDB_NOTIFY_IP: Host = "127.0.0.1"
    SSDB_NOTIFY_PORT: Port = 4430
    SSDB_NOTIFY_PASS: str = ""
    SSDB_STATS_IP: Host = "127.0.0.1"
    SSDB_STATS_PORT: Port = 4440
    SSDB_STATS_PASS: str = ""
    SSDB_ENGINE: Literal["ssdb", "redis"] = "ssdb"  # platform addition
    SSDB_SENTINEL: SsdbSentinel = Field(default_factory=SsdbSentinel)  # platform addition

    RABBITMQ_HOST: Host = "127.0.0.1"
    RABBITMQ_PORT: Port = 5672
    RABBITMQ_VHOST: str = "altcraft"
    RABBITMQ_USER: str = "altcraft"
    RABBITMQ_PASS: str = ""
    # Platform additions. RABBITMQ_NODES: the cluster's nodes, tried in order on every
    # (re)connection; when empty, RABBITMQ_HOST/PORT is the one node. RABBITMQ_QUEUE_TYPE:
    # what every platform queue is declared as (`x-queue-type`; RabbitMQ 3.10 cannot set it
    # by policy): `quorum` for the fail-safe scheme's three-node cluster.
    RABBITMQ_NODES: list[BrokerNode] = Field(default_factory=list)
    RABBITMQ_QUEUE_TYPE: Literal["classic", "quorum"] = "classic"

    CAMP_DUPLICATESDB: KVCluster = Field(default_factory=KVCluster)
    # The campaign worker publishes while the sender's MTA queue holds fewer messages than
    # this: a pause or cancel takes effect within that many, and the broker holds no more.
    CAMP_QUEUE_LIMIT: Annotated[int, Field(ge=100, le=10_000_000)] = 20000
    PROCWORKFLOW_DISTRIBUTED_CACHE_DB: KVCluster = Field(default_factory=KVCluster)

    POSTGRESQL: PostgreSQL = Field(default_factory=PostgreSQL)

    # Generated at install time; never defaulted.
    PRIVATE_KEY: Secret
    WEBAPI_PRIVATE_KEY: Secret
    TRACKING_CRYPT_KEY: Secret

    # Platform addition: every webadmin administrator must pass a TOTP code after the
    # password (one without a key is sent to enrolment before any session opens).
    WEBADMIN_TOTP_REQUIRED: bool = False
    # Platform addition: administrators signing in through a directory (see LdapSettings).
    WEBADMIN_LDAP: LdapSettings = Field(default_factory=LdapSettings)
    WEBCONTROL_HOSTNAME: str = ""
    WEBCONTROL_PUBLIC_IP: str = ""
    WEBCONTROL_PUBLIC_PORT: Port = 443
    TRACKING_HOSTNAME: str = ""
    TRACKING_PREFIX: str = ""
    # Platform addition: where tracking links point (nginx-trk in front of trkaction).
    TRACKING_BASE_URL: str = "http://127.0.0.1:8095"
    TRACKING_LINK_TTL_DAYS: Annotated[int, Field(ge=1, le=3650)] = 400
    # Platform addition: who answers clicks (/c) and opens (/o). "native": the compiled front
    # (process trkfront, {BASEDIR}/bin/trkfront, which the distribution builds and sets this
    # for; nginx-trk sends /c and /o to it); "python": trkaction answers them itself and akd
    # leaves trkfront alone (nothing to build; the default of a bare main.json).
    TRACKING_FRONT: Literal["native", "python"] = "python"
    COOKIESAVER_PUBLIC_IP: str = ""
    COOKIESAVER_HOSTNAME: str = ""
    COOKIESAVER_PORT: Port = 443
    COOKIESAVER_SSL_CRT_PATH: str = ""
    COOKIESAVER_SSL_KEY_PATH: str = ""

    # Bundled databases: a licensed file replaces or extends the bundled data. Platform additions.
    SEXDB_PATH: str = ""
    GEODB_PATH: str = ""
    BADPASS_PATH: str = ""
    PASSWORD_MIN_LENGTH: Annotated[int, Field(ge=8, le=128)] = 10
    # Phone numbers without a country code are read as numbers of this region (ISO 3166).
    DEFAULT_PHONE_REGION: str = "RU"

    MTA: MtaSettings = Field(default_factory=MtaSettings)
    IMPORT: ImportSettings = Field(default_factory=ImportSettings)
    WEBHOOKS: WebhookSettings = Field(default_factory=WebhookSettings)
    WORKFLOWS: WorkflowSettings = Field(default_factory=WorkflowSettings)
    TASKS: TaskSettings = Field(default_factory=TaskSettings)

    PROMETHEUS_METRICS: PrometheusMetrics = Field(default_factory=PrometheusMetrics)
    PROCESSES: dict[str, ProcessSettings] = Field(default_factory=dict)
    AKD: AkdSettings = Field(default_factory=AkdSettings)

    # -- derived paths ---------------------------------------------------------------
    @property
    def basedir(self) -> Path:
        return Path(self.BASEDIR)

    @property
    def pids_dir(self) -> Path:
        return self.basedir / "pids"

    @property
    def logs_dir(self) -> Path:
        return self.basedir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.basedir / "run"

    @property
    def bin_dir(self) -> Path:
        """Native programs built at install (registry.Process.binary), root-owned."""
        return self.basedir / "bin"

    def binary_path(self, name: str) -> Path | None:
        """The file a native process runs ({BASEDIR}/bin/<binary>), None for a Python one."""
        from altcraft.registry import get

        binary = get(name).binary
        return self.bin_dir / binary if binary else None

    def disabled_reason(self, name: str) -> str | None:
        """Why this main.json does not run process `name` (akd skips it, its unit is not
        installed, nginx sends it nothing), or None when it runs."""
        if not self.process_settings(name).ENABLE:
            return f"disabled in main.json (PROCESSES.{name}.ENABLE)"
        from altcraft.registry import UnknownProcess, get

        try:
            front_of = get(name).front_of  # a front runs only when main.json chooses it
        except UnknownProcess:
            front_of = None
        if front_of and self.TRACKING_FRONT != "native":
            return f"TRACKING_FRONT is python in main.json ({front_of} answers /c and /o itself)"
        return None

    @property
    def imports_dir(self) -> Path:
        """Uploaded import files (0600), read by procleadsaver on the same host."""
        return self.run_dir / "imports"

    def ssdb_settings(self, role: str) -> KVCluster:
        """SSDB role `role` (actions, hbsupp, notify, stats) described as a KVCluster: MODE
        sentinel when SSDB_SENTINEL.MASTERS names it, else standalone on its IP/PORT."""
        key = role.upper()
        node = KVNode(HOST=getattr(self, f"SSDB_{key}_IP"), PORT=getattr(self, f"SSDB_{key}_PORT"))
        common = {"PASSWORD": getattr(self, f"SSDB_{key}_PASS"), "NODES": [node], "ENGINE": "redis"}
        sentinel = self.SSDB_SENTINEL
        if key not in sentinel.MASTERS:
            return KVCluster(MODE="standalone", **common)
        return KVCluster(MODE="sentinel", SENTINELS=sentinel.SENTINELS, SENTINEL_MASTER=sentinel.MASTERS[key],
                         SENTINEL_PASSWORD=sentinel.SENTINEL_PASSWORD,
                         FAILOVER_WAIT_SECONDS=sentinel.FAILOVER_WAIT_SECONDS, **common)

    @property
    def broker_nodes(self) -> list[tuple[str, int]]:
        """The RabbitMQ nodes to try, in order: RABBITMQ_NODES, else RABBITMQ_HOST/PORT."""
        if self.RABBITMQ_NODES:
            return [(node.HOST, node.PORT) for node in self.RABBITMQ_NODES]
        return [(self.RABBITMQ_HOST, self.RABBITMQ_PORT)]

    def process_settings(self, name: str) -> ProcessSettings:
        return self.PROCESSES.get(name, ProcessSettings())

    def listen_address(self, name: str) -> Address | None:
        """Where process `name` listens under this main.json (see `listen_address`)."""
        return listen_address(name, self.process_settings(name))

    def metrics_address(self, name: str) -> Address | None:
        """Where process `name` serves GET /metrics under this main.json (see `metrics_address`);
        None for a process this main.json does not run (`disabled_reason`)."""
        if self.disabled_reason(name) is not None:
            return None
        return metrics_address(name, self.PROMETHEUS_METRICS, self.process_settings(name))

    @property
    def tracking_prefix(self) -> str:
        """The path of TRACKING_BASE_URL without its trailing slash ("" at the root): what
        trkaction and trkfront strip before /c, /o, /u, ..."""
        return urlsplit(self.TRACKING_BASE_URL).path.rstrip("/")

    def front_routes(self, name: str) -> list[str]:
        """The paths nginx sends to front process `name` (its registry routes under the
        tracking prefix), or [] when this main.json does not run it."""
        from altcraft.registry import get

        if self.disabled_reason(name) is not None:
            return []
        return [self.tracking_prefix + route for route in get(name).routes]


def listen_address(name: str, overrides: ProcessSettings | None = None) -> Address | None:
    """Where process `name` listens: main.json's PROCESSES.<name>.IP/PORT (`overrides`) over
    the registry's defaults; None for a process that listens on no port. The one place this
    is worked out: akd binds, waits for and reports it, callers connect to it, and
    `akd --processes --json` hands it to the Ansible roles (nginx, health checks).
    Raises registry.UnknownProcess for a name the registry does not know."""
    from altcraft.registry import get  # the registry knows nothing of config

    process = get(name)
    overrides = overrides or ProcessSettings()
    port = overrides.PORT or process.port
    if port is None:
        return None
    return Address(overrides.IP or process.host, port)


def metrics_address(name: str, settings: PrometheusMetrics | None = None,
                    overrides: ProcessSettings | None = None) -> Address | None:
    """Where process `name` serves GET /metrics, if it exports metrics: its own port (every
    HTTP process, akmtad's control port) or PROMETHEUS_METRICS.WORKER_PORTS. None for a
    planned process, one with no metrics port, or one PROMETHEUS_METRICS leaves out."""
    from altcraft.registry import get

    settings = settings or PrometheusMetrics()
    process = get(name)
    if not process.runnable or not settings.exports(name):
        return None
    listen = listen_address(name, overrides)
    if listen is not None:
        return listen
    port = settings.WORKER_PORTS.get(name)
    if port is None:
        return None
    return Address((overrides.IP if overrides else None) or process.host, port)


class Address(NamedTuple):
    """A process's listen address: unpacks as (host, port), prints as host:port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        return f"http://{self}{path}"


@dataclass(frozen=True)
class Issue:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [{"key": i.key, "message": i.message} for i in self.errors],
            "warnings": [{"key": i.key, "message": i.message} for i in self.warnings],
        }


class ConfigError(Exception):
    """main.json cannot be used; `report` lists every problem found."""

    def __init__(self, path: Path | None, report: Report):
        self.path = path
        self.report = report
        where = f" in {path}" if path else ""
        lines = [f"invalid configuration{where} ({len(report.errors)} problem(s)):"]
        lines += [f"  - {issue}" for issue in report.errors]
        super().__init__("\n".join(lines))


_JSON_TYPE_NAMES = {
    dict: "object", list: "array", str: "string", int: "integer",
    float: "number", bool: "boolean", type(None): "null",
}
_EXPECTED = {
    "int_type": "integer", "int_parsing": "integer", "float_type": "number",
    "string_type": "string", "bool_type": "boolean", "list_type": "array",
    "dict_type": "object", "model_type": "object", "model_attributes_type": "object",
}


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(root)"


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing (required)"
    if kind in _EXPECTED:
        got = _JSON_TYPE_NAMES.get(type(error.get("input")), type(error.get("input")).__name__)
        return f"wrong type: expected {_EXPECTED[kind]}, got {got}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"][0].lower() + error["msg"][1:]


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(f".{key}", child) for key, child in value.items()]
    if isinstance(value, list):
        return [(f"[{index}]", child) for index, child in enumerate(value)]
    return [("", value)]


def _unknown_keys(model: BaseModel, prefix: str = "") -> list[Issue]:
    issues = [Issue(f"{prefix}{key}", "unknown key (ignored)") for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        for suffix, child in _children(getattr(model, name)):
            if isinstance(child, BaseModel):
                issues += _unknown_keys(child, f"{prefix}{name}{suffix}.")
    return issues


# one wording of errors for the other checkers of main.json's sections (domain/mta_rules.py)
key_path, describe_error, unknown_keys = _key_path, _describe, _unknown_keys


def validate(data: Any, known_processes: frozenset[str] | None = None) -> tuple[MainConfig | None, Report]:
    """Check a parsed main.json; returns the config (None when invalid) and the report."""
    report = Report()
    if not isinstance(data, dict):
        report.errors.append(Issue("(root)", "main.json must hold a JSON object"))
        return None, report
    try:
        # JSON mode: nested sections arrive as objects, numbers stay numbers.
        config = MainConfig.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        report.errors += [Issue(_key_path(e["loc"]), _describe(e)) for e in exc.errors()]
        return None, report
    report.warnings += _unknown_keys(config)
    report.errors += [Issue(f"WEBADMIN_LDAP.{key}", message) for key, message in config.WEBADMIN_LDAP.problems()]
    report.errors += [Issue(f"SSDB_SENTINEL.{key}", message)
                      for key, message in config.SSDB_SENTINEL.problems(config.SSDB_ENGINE)]
    for section in ("CAMP_DUPLICATESDB", "PROCWORKFLOW_DISTRIBUTED_CACHE_DB"):
        report.errors += [Issue(f"{section}.{key}", message)
                          for key, message in getattr(config, section).problems()]
    nodes = config.broker_nodes
    if len(set(nodes)) != len(nodes):
        report.errors.append(Issue("RABBITMQ_NODES", "a node is listed twice"))
    if config.RABBITMQ_QUEUE_TYPE == "quorum" and len(nodes) < 3:
        report.warnings.append(Issue("RABBITMQ_QUEUE_TYPE", f"quorum queues on {len(nodes)} node(s): "
                                     "a quorum survives a node's loss only with 3 or more nodes"))
    if config.WORKFLOWS.TIME_SCALE != 1:
        report.warnings.append(Issue("WORKFLOWS.TIME_SCALE", f"scenario waits last {config.WORKFLOWS.TIME_SCALE:g} "
                                     "of their length: a setting for tests, 1 in production"))
    from altcraft.metrics.scrape import is_loopback  # standard library only, like this module

    akmtad = config.listen_address("akmtad")
    if akmtad is not None and not config.MTA.CONTROL_TOKEN and not is_loopback(akmtad.host):
        report.errors.append(Issue("MTA.CONTROL_TOKEN", f"required: akmtad's control port listens on {akmtad.host}, "
                                   "not loopback, and would take hold, release and purge from anyone reaching it"))
    if config.disabled_reason("trkfront") is None and config.disabled_reason("trkaction") is not None:
        report.errors.append(Issue("TRACKING_FRONT", "native, but trkaction does not run (PROCESSES.trkaction.ENABLE): "
                                   "trkfront writes its events into trkaction's journal, which only trkaction's "
                                   "relay publishes; set TRACKING_FRONT to python or enable trkaction"))
    if known_processes is not None:
        for name in config.PROCESSES:
            if name not in known_processes:
                report.errors.append(Issue(f"PROCESSES.{name}", "no such process (see akd --processes)"))
    if report.errors:
        return None, report
    return config, report


def resolve_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def load(path: str | os.PathLike[str] | None = None) -> tuple[MainConfig, Report]:
    """Load and validate main.json; raises ConfigError listing every problem."""
    from altcraft.registry import PROCESS_NAMES  # the registry knows nothing of config

    resolved = resolve_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(resolved, Report([Issue("(file)", f"{resolved} does not exist")])) from None
    except OSError as exc:
        raise ConfigError(resolved, Report([Issue("(file)", f"cannot read {resolved}: {exc.strerror}")])) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            resolved, Report([Issue("(file)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")])
        ) from None
    config, report = validate(data, PROCESS_NAMES)
    if config is None:
        raise ConfigError(resolved, report)
    return config, report
