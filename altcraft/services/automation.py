"""How the API process hands automation work on: events to `altcraft.events`, trigger sends
to proctrigger's queue. Both confirmed by the broker before the caller answers."""

from __future__ import annotations

import logging
from typing import Any

from altcraft.domain import triggers
from altcraft.domain.events import AutomationEvent
from altcraft.schema.rabbitmq import EVENTS_EXCHANGE, TRIGGER_JOBS_QUEUE
from altcraft.stores.broker import Message

log = logging.getLogger("altcraft.automation")


def event_message(event: AutomationEvent) -> Message:
    return Message(EVENTS_EXCHANGE, event.routing_key, event.encode(), event.event_id)


def job_message(send: dict[str, Any]) -> Message:
    return Message("", TRIGGER_JOBS_QUEUE, triggers.encode_job(send), send["_id"])


def announce(platform, event: AutomationEvent) -> None:
    """A profile change, published after the change is stored. Best effort: the change
    stands if the broker is away (logged); no outbox yet, so that event is not routed."""
    try:
        platform.publisher.publish(event_message(event))
    except Exception as exc:  # noqa: BLE001 - the stored change must not fail on it
        log.error("profile event %s of %s not published: %s", event.kind, event.profile_id,
                  f"{type(exc).__name__}: {exc}")
