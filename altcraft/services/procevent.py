"""The `procevent` worker: routes automation events to the trigger campaigns and scenarios
that listen.

It consumes `events.automation` (custom events, profile changes and tracking
(un)subscribes; schema/rabbitmq.py), matches each event against its account's active
trigger campaigns (domain/triggers.py `matches`; the list is kept per account and read again
when the account's automation stamp (domain/automation_stamp.py) changed, so an event
published after a save returned meets the saved definitions) and hands each match to proctrigger
on `triggers.jobs`. A message is acknowledged only once every hand-off it caused is
confirmed by the broker; a crash before that gets it delivered again, and the repeated
hand-offs carry the same send id (derived from trigger and event id), which proctrigger
stores once. A custom event an active scenario's entry names starts a run of it
(domain/scenarios.py `enter`, stored before the acknowledgement; the run id derives from
the event id, so a redelivery finds the run; procworkflow steps it); runs of the profile
waiting for a custom event of that name (a wait_for node) are marked and made due
(`deliver`, idempotent; only for the names some version of the account's scenarios waits
for, kept per account stamp: the update reads every run on the FerretDB stand-in). A message that is not
an event is dead-lettered, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from altcraft.services.reconnect import fresh, run_until_stopped
from altcraft.config import MainConfig
from altcraft.domain import events, scenarios, triggers
from altcraft.domain.automation_stamp import AutomationStamps
from altcraft.domain.errors import Conflict
from altcraft.schema.rabbitmq import AUTOMATION_QUEUE
from altcraft.services.automation import job_message
from altcraft.stores.broker import Broker, Received
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.procevent")
# A safety net only: definitions changed behind the domain's back (by hand in the database)
# are picked up after this time; every change made through the platform bumps the stamp.
TRIGGER_CACHE_SECONDS = 60.0
PREFETCH = 200


class TriggerCache:
    """Each account's active definitions, read again when the account's stamp differs from
    the one they were read under, or after `ttl` seconds."""

    def __init__(self, load: Callable[[int], list[Any]], ttl: float = TRIGGER_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.load, self.ttl, self.clock = load, ttl, clock
        self._entries: dict[int, tuple[float, int, list[Any]]] = {}

    def active(self, account_id: int, stamp: int = 0) -> list[Any]:
        entry = self._entries.get(account_id)
        if entry is None or entry[1] != stamp or self.clock() - entry[0] >= self.ttl:
            # the stamp was read before the load: a change landing in between leaves the
            # entry under the older stamp, so the next event loads again
            entry = (self.clock(), stamp, self.load(account_id))
            self._entries[account_id] = entry
        return entry[2]


def route(event: events.AutomationEvent, active: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sends an event sets off: one per matching trigger campaign."""
    at = events.parse_time(event.time)
    return [triggers.job(t, event.profile_id, event.data, event_id=event.event_id, at=at)
            for t in active if triggers.matches(t, event)]


def entered(event: events.AutomationEvent, listening: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The active scenarios whose entry is this custom event (in its profile database)."""
    return [s for s in listening if scenarios.entered_by(s, event)]


class Router:
    def __init__(self, config: MainConfig):
        self.platform = Platform(config)
        self.broker = Broker(config, app="procevent")
        self.cache = TriggerCache(self.platform.triggers.active)
        self.scenario_cache = TriggerCache(self.platform.scenarios.listening)
        self.awaited = TriggerCache(self.platform.scenarios.awaited)  # event names a wait_for waits for
        self.stamps = AutomationStamps(self.platform.control)
        self.pending: list[Received] = []

    def run(self, stop: threading.Event) -> None:
        self.broker.prefetch(PREFETCH)
        self.broker.consume(AUTOMATION_QUEUE, self.pending.append)
        while not stop.is_set():
            self.broker.poll(0.5)
            # handled outside the consumer callback: publishing and confirming from there
            # would re-enter the connection's event loop
            while self.pending:
                self.handle(self.pending.pop(0))

    def handle(self, received: Received) -> None:
        try:
            event = events.decode_automation(received.body, received.routing_key)
        except events.BadEvent as exc:
            log.error("message %s dead-lettered: %s", received.message_id, exc)
            self.broker.reject(received.tag)
            return
        stamp = self.stamps.current(event.account_id)
        for send in route(event, self.cache.active(event.account_id, stamp)):
            self.broker.publish(job_message(send))  # returns once the broker holds it
            log.info("event %s (%s) -> trigger campaign %s", event.event_id, event.kind, send["trigger_id"])
        for scenario in entered(event, self.scenario_cache.active(event.account_id, stamp)):
            try:
                self.platform.scenarios.enter(scenario, event.profile_id, f"event:{event.event_id}", event.data)
                log.info("event %s -> scenario %s", event.event_id, scenario["id"])
            except Conflict as exc:  # the re-entry policy, or deactivated since cached
                log.info("event %s: %s", event.event_id, exc.message)
        woken = self.platform.scenarios.deliver(event) \
            if event.kind == events.CUSTOM and event.name in self.awaited.active(event.account_id, stamp) else 0
        if woken:
            log.info("event %s -> %d waiting scenario run(s)", event.event_id, woken)
        self.broker.ack(received.tag)

    def close(self) -> None:
        self.broker.close()
        self.platform.close()


def main(config: MainConfig, stop: threading.Event) -> None:
    run_until_stopped(fresh(lambda: Router(config)), stop, "routing", log)
