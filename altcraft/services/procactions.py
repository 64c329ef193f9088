"""procactions: tracking and delivery events from RabbitMQ into ClickHouse and profiles.

Consumes `events.actions` (action.#, from trkaction/trkimage) and `events.delivery`
(delivery.#, from akmtad) on one channel (altcraft.stores.amqp_consume.BatchConsumer) with a
prefetch of PREFETCH per queue, decodes each delivery as pika reads it, on the connection's
thread (events.decode: msgspec), gathers the events into a batch and hands it to
domain.ingest.EventWriter, on a writer thread, when the batch holds PREFETCH/2 messages or
its oldest message is FLUSH_SECONDS old; meanwhile the rest of the prefetch window keeps
arriving and being decoded (the writer's turn is then ClickHouse's round trips and one
columnar INSERT, events.columns). Only after the writer returned (the ClickHouse INSERT and
the profile effects done) is the batch acknowledged: its bad messages rejected one by one,
then one `multiple` ack up to its last event. A crash before that (kill -9)
leaves the batch unacknowledged: RabbitMQ delivers it again and ClickHouse keeps one row per
event_id (ReplacingMergeTree; reports count uniqExact(event_id)).

At a backup's quiet point (domain/maintenance.py) procactions goes on consuming; it answers
the backup's drain request once both queues hold nothing ready and everything it took is
written and acknowledged, so the ClickHouse dump holds every event published before.

A message that is not a valid event is rejected without requeue and so dead-lettered to
`events.dead`: kept for inspection, never dropped silently. If a store is away, the batch
is not acknowledged, the connection is dropped (RabbitMQ requeues the batch) and the worker
connects again after a back-off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client import Counter, start_http_server

from altcraft.services.reconnect import run_until_stopped
from altcraft.config import MainConfig
from altcraft.domain.events import BadEvent, Event, decode
from altcraft.domain.ingest import EventWriter
from altcraft.domain.maintenance import QuietMember
from altcraft.domain.reports import HourlyStats
from altcraft.domain.stoplist import StopList
from altcraft.stores import analytics, kv
from altcraft.stores.amqp_consume import BatchConsumer

log = logging.getLogger("altcraft.procactions")

QUEUES = ("events.actions", "events.delivery")
PREFETCH = 20000  # unacknowledged messages per queue; a write starts at half of it (few, large
# INSERTs: at 2,000 the writer spent its time on ClickHouse round trips, not rows; at 10,000 a
# burst of 750,000 clicks went in at 30,000-44,000 events/s, ClickHouse merging its many small
# parts on the same cores; at 20,000, 46,700-47,300)
FLUSH_SECONDS = 1.0  # a batch is written at the latest this long after its first message
REPORT_EVERY = 60.0

# Served on PROMETHEUS_METRICS.WORKER_PORTS.procactions; the ClickHouse insert-errors alert reads them.
INSERTS = Counter("altcraft_procactions_clickhouse_inserts_total", "Batches of events inserted into ClickHouse")
INSERT_ERRORS = Counter("altcraft_procactions_clickhouse_insert_errors_total",
                        "INSERTs into ClickHouse that failed (the batch is not acknowledged and comes again)")


class CountedInserts:
    """The analytics store with its INSERTs counted, for everything else the store itself."""

    def __init__(self, store: analytics.Analytics):
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def insert(self, *args, **kwargs) -> int:
        try:
            done = self._store.insert(*args, **kwargs)
        except Exception:
            INSERT_ERRORS.inc()
            raise
        INSERTS.inc()
        return done


class Consumer:
    """Decodes deliveries as they are read, on the connection's thread, and hands batches to
    one writer thread, so that the next half of the prefetch window arrives while a batch is
    being written. Acknowledgements are sent from the connection's thread (pika is not
    thread-safe), after the writer returned; one batch is written at a time, in arrival order."""

    def __init__(self, config: MainConfig, writer: EventWriter, prefetch: int = PREFETCH,
                 flush_seconds: float = FLUSH_SECONDS):
        self.config = config
        self.writer = writer
        self.prefetch = prefetch
        self.batch_size = max(1, prefetch // 2)
        self.flush_seconds = flush_seconds
        # the batch being gathered: its events, the messages that are not events (tag,
        # routing key, why) and the delivery tag of its last event
        self.events: list[Event] = []
        self.bad: list[tuple[int, str, str]] = []
        self.last_good = 0
        self.rejected = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="procactions-writer")
        self._writing: Future | None = None
        self.member: QuietMember | None = None  # set by main(): the quiet point's roll call
        self._flag_read = 0.0
        self._drain: tuple[int, int] | None = None  # (drain request, delivery tag to be written)
        self.received_tag = 0  # the last delivery tag received on the channel
        self.acked_tag = 0  # the last one written and acknowledged
        self._first_at = 0.0  # when the oldest message gathered arrived
        self._bursting = False  # the last batch was a full one: a backlog is being drained

    def _on_delivery(self, tag: int, routing_key: str, body: bytes) -> None:
        """On the connection's thread, as pika reads each delivery: decoding here overlaps
        the writer's wait for ClickHouse, and the writer's turn is the store's, not JSON."""
        self.received_tag = tag
        try:
            self.events.append(decode(body, routing_key))
        except BadEvent as exc:
            self.bad.append((tag, routing_key, str(exc)))
            return
        self.last_good = tag

    def gathered(self) -> int:
        return len(self.events) + len(self.bad)

    def run(self, stop: threading.Event) -> None:
        source = BatchConsumer(self.config, QUEUES, self._on_delivery, prefetch=self.prefetch,
                               app="altcraft-procactions", plain=True)
        try:
            log.info("consuming %s (prefetch %d per queue)", ", ".join(QUEUES), self.prefetch)
            next_report, written_before = time.monotonic() + REPORT_EVERY, self.writer.written
            while not stop.is_set():
                # a short poll while anything is gathered or written: a full batch or a
                # finished write is seen within 5 ms, so the writer does not sit idle
                before, idle = self.received_tag, self._writing is None
                source.poll(0.005 if self._writing or self.events or self.bad else 0.05)
                # nothing arrived although the window had room (no batch was held unacknowledged)
                quiet = idle and self.received_tag == before
                self._acknowledge(source)
                self._answer_quiet_point(source)
                gathered = self.gathered()
                if not gathered:
                    if self._writing is None:
                        self.writer.refresh_stats()  # what the last batches touched, once idle
                    continue
                now = time.monotonic()
                if not self._first_at:
                    self._first_at = now
                if self._writing is None and self._batch_due(source, gathered, quiet, now):
                    self._writing = self._pool.submit(self._write, *self._cut())
                if now >= next_report:
                    log.info("%d events written in the last %.0f s", self.writer.written - written_before,
                             REPORT_EVERY)
                    next_report, written_before = now + REPORT_EVERY, self.writer.written
            # stopping: what was taken is written and acknowledged first
            self._acknowledge(source, wait=True)
            if self.gathered():
                self._writing = self._pool.submit(self._write, *self._cut())
                self._acknowledge(source, wait=True)
            self.writer.refresh_stats(force=True)
        finally:
            if self._writing is not None:
                self._writing.cancel()
                try:
                    self._writing.result(timeout=60)  # never two writers on one ClickHouse client
                except Exception:
                    pass
            self._pool.shutdown(wait=False)
            self.events, self.bad, self.last_good = [], [], 0  # unacknowledged: delivered again
            source.close()

    def _batch_due(self, source, gathered: int, quiet: bool, now: float) -> bool:
        """Whether the gathered messages go to the (idle) writer now: at half the prefetch
        window; when the oldest is FLUSH_SECONDS old; at a backup's drain request; and at the
        end of a burst, so that its last messages do not wait for the timer: the last batch
        was a full one, a poll with room in the window brought nothing, and the broker says
        both queues are empty. A trickle waits for its second, so ClickHouse gets few
        INSERTs either way."""
        if gathered >= self.batch_size:
            self._bursting = True
            return True
        if (now - self._first_at >= self.flush_seconds or self._drain is not None
                or (self._bursting and quiet and all(source.ready(q) == 0 for q in QUEUES))):
            self._bursting = False
            return True
        return False

    def _answer_quiet_point(self, source: BatchConsumer) -> None:
        """Twice a second: says it lives. On a backup's drain request: once both queues hold
        nothing ready, every delivery received by then (the broker sends what it delivered
        before its answer to the ready count first) must be written and acknowledged; then
        the request is answered. Meanwhile batches are written at once, not after FLUSH_SECONDS."""
        if self.member is None or time.monotonic() - self._flag_read < 0.5:
            return
        self._flag_read = time.monotonic()
        try:
            flag = self.member.flag()
        except Exception as exc:  # noqa: BLE001 - MongoDB away: events go on; the backup waits
            log.warning("maintenance flag not read (%s)", type(exc).__name__)
            return
        request = (flag or {}).get("drain") or 0
        if not request:
            self._drain = None
        elif self._drain is None or self._drain[0] != request:
            if all(source.ready(q) == 0 for q in QUEUES):
                self._drain = (request, self.received_tag)
        answered = None
        if self._drain is not None and self.acked_tag >= self._drain[1]:
            answered = self._drain[0]
        try:
            self.member.report(drained=answered)
        except Exception as exc:  # noqa: BLE001
            log.warning("quiet point roll call not written (%s)", type(exc).__name__)

    def _cut(self) -> tuple[list[Event], list[tuple[int, str, str]], int, int]:
        batch = self.events, self.bad, self.last_good, self.received_tag
        self.events, self.bad, self.last_good, self._first_at = [], [], 0, 0.0
        return batch

    def _write(self, events: list[Event], bad: list[tuple[int, str, str]], last_good: int, last: int):
        """On the writer thread: writes the events; returns what to acknowledge and reject."""
        self.writer.write(events)
        return last, last_good, bad

    def _acknowledge(self, source: BatchConsumer, wait: bool = False) -> None:
        if self._writing is None or not (wait or self._writing.done()):
            return
        future, self._writing = self._writing, None
        last, last_good, bad = future.result()  # a failed write raises here: nothing is acknowledged
        for tag, routing_key, why in bad:
            log.error("rejected a message from %s (dead-lettered to events.dead): %s", routing_key, why)
            source.reject(tag)
        self.rejected += len(bad)
        if last_good:
            # the batch is every delivery up to its last one not yet settled (batches are
            # settled in arrival order); its bad ones are rejected just before, so one
            # `multiple` ack up to its last event is exactly its events
            source.ack(last_good, multiple=True)
        source.flush()
        self.acked_tag = last


