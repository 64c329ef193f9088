"""The tracking relay: one process per tracking process (trkaction, trkimage) that publishes
the events its workers appended to their journals (journal.py) to RabbitMQ.

    <spool dir>/<pid>.<segment>.jsonl   a worker's journal segments (clicks, opens)
    <spool dir>/<pid>.jsonl             the in-process publisher's spool (publisher.Spool)
    <spool dir>/<file>.done             how far the relay has finished that file (bytes)

The relay holds an flock on the directory itself: one relay per directory at a time.

The master of the tracking process starts it (`RelayProcess`, from create_app, before the
workers fork) and starts it again if it dies; it stops when the master stops or dies.

It reads complete lines from every file, sends them on a confirm-mode channel
(stores.amqp_publish.ConfirmWindow: many in flight, acks matched to delivery tags) and
moves a file's `.done` offset past a line once the broker confirmed it. A nack or an
unroutable return (topology missing) leaves the line where it is and sends it again
RETRY_AFTER later; a lost connection or a confirm timeout sends everything unconfirmed
again. At most WINDOW lines are in memory: a backlog waits in the files, so memory and
garbage collection stay bounded whatever the burst or the outage. A file is deleted once
its writer is gone (dead, or writing a later segment) and every line is finished.

It runs at a lower CPU priority (NICE) than the workers, and while a burst saturates the
cores and the journal grows fast it publishes at most pacing.FLOOR events a second (the
broker's ingest would take cores from the answers too): answering clicks comes first and
publishing catches up after; the events wait on disk meanwhile, not in the workers.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from altcraft.services.trk.journal import decode_line, writer_of
from altcraft.services.trk.pacing import CpuPressure, Pacer
from altcraft.services.trk.publisher import BATCH, BUFFERED, CONFIRM_TIMEOUT, EVENTS, WINDOW, _alive
from altcraft.stores.amqp_publish import ConfirmTimeout, ConfirmWindow, Publication

log = logging.getLogger("altcraft.trk.relay")

NICE = 19  # below the workers: under a saturating burst the answers come first
RETRY_AFTER = 5.0  # a nacked or unroutable line is sent again this much later
SCAN_EVERY = 0.2  # new files, writers gone, progress saved, metrics
SYNC_EVERY = 1.0  # fdatasync of files holding unconfirmed lines (the power-loss window)
IDLE_POLL = 0.005  # nothing to do: look at the files again after this
YIELD_POLL = 0.05  # giving way to a burst (pacing.py): one small send and a look at the confirms this often
STUCK_AFTER = 6 * CONFIRM_TIMEOUT  # one message unconfirmed this long while others are: a new channel
TEND_EVERY = 1.0  # an idle connection is polled this often (heartbeats; at most a few per interval)
READ_BYTES = 1 << 20


@dataclass(eq=False)
class Line(Publication):
    """One journal line on its way to the broker; `end` is the file offset after it."""
    source: Source | None = field(default=None, repr=False)
    end: int = 0
    finished: bool = False


class Source:
    """One journal or spool file: what has been read, sent and finished of it."""

    def __init__(self, path: Path):
        self.path = path
        self.pid, self.segment = writer_of(path.name)
        if ".replay-" in path.name:  # an older version's claimed spool: its claimer writes it
            owner = path.name.split(".replay-", 1)[1].split("-", 1)[0]
            self.pid, self.segment = (int(owner) if owner.isdigit() else 0), -1
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size
        self.done = min(self._saved_offset(), self.size)
        self.saved = self.done
        self.read_at = self.done
        self.pending: deque[Line] = deque()  # read, in file order, not all finished
        self.closed = False  # no writer appends to it any more
        self.line_bytes = 0  # bytes and lines read, for the estimate of what waits
        self.lines = 0

    @property
    def progress(self) -> Path:
        return self.path.with_name(self.path.name + ".done")

    def _saved_offset(self) -> int:
        try:
            return max(0, int(self.progress.read_text()))
        except (OSError, ValueError):
            return 0

    def save(self) -> None:
        if self.done == self.saved:
            return
        temporary = self.progress.with_name(self.progress.name + ".tmp")
        temporary.write_text(str(self.done))
        os.replace(temporary, self.progress)
        self.saved = self.done

    def advance(self) -> None:
        pending = self.pending
        while pending and pending[0].finished:
            self.done = pending.popleft().end

    def unread(self) -> int:
        self.size = os.fstat(self.fd).st_size
        return self.size - self.read_at

    def read(self, limit: int) -> list[Line]:
        """Up to `limit` complete lines after what was read; a closed file's torn last line
        (a writer that died mid-write, a disk that filled) is dropped, logged and counted."""
        if limit <= 0 or self.unread() <= 0:
            return []
        mean = self.line_bytes // self.lines if self.lines else 512
        want = min(READ_BYTES, self.size - self.read_at, max(4096, 2 * limit * mean))
        data = os.pread(self.fd, want, self.read_at)
        cut = data.rfind(b"\n")
        if cut < 0 and want < min(READ_BYTES, self.size - self.read_at):  # a long line
            want = min(READ_BYTES, self.size - self.read_at)
            data = os.pread(self.fd, want, self.read_at)
            cut = data.rfind(b"\n")
        if cut < 0:
            if self.closed and want == self.size - self.read_at:  # nobody will finish it
                log.error("%s: %d byte(s) of a torn last line dropped", self.path.name,
                          self.size - self.read_at)
                EVENTS.labels("lost").inc()
                self._skip(self.size)
            return []
        out: list[Line] = []
        start = offset = self.read_at
        for raw in data[:cut].split(b"\n", limit)[:limit]:
            offset += len(raw) + 1
            try:
                routing_key, body, message_id = decode_line(raw)
            except ValueError:
                log.error("%s: an unreadable line at offset %d dropped", self.path.name, offset - len(raw) - 1)
                EVENTS.labels("lost").inc()
                self._skip(offset)
                continue
            line = Line(routing_key, body, message_id, source=self, end=offset)
            self.pending.append(line)
            out.append(line)
        self.line_bytes += offset - start
        self.lines += len(out)
        self.read_at = offset
        return out

    def _skip(self, offset: int) -> None:
        self.pending.append(Line("", b"", "", source=self, end=offset, finished=True))
        self.read_at = offset
        self.advance()

    def waiting(self) -> int:
        """Lines not read yet (estimated from the mean line length read so far)."""
        unread = self.unread()
        return 0 if unread <= 0 else max(1, unread * max(1, self.lines) // max(1, self.line_bytes or 450))

    def close(self) -> None:
        os.close(self.fd)


class Relay:
    """The relay's loop over the files of one directory (see the module's docstring)."""

    def __init__(self, params: Callable[[], Sequence], exchange: str, directory: Path, *,
                 window: int = WINDOW, batch: int = BATCH, flush_timeout: float = 3.0,
                 pacer: Pacer | None = None):
        self._params = params
        self.exchange = exchange
        self.directory = directory
        self.window = window
        self.batch = batch
        self.flush_timeout = flush_timeout
        self.sources: dict[Path, Source] = {}
        self.channel: ConfirmWindow[Line] | None = None
        self.retry: deque[Line] = deque()  # to send (again) first
        self.later: deque[tuple[float, Line]] = deque()  # nacked: (when to send again, line)
        self._down_until = 0.0
        self._backoff = 0.2
        self._next_scan = self._next_sync = self._next_tend = 0.0
        self._progress_at = 0.0  # the last confirm, or when the window last became busy
        self._more = False  # the last read left complete lines unread
        self.draining = False  # stopping: nothing more is sent, confirms are still taken
        self.pacer = pacer or Pacer(CpuPressure().share)
        self._sizes: dict[Path, int] | None = None
        self._appended = 0

    # -- the files ------------------------------------------------------------------------
    def scan(self) -> None:
        """New files, writers gone (their files fsynced), finished files deleted, progress
        saved, the gauge set."""
        try:
            names = set(os.listdir(self.directory))
        except FileNotFoundError:
            names = set()
        segments: dict[int, int] = {}
        for name in names:
            if name.endswith(".jsonl") or (".replay-" in name and not name.endswith((".done", ".tmp"))):
                path = self.directory / name
                if path not in self.sources:
                    try:
                        self.sources[path] = Source(path)
                    except FileNotFoundError:
                        continue
                pid, segment = writer_of(name)
                segments[pid] = max(segments.get(pid, -1), segment)
        for path, source in list(self.sources.items()):
            if path.name not in names:  # removed by hand
                source.close()
                del self.sources[path]
                continue
            if not source.closed and (
                    source.pid == 0 or not _alive(source.pid)
                    or (source.segment >= 0 and segments.get(source.pid, -1) > source.segment)):
                source.closed = True
                try:
                    os.fsync(source.fd)  # a dead writer never will; a finished segment is kept whole
                except OSError as exc:
                    log.warning("fsync %s: %s", path.name, exc)
            if source.closed and not source.pending and source.unread() <= 0:
                source.close()
                del self.sources[path]
                path.unlink(missing_ok=True)
                source.progress.unlink(missing_ok=True)
            else:
                source.save()
        BUFFERED.set(self.held() + sum(s.waiting() for s in self.sources.values()))

    def sync(self) -> None:
        """fdatasync the files that hold lines the broker has not confirmed yet."""
        for source in self.sources.values():
            if not source.closed and source.done < source.size:
                try:
                    os.fdatasync(source.fd)
                except OSError as exc:
                    log.warning("fdatasync %s: %s", source.path.name, exc)

    def appended(self) -> int:
        """Bytes appended to the journal files since the relay started (it only grows)."""
        sizes = {}
        for path, source in self.sources.items():
            try:
                sizes[path] = os.fstat(source.fd).st_size
            except OSError:
                continue
            if self._sizes is not None:  # the first look only takes the sizes: a backlog is not a burst
                self._appended += max(0, sizes[path] - self._sizes.get(path, 0))
        self._sizes = sizes
        return self._appended

    def held(self) -> int:
        return (self.channel.outstanding if self.channel else 0) + len(self.retry) + len(self.later)

    def _read(self, room: int) -> list[Line]:
        lines: list[Line] = []
        self._more = False
        for source in sorted(self.sources.values(), key=lambda s: (s.pid, s.segment)):
            if len(lines) < room:
                lines += source.read(room - len(lines))
            if source.size > source.read_at:
                self._more = True
        return lines

    # -- the loop -------------------------------------------------------------------------
    def step(self) -> bool:
        """One turn: send what is due and can be in flight, collect confirms. False when
        there was nothing to send and nothing in flight."""
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + SCAN_EVERY
            self.scan()
        if now >= self._next_sync:
            self._next_sync = now + SYNC_EVERY
            self.sync()
        while self.later and self.later[0][0] <= now:
            self.retry.append(self.later.popleft()[1])
        in_flight = self.channel.outstanding if self.channel else 0
        batch: list[Line] = []
        if now >= self._down_until and not self.draining:
            room = self.pacer.room(min(self.batch, self.window - in_flight), self.appended)
            while self.retry and len(batch) < room:
                batch.append(self.retry.popleft())
            if len(batch) < room and in_flight + len(batch) + len(self.later) < self.window:
                batch += self._read(min(room, self.window - in_flight - len(self.later)) - len(batch))
            self.pacer.took(len(batch))
        if not batch and not in_flight:
            if self.channel is not None and now >= self._next_tend:
                self._tend_idle_connection(now)
            return False
        finished: list[Line] = []
        try:
            if self.channel is None:
                self.channel = ConfirmWindow(self._params(), self.exchange)
            if batch:
                if not in_flight:
                    self._progress_at = now
                self.channel.send(batch)
                batch = []
            if self.pacer.yielding:  # a few sends a second: every wake-up costs the broker's cores too
                finished = self.channel.poll(YIELD_POLL)
            else:
                finished = self.channel.poll(0 if self._more or self.retry else 0.002)
            self._check_progress(finished)
            self._backoff = 0.2
        except Exception as exc:  # refused or lost connection, confirm timeout, closed channel
            again = (self.channel.take_outstanding() if self.channel else []) + batch
            self.retry.extendleft(reversed(again))
            self._drop_channel()
            EVENTS.labels("retried").inc(len(again))
            log.warning("publishing failed (%s: %s); %d event(s) to send again in %.1f s",
                        type(exc).__name__, exc, len(self.retry), self._backoff)
            self._finish(finished)  # what the broker answered before the failure counts
            self._down_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 5.0)
            return True
        self._finish(finished)
        if self.channel.nacked:
            # a channel that was nacked may go on being nacked (ConfirmWindow.nacked): what is
            # in flight goes again on a new one
            again = self.channel.take_outstanding()
            self.retry.extendleft(reversed(again))
            EVENTS.labels("retried").inc(len(again))
            self._drop_channel()
        return True

    def _check_progress(self, finished: list[Line]) -> None:
        """ConfirmTimeout when the broker confirmed nothing for CONFIRM_TIMEOUT while messages
        were in flight (or one waited STUCK_AFTER). A busy broker confirming slowly is not
        a lost one: timing out on the oldest message's age alone sent a whole window again
        (12,000-92,000 copies in a loaded bench run), which loads the broker further."""
        now = time.monotonic()
        if finished:
            self._progress_at = now
        if not self.channel.outstanding:  # type: ignore[union-attr]
            return
        if now - self._progress_at > CONFIRM_TIMEOUT:
            raise ConfirmTimeout(f"no confirm for {CONFIRM_TIMEOUT:.0f} s")
        if self.channel.oldest_age() > STUCK_AFTER:  # type: ignore[union-attr]
            raise ConfirmTimeout(f"a message unconfirmed for {STUCK_AFTER:.0f} s while others were")

    def _tend_idle_connection(self, now: float) -> None:
        """An idle connection still has to answer the broker's heartbeats (pika does it only
        while it is polled): unpolled, the broker drops it after two intervals and the next
        click's publish fails first."""
        self._next_tend = now + TEND_EVERY
        try:
            self.channel.poll(0)  # type: ignore[union-attr]
        except Exception as exc:  # gone while idle: nothing was in flight, open a new one when needed
            log.info("idle broker connection lost (%s: %s); a new one opens with the next event",
                     type(exc).__name__, exc)
            self._drop_channel()

    def _finish(self, finished: list[Line]) -> None:
        confirmed = 0
        later = time.monotonic() + RETRY_AFTER
        for line in finished:
            if line.ok:
                line.finished = True
                confirmed += 1
                line.source.advance()  # type: ignore[union-attr]
            else:  # nacked, or unroutable (the topology is missing: run `aktool migrate`)
                self.later.append((later, line))
        if confirmed:
            EVENTS.labels("confirmed").inc(confirmed)
        if len(finished) > confirmed:
            EVENTS.labels("retried").inc(len(finished) - confirmed)
            log.error("%d event(s) nacked or unroutable: kept in the journal, sent again in %.0f s",
                      len(finished) - confirmed, RETRY_AFTER)

    def _drop_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def run(self, stop: threading.Event, parent: int | None = None) -> None:
        """Until `stop` is set (or the parent process is gone); then, for up to
        flush_timeout, the confirms of what is in flight (so that the next relay need not
        send it again). What is not confirmed stays in the files for the next relay."""
        deadline: float | None = None
        try:
            while True:
                if parent is not None and os.getppid() != parent:
                    stop.set()
                if stop.is_set():
                    if deadline is None:
                        deadline = time.monotonic() + self.flush_timeout
                        self.draining = True
                    if time.monotonic() > deadline or self.channel is None or not self.channel.outstanding:
                        break
                if not self.step():
                    stop.wait(YIELD_POLL if self.pacer.yielding else IDLE_POLL)
        finally:
            self._drop_channel()
            for source in self.sources.values():
                source.save()
                source.close()
            self.sources.clear()
            BUFFERED.set(0)


