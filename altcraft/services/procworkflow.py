"""The `procworkflow` process: runs the steps of scenarios (domain/scenarios.py).

Runs are their own timers in the control database: due runs are claimed in batches under a
lease (main.json WORKFLOWS.LEASE_SECONDS; one query for the due runs, one insert_many of
unique claim keys: domain/scenario_claims.py), each stepped as far as it goes now (the
batch's sends read each template and sender once), the batch's messages published in one
broker transaction, then its steps stored (one log insert, one update by _id a run, by
the claim's winner while the claim lasts). A worker killed
at any point leaves its leases to run out; the runs are claimed again and the steps done
again with the same outcome (a send with the same derived message id, which akmtad drops).
Nothing is kept in memory between batches, so a restart resumes every wait.

Entries reach the runs collection directly: the API (workflows/start) and procevent (a
custom event an active scenario's entry names) insert the run, whose id derives from the
entry, so a repeat finds it. There is no queue of our own: the run document is both the
hand-off and the timer.

The effects of the node types are wired here (domain/scenarios.py Machine): sends through
services/mailout.py, opens and clicks from ClickHouse, profile conditions through the
segment compiler, updates through domain/profiles.py and the static segments' members,
webhook nodes into prochook's outbox (one HTTP sender for all webhooks).

It is an HTTP process (port 6060, as Altcraft's): /procworkflow/health, /readiness and
/metrics (steps by node type, runs stepped) are served by gunicorn; each gunicorn worker
runs the step loop in a thread, claims keep them apart.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from prometheus_client import Counter

from altcraft.config import MainConfig
from altcraft.domain import scenarios, webhooks
from altcraft.domain.errors import DomainError
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.registry import Process
from altcraft.services.mailout import Mailer, Skip
from altcraft.stores.analytics import Analytics
from altcraft.stores.broker import Broker, Message
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.procworkflow")
SCAN_SECONDS = 0.5
POLL_SECONDS, POLL_FLOOR_SECONDS = 60.0, 0.5  # a wait for an open or a click looks again (x TIME_SCALE)
SCENARIO_TTL = 5.0
CACHED = 1000  # graphs and scenarios kept; the lot is dropped when full
STEPS = Counter("altcraft_workflow_steps_total", "Scenario steps done", ["type"])
FAILED = Counter("altcraft_workflow_step_errors_total", "Scenario steps that failed (retried after the lease)")


class ReadOnce(scenarios.Scenarios):
    """The store as the step loop reads it, with fewer round trips: a version's graph never
    changes, so it is read once; a scenario (its resource, for sends) is read again after
    SCENARIO_TTL seconds, as procevent's cache of what listens."""

    def __init__(self, control, ttl: float = SCENARIO_TTL, clock: Callable[[], float] = time.monotonic):
        super().__init__(control)
        self.ttl, self.monotonic = ttl, clock
        self._graphs: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
        self._scenarios: dict[tuple[int, Any], tuple[float, dict[str, Any]]] = {}

    def graph(self, scenario_id: int, version: int) -> dict[str, dict[str, Any]]:
        key = (scenario_id, version)
        if key not in self._graphs:
            if len(self._graphs) >= CACHED:
                self._graphs.clear()
            self._graphs[key] = super().graph(scenario_id, version)
        return self._graphs[key]

    def get(self, account_id: int, scenario_id: Any) -> dict[str, Any]:
        key, now = (account_id, scenario_id), self.monotonic()
        cached = self._scenarios.get(key)
        if cached is None or now - cached[0] >= self.ttl:
            if len(self._scenarios) >= CACHED:
                self._scenarios.clear()
            cached = self._scenarios[key] = (now, super().get(account_id, scenario_id))
        return cached[1]


