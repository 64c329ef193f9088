"""Publishing events without a blocking confirm per request, from inside a process.

In trkaction and trkimage, clicks and opens no longer come here: a worker appends them to
its journal (journal.py) and the relay process publishes them (relay.py). This publisher
serves the pages' events that must be confirmed before the page answers
(`publish_and_wait`), and takes a click whose journal line could not be written; its
spool files are the relay's to publish there (`replay=False`). Elsewhere (benchmarks,
tests) it publishes and replays its spool itself, as described below.

A request hands its event to an in-process buffer and answers at once; one background
thread per process sends what is in the buffer to RabbitMQ (persistent, mandatory) on a
channel in confirm mode, with up to WINDOW messages in flight, and collects the broker's
confirms as they arrive (the channel: altcraft.stores.amqp_publish.ConfirmWindow). Under load many messages share one network write and one confirm
(`multiple`); at rest an event goes out alone within a millisecond or so. Per-message
blocking confirms cap a publisher near 2,000 messages/s here (performance-notes.md).

The trade-off, decided:
  * The answer does not wait for the broker. An event is "accepted" once it is in the
    buffer; the broker confirms it normally within ~100 ms (altcraft_trk_events_buffered
    shows how many wait).
  * Nothing accepted is dropped silently. A lost connection or a confirm timeout sends
    the unconfirmed messages again (a copy may reach the broker twice: event ids make that
    harmless downstream); a nack or an unroutable return (topology missing) spools the
    message. A full buffer (MAX_BUFFER events: the broker is down or slower than the
    traffic) spills to a spool file instead of refusing the request. On shutdown (SIGTERM:
    a granian worker's __rsgi_del__, a gunicorn worker's exit) the buffer is flushed for
    up to the flush timeout, and what is still unconfirmed is spooled (fsync). Spool files are published again when the broker
    is back, by any process using the same spool directory once the writer is gone.
  * What can be lost: events accepted in the last ~100 ms before a SIGKILL or a power loss
    of the process, and overflow spooled without fsync if the machine itself dies. That
    is the price of not waiting for the broker on every click; the counter
    altcraft_trk_events_total{outcome=accepted|confirmed|spooled|replayed|retried|lost}
    shows every path an event took.

Pages that must not answer before the event is safe (unsubscribe, subscription manager)
use `publish_and_wait`, which returns once the broker confirmed that event.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

from altcraft.stores.amqp_publish import ConfirmTimeout, ConfirmWindow, Parameters, Publication

log = logging.getLogger("altcraft.trk.publisher")

EVENTS = Counter("altcraft_trk_events_total", "Tracking events by what happened to them",
                 ["outcome"])  # accepted, confirmed, spooled, replayed, retried
BUFFERED = Gauge("altcraft_trk_events_buffered", "Events accepted, waiting for the broker",
                 multiprocess_mode="livesum")

MAX_BUFFER = 50_000
BATCH = 2_000  # messages sent per step of the publishing thread
WINDOW = 20_000  # messages in flight (sent, not yet confirmed)
CONFIRM_TIMEOUT = 10.0
SPOOL_REPLAY_EVERY = 5.0


@dataclass(eq=False)
class Outgoing(Publication):
    """An accepted event on its way to the broker (`ok` once the confirm window finished it)."""
    done: threading.Event | None = None
    source: Path | None = field(default=None, repr=False)  # the spool file it is replayed from


class Spool:
    """Append-only JSON-lines files <pid>.jsonl: events that could not be confirmed."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._spooled = 0
        self._next_log = 0.0

    def _own(self) -> Path:
        return self.directory / f"{os.getpid()}.jsonl"

    def write(self, items: list[Outgoing], sync: bool = False) -> None:
        if not items:
            return
        lines = "".join(json.dumps({"rk": i.routing_key, "id": i.message_id, "body": i.body.decode()},
                                   separators=(",", ":")) + "\n" for i in items)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self._own(), "a", encoding="utf-8") as handle:
                handle.write(lines)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
        EVENTS.labels("spooled").inc(len(items))
        self._spooled += len(items)
        if time.monotonic() >= self._next_log:  # at most one line per 10 s, with the count
            self._next_log = time.monotonic() + 10
            log.warning("spooled %d event(s) to %s (broker not confirming)", self._spooled, self._own())
            self._spooled = 0

    def waiting(self) -> bool:
        return self.directory.is_dir() and any(
            p.suffix == ".jsonl" or p.suffix.startswith(".replay-") for p in self.directory.iterdir())

    def claim(self) -> list[Path]:
        """Spool files no live process writes to (or our own), renamed so that only this
        process replays them; also files whose replaying process died."""
        if not self.directory.is_dir():
            return []
        me = os.getpid()
        claimed = []
        with self._lock:
            for path in sorted(self.directory.iterdir()):
                if path.suffix == ".jsonl":
                    owner = int(path.stem) if path.stem.isdigit() else 0
                elif path.suffix.startswith(".replay-"):
                    owner = int(path.suffix.split("-")[1])
                else:
                    continue
                if owner and owner != me and _alive(owner):
                    continue
                target = path.with_name(f"{path.stem.split('.')[0]}.replay-{me}-{time.monotonic_ns()}")
                try:
                    path.rename(target)
                except FileNotFoundError:
                    continue
                claimed.append(target)
        return claimed

    @staticmethod
    def read(path: Path) -> list[Outgoing]:
        items = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                items.append(Outgoing(record["rk"], record["body"].encode(), record["id"]))
        return items


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EventPublisher:
    """The per-process buffer and its publishing thread (started lazily, after a fork).

    The buffer is a deque: appending is atomic under the GIL and costs no lock, which
    matters on a path that runs for every click. The thread sleeps on an Event only when
    there is nothing to send and nothing in flight, and a request wakes it only then. Up to
    WINDOW messages are in flight (sent, not yet confirmed) at a time.
    """

    def __init__(self, params: Callable[[], Parameters], exchange: str,
                 spool_dir: Path | None, *, max_buffer: int = MAX_BUFFER, batch: int = BATCH,
                 window: int = WINDOW, flush_timeout: float = 5.0, replay: bool = True):
        self._params = params
        self.exchange = exchange
        self.spool = Spool(spool_dir) if spool_dir else None
        # False where another process publishes the spool directory's files (the tracking
        # relay, relay.py): this one then only writes to it
        self.replay = replay
        self.max_buffer = max_buffer
        self.batch = batch
        self.window = window
        self.flush_timeout = flush_timeout
        self.ticks: list[Callable[[], None]] = []  # run by the thread about every 0.2 s
        self._pid = 0
        self._start_lock = threading.Lock()
        self._buffer: deque[Outgoing] = deque()
        self._wakeup = threading.Event()
        self._idle = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._accepted = 0
        self.connected = False

    # -- requests' side -----------------------------------------------------------------
    def start(self) -> None:
        """Start the thread in this process if it is not running (idempotent, cheap)."""
        if self._pid != os.getpid():
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # after a fork: the parent's thread and buffer do not exist here
            self._buffer = deque()
            self._wakeup = threading.Event()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
            atexit.register(self.close)

    def _put(self, item: Outgoing) -> bool:
        if len(self._buffer) >= self.max_buffer or self._stopping.is_set():
            return False
        self._buffer.append(item)
        self._accepted += 1  # for the metric only; a lost update under a race costs nothing
        if self._idle:
            self._wakeup.set()
        return True

    def submit(self, routing_key: str, body: bytes, message_id: str) -> None:
        """Accept an event; returns at once. A full buffer spills to the spool."""
        if self._pid != os.getpid():
            self._ensure_started()
        item = Outgoing(routing_key, body, message_id)
        if not self._put(item):
            if self.spool is None:
                raise OverflowError("event buffer full and no spool directory")
            self.spool.write([item])

    def publish_and_wait(self, routing_key: str, body: bytes, message_id: str, timeout: float = 5.0) -> bool:
        """Accept an event and wait until the broker confirmed it (False: not within timeout;
        the event stays accepted and is published later or spooled)."""
        self._ensure_started()
        item = Outgoing(routing_key, body, message_id, done=threading.Event())
        if not self._put(item):
            if self.spool is None:
                raise OverflowError("event buffer full and no spool directory")
            self.spool.write([item], sync=True)
            return False
        self._wakeup.set()
        return item.done.wait(timeout) and item.ok  # type: ignore[union-attr]

    def pending(self) -> int:
        return len(self._buffer) if self._pid == os.getpid() else 0

    def close(self, timeout: float | None = None) -> None:
        """Flush what is buffered (confirmed, or spooled when the broker cannot take it)."""
        if self._pid != os.getpid() or self._thread is None:
            return
        self._stopping.set()
        self._wakeup.set()
        self._thread.join(self.flush_timeout if timeout is None else timeout)
        leftover = []
        while self._buffer:
            leftover.append(self._buffer.popleft())
        if leftover:
            self._spool_or_log(leftover, "left at shutdown")
        self._thread = None

    # -- the publishing thread ------------------------------------------------------------
    def _run(self) -> None:
        channel: ConfirmWindow[Outgoing] | None = None
        retry: deque[Outgoing] = deque()  # taken from the buffer, to be sent (again) first
        replaying: dict[Path, int] = {}  # spool file -> its events not yet finished
        deadline: float | None = None
        down_until = next_tick = next_replay = 0.0
        backoff = 0.2
        buffer = self._buffer
        while True:
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + 0.2
                self._tick(len(retry) + (channel.outstanding if channel else 0))
            if self._stopping.is_set():
                if deadline is None:
                    deadline = now + self.flush_timeout * 0.8
                if now > deadline or (not buffer and not retry and not (channel and channel.outstanding)):
                    break
            in_flight = channel.outstanding if channel else 0
            batch: list[Outgoing] = []
            if now >= down_until:
                room = min(self.batch, self.window - in_flight)
                while retry and len(batch) < room:
                    batch.append(retry.popleft())
                try:
                    while len(batch) < room:
                        batch.append(buffer.popleft())
                except IndexError:
                    pass
            if not batch and not in_flight:
                if now < down_until:
                    self._stopping.wait(min(0.2, down_until - now))
                    continue
                if channel is not None:
                    channel.poll(0)  # heartbeats
                if self.spool is not None and self.replay and not retry and now >= next_replay:
                    next_replay = now + SPOOL_REPLAY_EVERY
                    retry.extend(self._claim_spool(replaying))
                    if retry:
                        continue
                self._idle = True
                if not buffer and not self._stopping.is_set():
                    self._wakeup.wait(0.2)
                self._wakeup.clear()
                self._idle = False
                continue
            finished: list[Outgoing] = []
            try:
                if channel is None:
                    channel = ConfirmWindow(self._params(), self.exchange)
                    self.connected = True
                if batch:
                    channel.send(batch)
                    batch = []
                finished = channel.poll(0 if buffer or retry else 0.02)
                if channel.oldest_age() > CONFIRM_TIMEOUT:
                    raise ConfirmTimeout(f"no confirm within {CONFIRM_TIMEOUT:.0f} s")
                backoff = 0.2
            except Exception as exc:  # refused or lost connection, confirm timeout, closed channel
                again = (channel.take_outstanding() if channel else []) + batch
                retry.extendleft(reversed(again))
                if channel is not None:
                    channel.close()
                channel, self.connected = None, False
                EVENTS.labels("retried").inc(len(again))
                log.warning("publishing failed (%s: %s); %d event(s) to send again in %.1f s",
                            type(exc).__name__, exc, len(retry), backoff)
                # what the broker answered before the failure (a confirm timeout comes right
                # after a poll): confirmed, or nacked and spooled; never dropped
                self._finish(finished, replaying)
                down_until = time.monotonic() + backoff
                backoff = min(backoff * 2, 5.0)
                continue
            self._finish(finished, replaying)
            if channel.nacked:
                # the nacked ones are spooled (replayed later); this channel would go on being
                # nacked (ConfirmWindow.nacked): what is in flight is sent again on a new one
                again = channel.take_outstanding()
                retry.extendleft(reversed(again))
                EVENTS.labels("retried").inc(len(again))
                channel.close()
                channel, self.connected = None, False
        # leaving: what is not confirmed goes to the spool
        left = list(retry) + (channel.take_outstanding() if channel else [])
        while buffer:
            left.append(buffer.popleft())
        if left:
            self._spool_or_log(left, "unconfirmed when the shutdown flush time was up")
            self._finish([], replaying, left)
        self._tick(0)
        if channel is not None:
            channel.close()

    def _finish(self, finished: list[Outgoing], replaying: dict[Path, int],
                spooled: list[Outgoing] | None = None) -> None:
        failed = [i for i in finished if not i.ok]
        if len(finished) > len(failed):
            EVENTS.labels("confirmed").inc(len(finished) - len(failed))
        if failed:
            # nacked, or unroutable (the topology is missing: run `aktool migrate`)
            self._spool_or_log(failed, "nacked or unroutable")
        for item in finished + (spooled or []):
            if item.done is not None:
                item.done.set()
            if item.source is not None:
                replaying[item.source] -= 1
                if replaying[item.source] == 0:
                    del replaying[item.source]
                    item.source.unlink(missing_ok=True)

    def _tick(self, held: int) -> None:
        accepted, self._accepted = self._accepted, 0
        if accepted:
            EVENTS.labels("accepted").inc(accepted)
        BUFFERED.set(len(self._buffer) + held)
        for tick in self.ticks:
            try:
                tick()
            except Exception:  # a metrics flush must never stop the publisher
                log.exception("tick failed")

    def _spool_or_log(self, items: list[Outgoing], why: str) -> None:
        if self.spool is not None:
            log.error("%d event(s) %s: spooled for a later retry", len(items), why)
            self.spool.write(items, sync=True)
        else:
            log.error("%d event(s) %s and no spool directory: LOST", len(items), why)
            EVENTS.labels("lost").inc(len(items))

    def _claim_spool(self, replaying: dict[Path, int]) -> list[Outgoing]:
        """Events of spool files nobody writes any more. A file is removed once each of its
        events is confirmed or spooled again; a crash meanwhile leaves it to be replayed
        again (copies are harmless: event ids)."""
        assert self.spool is not None
        if replaying or not self.spool.waiting():
            return []
        items: list[Outgoing] = []
        for path in self.spool.claim():
            try:
                batch = Spool.read(path)
            except (OSError, ValueError) as exc:
                log.error("unreadable spool file %s: %s", path, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if not batch:
                path.unlink(missing_ok=True)
                continue
            for item in batch:
                item.source = path
            replaying[path] = len(batch)
            items += batch
            log.info("replaying %d spooled event(s) from %s", len(batch), path.name)
            EVENTS.labels("replayed").inc(len(batch))
        return items