def serve_metrics(config: MainConfig):
    """GET /metrics on PROMETHEUS_METRICS.WORKER_PORTS.procactions; a port that is taken costs
    the metrics (the process-down alert then fires), never the events."""
    address = config.metrics_address("procactions")
    if address is None:
        return None
    try:
        return start_http_server(address.port, address.host)[0]
    except OSError as exc:
        log.warning("metrics not served on %s (%s); events are written all the same", address, exc.strerror)
        return None


def make_writer(config: MainConfig) -> EventWriter:
    from altcraft.wiring import Platform

    platform = Platform(config)
    return EventWriter(
        CountedInserts(analytics.Analytics(config.CLICKHOUSE_SYSTEM)),
        platform.profiles,
        StopList(kv.ssdb(config, "hbsupp")),
        HourlyStats(kv.ssdb(config, "stats")),
    )


def main(config: MainConfig, stop: threading.Event) -> None:
    from altcraft.wiring import Platform

    writer = make_writer(config)
    platform = Platform(config)
    server = serve_metrics(config)
    member = QuietMember(platform.control, "procactions", f"{socket.gethostname()}:{os.getpid()}")
    try:
        writer.catch_up()
    except Exception as exc:  # ClickHouse or SSDB away: events first, statistics later
        log.warning("hourly statistics catch-up skipped (%s)", type(exc).__name__)

    def attempt(stop: threading.Event) -> None:
        consumer = Consumer(config, writer)
        consumer.member = member  # answers the backup's drain request (the quiet point)
        consumer.run(stop)

    # a store or the broker away: the batch is not written and not acknowledged
    run_until_stopped(attempt, stop, "event writing", log)
    try:
        member.leave()
    finally:
        platform.close()
        if server is not None:
            server.shutdown()
    log.info("stopped; %d events written", writer.written)