def next_size(size: int, most: int, claimed: int, late: int, seconds: float, lease: float) -> int:
    """How many runs the next batch claims: half as many after a batch that stored runs after
    their claims had ended (a slow store or a loaded machine: their updates then scan, and
    another worker may step them again), twice as many (up to WORKFLOWS.BATCH) after a full
    batch done within half a lease."""
    if late:
        return max(1, size // 2)
    if claimed >= size and seconds < lease / 2:
        return min(most, size * 2)
    return size


class BatchMailer(Mailer):
    """The sends of one batch read a template, its senders and the profile database's
    definition once: a welcome batch sends
    one template from one sender to up to WORKFLOWS.BATCH profiles. `forget` starts the next batch,
    so an edited template or sender is read again within a batch's time."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._kept: dict[tuple, Any] = {}

    def forget(self) -> None:
        self._kept.clear()

    def template(self, account_id: int, template_id: Any) -> Any:
        key = ("template", account_id, template_id)
        if key not in self._kept:
            self._kept[key] = super().template(account_id, template_id)
        return self._kept[key]

    def profiles(self, account_id: int, db_id: int) -> Any:
        key = ("profiles", account_id, db_id)
        if key not in self._kept:
            self._kept[key] = super().profiles(account_id, db_id)
        return self._kept[key]

    def senders(self, account_id: int, source: dict[str, Any]) -> Any:
        key = ("senders", account_id, source["id"], source["db_id"], source["resource_id"],
               source.get("sender_id"), source.get("vsender_id"))
        if key not in self._kept:
            self._kept[key] = super().senders(account_id, source)
        return self._kept[key]


class Stepper:
    def __init__(self, config: MainConfig):
        self.config = config
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.platform = Platform(config)
        self.store = ReadOnce(self.platform.control)
        self.broker = Broker(config, app="procworkflow")
        self.mailer = BatchMailer(config, self.platform, self.broker)
        self.analytics = Analytics(config.CLICKHOUSE_SYSTEM)
        self.outgoing: list[Message] | None = None  # a batch's messages, published before its steps are stored
        self.size = config.WORKFLOWS.BATCH  # runs the next batch claims (next_size)
        scale = config.WORKFLOWS.TIME_SCALE
        self.machine = scenarios.Machine(self.store, self.send, self.activity, self.matches, scale=scale,
                                         profile=self.profile, update=self.update, webhook=self.webhook,
                                         poll_seconds=max(POLL_FLOOR_SECONDS, POLL_SECONDS * scale))

    def send(self, run: dict[str, Any], node: dict[str, Any], mid: str) -> None:
        scenario = self.store.get(run["account_id"], run["scenario_id"])
        source = {**node, "id": node["campaign_id"], "account_id": run["account_id"], "db_id": run["db_id"],
                  "resource_id": scenario["resource_id"]}
        try:
            self.mailer.send(run["account_id"], source, run["profile_id"], mid, run.get("data") or {},
                             self.outgoing)
        except (Skip, DomainError) as exc:  # the run goes on, as a campaign goes on past one profile
            log.info("run %s node %s: not sent: %s", run["_id"], node["id"], getattr(exc, "message", exc))

    def activity(self, run: dict[str, Any], kinds: tuple[str, ...], campaign_id: int) -> bool:
        rows = self.analytics.execute(
            f"SELECT count() FROM {self.analytics.table('events')} WHERE account_id = %(a)s AND kind IN %(k)s "
            "AND campaign_id = %(c)s AND profile_id = %(p)s",
            {"a": run["account_id"], "k": kinds, "c": campaign_id, "p": run["profile_id"]})
        return rows[0][0] > 0

    def profile(self, run: dict[str, Any]) -> dict[str, Any]:
        doc = self.platform.profiles(run["account_id"], run["db_id"]).collection.find_one(
            {"_id": run["profile_id"]}, {"data": 1})
        return (doc or {}).get("data") or {}

    def update(self, run: dict[str, Any], node: dict[str, Any]) -> None:
        """An update node's changes; each is idempotent, so a step done again changes nothing
        more. A change the profile refuses (a value of the wrong type, a hard bounce) is
        logged and the run goes on, as a send that cannot go."""
        profiles = self.platform.profiles(run["account_id"], run["db_id"])
        pid = run["profile_id"]
        try:
            if "set" in node:
                profiles.update(node["set"], profile_id=pid)
            if "subscription" in node:
                sub = node["subscription"]
                profiles.set_subscription(pid, sub["resource_id"], sub["channel"], sub["status"])
            if "segment" in node:  # the members' one rule (unique per profile, the count kept)
                segments = self.platform.segments(run["account_id"])
                change = segments.add_member if node["segment"]["action"] == "add" else segments.remove_member
                change(node["segment"]["id"], run["db_id"], pid)
        except DomainError as exc:
            log.info("run %s node %s: not updated: %s", run["_id"], node["id"], exc.message)

    def webhook(self, run: dict[str, Any], node: dict[str, Any], event_id: str) -> None:
        """A webhook node's call, into prochook's outbox (signed, retried, logged there); the
        entry's id derives from (endpoint, event id), so a step done again adds nothing."""
        try:
            endpoint = self.platform.webhooks.get_doc(run["account_id"], node["endpoint_id"])
        except DomainError as exc:
            log.info("run %s node %s: no webhook: %s", run["_id"], node["id"], exc.message)
            return
        if not endpoint.get("enabled"):
            log.info("run %s node %s: webhook %s is disabled", run["_id"], node["id"], endpoint["id"])
            return
        data = {"event_id": event_id, "scenario_id": run["scenario_id"], "version": run["version"],
                "run_id": run["_id"], "node": node["id"], "db_id": run["db_id"], "profile_id": run["profile_id"],
                "data": run.get("data") or {}}
        outbox = self.platform.webhook_outbox
        body = webhooks.payload(node["event"], self.store.clock(), data)
        outbox.put([outbox.entry(run["account_id"], endpoint["id"], event_id, node["event"], body)])

    def matches(self, run: dict[str, Any], condition: Any) -> bool:
        from altcraft.domain.databases import Databases
        from altcraft.domain.segments import Compiler
        database = Databases(self.platform.account_db(run["account_id"])).get(run["db_id"])
        query = Compiler(database, run["account_id"], self.platform.activity_lookup,
                         self.config.DEFAULT_PHONE_REGION).compile(condition)
        profiles = self.platform.profiles(run["account_id"], run["db_id"]).collection
        return profiles.find_one({"$and": [{"_id": run["profile_id"]}, query]}, {"_id": 1}) is not None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.step_batch():
                self.broker.poll(SCAN_SECONDS)  # keeps the connection's heartbeats going

    def step_batch(self) -> int:
        """Claims up to WORKFLOWS.BATCH due runs, steps each as far as it goes now, publishes the batch's
        messages in one broker transaction, then stores the steps (scenarios.Batch). A crash
        anywhere leaves the runs at their claimed step: their leases run out and they are
        stepped again, sending the same message ids, which akmtad drops. How many runs."""
        settings = self.config.WORKFLOWS
        started = time.monotonic()
        runs = self.store.claim_batch(self.owner, self.size, settings.LEASE_SECONDS)
        batch = scenarios.Batch(self.store)
        self.mailer.forget()
        self.outgoing = []
        out_of_time = 0
        for index, run in enumerate(runs):
            if self.store.clock() >= run["claim"]["until"]:
                out_of_time = len(runs) - index  # left to their claims' end, then claimed again
                break
            if index % 20 == 19:
                self.broker.poll(0)  # a long batch keeps the broker connection's heartbeats
            try:
                self.machine.advance(run, batch)
            except DomainError as exc:  # a version gone: the lease runs out and it is retried
                batch.drop(run["_id"])
                FAILED.inc()
                log.warning("run %s at %s: %s", run["_id"], run["node"], exc.message)
            except (KeyError, TypeError, ValueError) as exc:  # a bug or a bad document: this run only
                batch.drop(run["_id"])
                FAILED.inc()
                log.exception("run %s at %s failed (%s); retried when its lease ends", run["_id"], run["node"],
                              type(exc).__name__)
        outgoing, self.outgoing = self.outgoing, None
        if outgoing:
            self.broker.publish_transaction(outgoing)
        batch.flush()
        for node_type in batch.taken:
            STEPS.labels(node_type).inc()
        self.size = next_size(self.size, settings.BATCH, len(runs), batch.late + out_of_time,
                              time.monotonic() - started, settings.LEASE_SECONDS)
        return len(runs)

    def close(self) -> None:
        for close in (self.broker.close, self.analytics.close, self.platform.close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass


def loop(config: MainConfig, stop: threading.Event) -> None:
    backoff, size = 1.0, config.WORKFLOWS.BATCH
    while not stop.is_set():
        stepper = None
        try:
            stepper = Stepper(config)
            stepper.size = size  # a batch size learnt before the reconnect is kept
            stepper.run(stop)
        except Exception as exc:  # a store or the broker away: leases run out, runs are claimed again
            log.warning("scenario steps interrupted (%s: %s); reconnecting in %.0f s", type(exc).__name__,
                        str(exc)[:300], backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
        finally:
            if stepper is not None:
                size = stepper.size
                stepper.close()


def create_app(config: MainConfig, process: Process) -> Flask:
    """akd runs this under gunicorn (preloaded): each forked worker starts its step loop."""
    app = create_service_app(process.name, dependency_checker(config, process.requires))
    stop = threading.Event()

    if config.WORKFLOWS.TIME_SCALE != 1:
        log.warning("WORKFLOWS.TIME_SCALE is %g: every scenario wait lasts that share of its length "
                    "(a setting for tests)", config.WORKFLOWS.TIME_SCALE)

    def start() -> None:
        threading.Thread(target=loop, args=(config, stop), name="procworkflow-steps", daemon=True).start()

    os.register_at_fork(after_in_child=start)
    app.config["WORKFLOW_STOP"] = stop
    return app
