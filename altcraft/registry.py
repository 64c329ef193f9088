"""The process table: every platform process, what kind it is, where it listens, whether
it exists yet.

Names, ports and descriptions follow Altcraft's process table (admin guide, "Platform service
monitoring" and "Component Description"). Ports Altcraft does not document (trkwebctrl,
trkcustom, trklisten, webadmin, trkfront) are this platform's choice and are marked in the notes.

Status:
  ready    - does its whole job.
  partial  - runs and is supervised, serves health/readiness/metrics, but only part of its
             job exists; `notes` says which part.
  planned  - not implemented. akd refuses to start it; it is listed so that operators and
             monitoring see the whole shape of the platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["http", "worker", "task"]
Status = Literal["ready", "partial", "planned"]

# Store names used in `requires`: they match the checks in altcraft.stores.checks.
CONTROLDB, ACCOUNTDB, CLICKHOUSE, RABBITMQ = "controldb", "accountdb", "clickhouse", "rabbitmq"
CAMP_DUPLICATESDB, SSDB_HBSUPP, SSDB_STATS = "camp_duplicatesdb", "ssdb_hbsupp", "ssdb_stats"


@dataclass(frozen=True)
class Process:
    name: str
    kind: Kind
    description: str
    port: int | None = None
    host: str = "127.0.0.1"
    status: Status = "planned"
    # "module:callable": a Flask app factory for http, a main(config) for worker/task.
    entry: str | None = None
    requires: tuple[str, ...] = ()
    remote: bool = False  # may be moved to another host (Altcraft marks these)
    notes: str = ""
    group: str = field(default="core", compare=False)
    # the HTTP server of an http process (altcraft/http/server.py): gunicorn (WSGI, gthread),
    # or granian (RSGI) where a hot path needs it: the click and open answers of tracking
    server: Literal["gunicorn", "granian"] = "gunicorn"
    # A native program instead of a Python entry: its file name under {BASEDIR}/bin (built from
    # native/<binary> at install) and its own arguments; `akd run` execs it with these plus
    # `--config <main.json> --listen <its address>`, argv[0] being its title AK:<name>.
    binary: str | None = None
    args: tuple[str, ...] = ()
    # A front: it answers these paths (under TRACKING_BASE_URL's path) in place of the process
    # `front_of`, and the nginx instance serving that process sends them to it.
    front_of: str | None = None
    routes: tuple[str, ...] = ()
    # The path whose 200 says the process is up (the role's start check, healthcheck.yml);
    # empty: /<name>/health.
    health_path: str = ""

    @property
    def title(self) -> str:
        return f"AK:{self.name}"

    @property
    def runnable(self) -> bool:
        return self.status != "planned" and (self.entry is not None or self.binary is not None)

    @property
    def health(self) -> str:
        return self.health_path or f"/{self.name}/health"

    @property
    def supervised(self) -> bool:
        """Long-running processes akd keeps up; tasks are started on demand by proctask."""
        return self.kind != "task"


_API_DEPS = (CONTROLDB, ACCOUNTDB, CLICKHOUSE, RABBITMQ)
_TRK_DEPS = (RABBITMQ,)

PROCESSES: tuple[Process, ...] = (
    # -- API and web interfaces ---------------------------------------------------------
    Process("api", "http", "API (v1.1 REST/HTTP)", 8801, status="partial",
            entry="altcraft.services.api:create_app", requires=_API_DEPS,
            notes="admin accounts/users/tokens, databases, profiles; more areas with #4, #5"),
    Process("webadmin", "http", "Admin panel: accounts, users, system settings", 8081,
            status="partial", entry="altcraft.web.admin:create_app",
            requires=_API_DEPS + (CAMP_DUPLICATESDB,),
            notes="adminwebcontrol in Altcraft's table; administrators' sign-in with TOTP, "
                  "accounts pages; users, tokens, senders and system settings pages to come (#13)"),
    Process("webcontrol", "http", "User panel: campaigns, segments, templates", 8082,
            status="partial", entry="altcraft.web.control:create_app",
            requires=_API_DEPS + (CAMP_DUPLICATESDB, SSDB_STATS),
            notes="sign-in, dashboard, profile databases, profiles and the profile card; "
                  "import, segments, templates, campaigns and reports pages with #12"),
    # -- tracking: external requests ------------------------------------------------------
    Process("trkaction", "http", "Tracking redirects, unsubscribe, subscription manager", 8095,
            status="partial", entry="altcraft.services.trk.app:create_app",
            requires=(RABBITMQ, ACCOUNTDB), remote=True, group="tracking", server="granian",
            notes="clicks /c, opens /o, unsubscribe /u (+ RFC 8058 one-click), subscription "
                  "manager /m, web version /w; readiness checks RabbitMQ only"),
    Process("trkfront", "http", "Compiled front of clicks /c and opens /o (native/trkfront)", 8104,
            status="ready", binary="trkfront", args=("--process", "trkaction"), front_of="trkaction",
            routes=("/c/", "/o/"), health_path="/metrics", remote=True, group="tracking",
            notes="port chosen here; a Go program answering /c and /o as trkaction does, into "
                  "trkaction's journal (its relay publishes); runs when TRACKING_FRONT is native"),
    Process("trkimage", "http", "Pixel and image requests", 8096, status="partial",
            entry="altcraft.services.trk.app:create_app", requires=_TRK_DEPS,
            remote=True, group="tracking", server="granian",
            notes="the open pixel /o (same app as trkaction); hosted images not yet"),
    Process("trkread", "http", "Email read events (deprecated upstream)", 8097,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    Process("trksms", "http", "SMS events registration", 8098, requires=_TRK_DEPS,
            remote=True, group="tracking"),
    Process("cookie_saver", "http", "Visitor cookies, Web/Push SDK requests", 8099,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    Process("trkpush", "http", "Push tracking redirects (deprecated upstream)", 8100,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    Process("trkwebctrl", "http", "Web forms and popups: events and resources", 8101,
            requires=_TRK_DEPS, remote=True, group="tracking", notes="port chosen here"),
    Process("trklisten", "http", "Requests from third-party services", 8102,
            requires=_TRK_DEPS, remote=True, group="tracking", notes="port chosen here"),
    Process("trkcustom", "http", "Tracking redirects for custom channels", 8103,
            requires=_TRK_DEPS, remote=True, group="tracking", notes="port chosen here"),
    Process("trk_amazon_sns", "http", "Amazon SES event registration", 8093,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    Process("trkmandrill", "http", "Mandrill event registration", 8094,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    Process("trkwebversion", "http", "Web-version events registration", 8199,
            requires=_TRK_DEPS, remote=True, group="tracking"),
    # -- event processing ---------------------------------------------------------------
    Process("procactions", "worker", "Tracking events (opens, clicks, unsubscribes) into "
            "ClickHouse and profiles", status="ready", entry="altcraft.services.procactions:main",
            requires=(RABBITMQ, CLICKHOUSE, ACCOUNTDB, SSDB_HBSUPP, SSDB_STATS), group="events",
            notes="tracking and delivery events in batches into ClickHouse (exactly once per "
                  "event_id), bot timing flags, unsubscribes/hard bounces onto profiles and the "
                  "stop list, hourly statistics in SSDB; ack after the write"),
    Process("procevent", "worker", "Writes events to analytics, routes them to triggers and hooks",
            status="partial", entry="altcraft.services.procevent:main",
            requires=(RABBITMQ, CONTROLDB), group="events",
            notes="routes custom events, profile changes and (un)subscribes to trigger campaigns "
                  "(queue events.automation -> triggers.jobs, ack after the confirmed hand-off); "
                  "scenarios not yet; analytics is procactions' part here"),
    Process("procpixel", "worker", "Web-layer pixel events", requires=(RABBITMQ, CLICKHOUSE),
            group="events"),
    Process("procpush", "worker", "Push channel events", requires=(RABBITMQ,), group="events"),
    Process("procsenderev", "worker", "Sender events: deliveries, bounces (deprecated upstream)",
            requires=(RABBITMQ, CLICKHOUSE), group="events"),
    Process("procsmsev", "worker", "Outgoing SMS gateway events", requires=(RABBITMQ,),
            group="events"),
    Process("procsmslisten", "http", "Incoming SMS gateway events", 8803, requires=(RABBITMQ,),
            group="events"),
    Process("procwebver", "worker", "Stores web versions of messages", requires=(RABBITMQ,),
            group="events"),
    Process("procrpc", "http", "RPC for tracking services", 8972, requires=(RABBITMQ,),
            group="events"),
    Process("proceventgen", "worker", "Demo and test event generator", requires=(RABBITMQ,),
            group="events"),
    # -- tasks and data processing ------------------------------------------------------
    Process("proctask", "http", "Schedules and runs background tasks, launches campaigns", 8962,
            status="partial", entry="altcraft.services.proctask:create_app",
            requires=(CONTROLDB,), remote=True, group="tasks",
            notes="named jobs run once per due time across instances (unique run record, lease): "
                  "retention of finished trigger sends, the backup hook (off by default; the "
                  "systemd timer is the default); campaigns launch through the campaign worker's "
                  "own claim; segment recalculation not yet"),
    Process("procworkflow", "http", "Scenario (workflow) processing", 6060, status="partial",
            entry="altcraft.services.procworkflow:create_app",
            requires=(CONTROLDB, ACCOUNTDB, CLICKHOUSE, RABBITMQ, SSDB_HBSUPP), group="tasks",
            notes="versioned scenarios: entries (API call, workflows/import_and_start_batch, custom "
                  "event, segment, date field), send, wait, wait-for, branch, random split, update, "
                  "webhook, exit; runs as stored timers under a lease, re-entry policy, per-node counts"),
    Process("proctrigger", "worker", "Trigger campaigns", status="partial",
            entry="altcraft.services.proctrigger:main",
            requires=(RABBITMQ, CONTROLDB, ACCOUNTDB, SSDB_HBSUPP), group="tasks",
            notes="API, custom-event and subscription triggers with a delay, e-mail through "
                  "akmta_prior_<sender>, idempotency keys; no import or date-field triggers, "
                  "no bulk or task variants, no metrics port yet"),
    Process("prochook", "worker", "Outgoing webhooks", status="partial",
            entry="altcraft.services.prochook:main", requires=(RABBITMQ, CONTROLDB), group="tasks",
            notes="signed (Standard Webhooks) per-account webhooks for every event on altcraft.events, "
                  "from an outbox with retries over three days, 410 disables, address guard; "
                  "scenario webhook nodes and panel pages not yet"),
    Process("procresume", "worker", "Resumes suspended subscriptions", requires=(ACCOUNTDB,),
            group="tasks"),
    Process("procleadsaver", "worker", "Deferred profile updates and imports", status="partial",
            entry="altcraft.services.procleadsaver:main", requires=(CONTROLDB, ACCOUNTDB), group="tasks",
            notes="runs the panel's import jobs (check and import, under a lease, resumed after a "
                  "crash); deferred profile updates are not there yet"),
    Process("procintegras", "worker", "External integrations and gateways", requires=(RABBITMQ,),
            group="tasks"),
    Process("stataggregator", "worker", "Statistics aggregation", requires=(CLICKHOUSE, SSDB_STATS),
            group="tasks"),
    # -- on-demand workers (started by proctask, not kept up by akd) ----------------------
    Process("campaign", "worker", "Mass campaigns: segment to rendered messages to the broker",
            status="ready", entry="altcraft.services.campaign:main",
            requires=(CONTROLDB, ACCOUNTDB, RABBITMQ, CAMP_DUPLICATESDB, SSDB_HBSUPP), group="tasks",
            notes="a supervised worker that claims due campaigns (Altcraft starts it from proctask)"),
    Process("segstat_recalc", "task", "Recalculates static segments", requires=(ACCOUNTDB,),
            group="tasks"),
    Process("rescan_databases", "task", "Recalculates profile database statistics",
            requires=(ACCOUNTDB,), group="tasks"),
    Process("dbimport", "task", "Scheduled profile import from external SQL tables",
            requires=(ACCOUNTDB,), group="tasks"),
    Process("wfcapt", "task", "Captures profiles into a workflow on schedule",
            requires=(ACCOUNTDB,), group="tasks"),
    Process("segstat_sync", "task", "Syncs static segments to advertising platforms",
            requires=(ACCOUNTDB,), group="tasks"),
    # -- sending ------------------------------------------------------------------------
    Process("akmtad", "worker", "Mail transfer agent (AKMTA): spool, DKIM, delivery", 13444,
            status="ready", entry="altcraft.services.akmtad:main",
            requires=(RABBITMQ, CONTROLDB, CAMP_DUPLICATESDB), remote=True, group="sending",
            notes="the port is its control API (health, readiness, metrics, queue stats/hold/release/purge)"),
)

BY_NAME: dict[str, Process] = {p.name: p for p in PROCESSES}
PROCESS_NAMES: frozenset[str] = frozenset(BY_NAME)


class UnknownProcess(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown process {self.name!r} (see akd --processes)"


def get(name: str) -> Process:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownProcess(name) from None


def select(names: list[str] | tuple[str, ...] | None = None) -> list[Process]:
    """The named processes, or every runnable supervised one when no name is given."""
    if names:
        return [get(n) for n in names]
    return [p for p in PROCESSES if p.runnable and p.supervised]