# -- the process --------------------------------------------------------------------------
@dataclass
class RelaySettings:
    """What the master hands to its relay (over a pipe: the broker credentials are in it)."""
    name: str  # the tracking process: trkaction, trkimage
    params: list  # stores.broker.parameters(...)
    exchange: str
    directory: Path
    flush_timeout: float
    log_level: str = "INFO"


class RelayProcess:
    """The master's handle: starts the relay, starts it again if it dies, stops it at exit."""

    def __init__(self, settings: RelaySettings):
        self.settings = settings
        self._owner = 0
        self._process: subprocess.Popen | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self._owner = os.getpid()
        self._spawn()
        threading.Thread(target=self._watch, name="relay-watch", daemon=True).start()
        atexit.register(self.stop)

    def _spawn(self) -> None:
        # `-c`, not `-m`: the settings unpickle into this module's own classes
        process = subprocess.Popen([sys.executable, "-c", "from altcraft.services.trk.relay import main; main()"],
                                   stdin=subprocess.PIPE, close_fds=True)
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(pickle.dumps((self.settings, os.getpid())))
        self._process = process

    def _watch(self) -> None:
        while True:
            process = self._process
            assert process is not None
            code = process.wait()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(process.pid)
            if self._stopping.is_set():
                return
            log.error("%s: the event relay exited (%s); starting it again", self.settings.name, code)
            if self._stopping.wait(1.0):
                return
            self._spawn()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        """The master exits: the relay finishes what it can within its flush time."""
        if os.getpid() != self._owner or self._process is None:
            return  # a forked worker inherits this handle: only the master stops the relay
        self._stopping.set()
        process = self._process
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(self.settings.flush_timeout + 2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except ProcessLookupError:
            pass


def main() -> None:
    from setproctitle import setproctitle

    settings, parent = pickle.load(sys.stdin.buffer)
    sys.stdin.close()
    logging.basicConfig(level=settings.log_level,
                        format=f"%(asctime)s %(levelname)s {settings.name}[%(process)d] %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    setproctitle(f"AK:{settings.name}:relay")
    os.nice(NICE)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(settings.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # no file of its own
    while True:  # a relay of an earlier master may still be finishing
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if stop.wait(0.2) or os.getppid() != parent:
                return
    Relay(lambda: settings.params, settings.exchange, settings.directory,
          flush_timeout=settings.flush_timeout).run(stop, parent)

